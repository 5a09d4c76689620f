package keap

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// thirdHost stands for wherever a hostile or broken Keap redirects to: it
// answers 200 to everything and records whether it ever saw the key.
func thirdHost(t *testing.T, key string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var got atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(r.Header.Get("X-Keap-API-Key"), key) || strings.Contains(string(body), key) || strings.Contains(r.URL.RawQuery, key) {
			got.Store(true)
		}
		_, _ = io.WriteString(w, `<?xml version="1.0"?><methodResponse><params><param><value><string>ok</string></value></param></params></methodResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func redirector(t *testing.T, status int, to string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to+r.URL.Path, status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestVerifyKeys_RedirectIsNotFollowedWithTheKey(t *testing.T) {
	t.Parallel()
	const key = "KeapAK-secret-that-must-stay-home"
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		third, got := thirdHost(t, key)
		keap := redirector(t, status, third.URL)
		// A client that follows redirects, as http.DefaultClient does: the
		// package must not rely on its caller's client to refuse them.
		c := &Client{HTTP: &http.Client{Timeout: 5 * time.Second}}
		if err := c.VerifyAPIKey(context.Background(), keap.URL+"/crm/rest/v1", key); err == nil {
			t.Errorf("%d: the service account key was found valid on the word of the host Keap redirected to", status)
		}
		if err := c.VerifyLegacyKey(context.Background(), keap.URL+"/api/xmlrpc", key); err == nil {
			t.Errorf("%d: the legacy key was found valid on the word of the host Keap redirected to", status)
		}
		if got.Load() {
			t.Errorf("%d: the key was sent to the host in Keap's Location", status)
		}
	}
}
