package oauthflow

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTokenEndpoint_RedirectIsNotFollowedWithTheCredentials(t *testing.T) {
	t.Parallel()
	const secret, code, refresh = "client-secret-xyz", "the-code-xyz", "the-refresh-xyz"
	var leaked atomic.Value
	third := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen := string(body) + r.Header.Get("Authorization") + r.URL.RawQuery
		if dec, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")); err == nil {
			seen += string(dec)
		}
		for _, s := range []string{secret, code, refresh} {
			if strings.Contains(seen, s) {
				leaked.Store(s)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"from-the-third-host","refresh_token":"r","token_type":"bearer","expires_in":3600}`)
	}))
	defer third.Close()
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, third.URL+"/token", status)
		}))
		for _, client := range []*http.Client{nil, {Timeout: 5 * time.Second}} {
			p := &Provider{TokenURL: keap.URL + "/token", Client: client}
			if tok, err := p.Exchange(context.Background(), "id", secret, "https://app.example/cb", code); err == nil {
				t.Errorf("%d: the code exchange took tokens from the host Keap redirected to: %+v", status, tok.AccessToken)
			}
			if tok, err := p.Refresh(context.Background(), "id", secret, refresh); err == nil {
				t.Errorf("%d: the refresh took tokens from the host Keap redirected to: %+v", status, tok.AccessToken)
			}
		}
		keap.Close()
	}
	if s := leaked.Load(); s != nil {
		t.Fatalf("the host in Keap's Location received %q", s)
	}
}
