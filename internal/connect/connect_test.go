package connect

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestIsRedirectURL_OnlyAbsoluteHTTPWithoutUserOrFragment(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]bool{
		"https://app.example.com/connected?x=1": true,
		"http://localhost:3000/cb":              true,
		"javascript:alert(1)":                   false,
		"//evil.example/x":                      false,
		"/relative":                             false,
		"ftp://app.example.com/":                false,
		"https://user:pw@app.example.com/":      false,
		"https://app.example.com/#frag":         false,
		"https:///nohost":                       false,
		"":                                      false,
		"https://app.example.com/" + strings.Repeat("a", 2000): false,
	} {
		if got := IsRedirectURL(u); got != want {
			t.Errorf("IsRedirectURL(%q) = %v, want %v", u, got, want)
		}
	}
}

// The outcome always goes to the session's own URL: same scheme, host and
// path, its query kept, only the outcome parameters added.
func FuzzOutcomeURL_StaysOnTheSessionsURL(f *testing.F) {
	for _, seed := range []string{
		"https://app.example.com/connected?tenant=42",
		"http://localhost:3000/cb",
		"https://app.example.com/cb?connectSessionId=9&status=success&error=x",
		"https://app.example.com/a%2Fb?x=%zz",
		"http://[::1]:8080/p?q",
	} {
		f.Add(seed, "")
		f.Add(seed, ReasonAccessDenied)
	}
	s := &Service{opts: Options{PublicURL: "https://connectord.example", Now: time.Now}}
	f.Fuzz(func(t *testing.T, redirect, reason string) {
		if !IsRedirectURL(redirect) {
			return
		}
		want, _ := url.Parse(redirect)
		out := s.outcomeURL(&Session{ID: 7, RedirectURL: redirect}, reason)
		got, err := url.Parse(out)
		if err != nil {
			t.Fatalf("outcome URL %q does not parse: %v", out, err)
		}
		if got.Scheme != want.Scheme || got.Host != want.Host || got.EscapedPath() != want.EscapedPath() || got.User != nil || got.Fragment != "" {
			t.Fatalf("outcome URL %q left the session's URL %q", out, redirect)
		}
		q := got.Query()
		if q.Get("connectSessionId") != "7" || (reason == "") != (q.Get("status") == StatusSuccess) || reason != "" && q.Get("error") != reason {
			t.Fatalf("outcome URL %q does not carry the outcome (reason %q)", out, reason)
		}
	})
}
