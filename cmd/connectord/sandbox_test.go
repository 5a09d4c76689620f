package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// The sandbox on a listener others reach: its authorize page is no open
// redirect (codes go only to the registered redirect URIs), and its hooks
// connect only where connectord's own callbacks may
// (CONNECTORD_CALLBACK_ALLOW_PRIVATE).
func TestSandbox_NoOpenRedirectAndHooksObeyTheCallbackPolicy(t *testing.T) {
	t.Parallel()
	var reached atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("X-Hook-Secret", r.Header.Get("X-Hook-Secret"))
	}))
	defer internal.Close()

	for _, allowPrivate := range []bool{false, true} {
		k := newKeap(t, fakekeap.Options{})
		env := baseEnv(t, testdb.New(t), k)
		delete(env, "CONNECTORD_CALLBACK_ALLOW_PRIVATE")
		if allowPrivate {
			env["CONNECTORD_CALLBACK_ALLOW_PRIVATE"] = "true"
		}
		s := startServerWith(t, env, k, []string{"--sandbox"})
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		authorize := func(redirect string) *http.Response {
			q := url.Values{"response_type": {"code"}, "client_id": {sandboxClientID}, "redirect_uri": {redirect}, "scope": {"full"}, "state": {"s"}}
			resp, err := noFollow.Get(s.URL + "/sandbox/keap/app/oauth/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		for _, evil := range []string{"https://attacker.example/steal", "https://www.yourcallbackurl.com.attacker.example/", s.URL + "/connect/callback/../../x"} {
			if r := authorize(evil); r.StatusCode != http.StatusBadRequest || r.Header.Get("Location") != "" {
				t.Errorf("authorize to %s: %d, Location %q; want 400 and no redirect", evil, r.StatusCode, r.Header.Get("Location"))
			}
		}
		for _, good := range []string{"https://www.yourcallbackurl.com", s.URL + "/connect/callback"} {
			r := authorize(good)
			if loc := r.Header.Get("Location"); r.StatusCode != http.StatusFound || !strings.HasPrefix(loc, good+"?") || !strings.Contains(loc, "code=") {
				t.Errorf("authorize to the registered %s: %d, Location %q", good, r.StatusCode, loc)
			}
		}

		before := reached.Load()
		req, _ := http.NewRequest("POST", s.URL+"/sandbox/keap/crm/rest/v1/hooks",
			strings.NewReader(`{"eventKey":"contact.add","hookUrl":"`+internal.URL+`/hook"}`))
		req.Header.Set("X-Keap-API-Key", sandboxServiceKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := reached.Load() - before
		if !allowPrivate && got != 0 {
			t.Errorf("without CONNECTORD_CALLBACK_ALLOW_PRIVATE the sandbox's hook reached a loopback address %d times", got)
		}
		if allowPrivate && got != 1 {
			t.Errorf("with CONNECTORD_CALLBACK_ALLOW_PRIVATE=true the sandbox's hook handshake reached loopback %d times, want 1", got)
		}
	}
}
