package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// consolePost sends a console form without following the redirect, sharing
// the person's cookies, and returns where the console sends the browser.
func (cc *consoleClient) consolePost(path string, form url.Values) string {
	cc.t.Helper()
	form.Set("csrf", cc.csrf)
	c := &http.Client{Jar: cc.c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(cc.s.URL+path, form)
	if err != nil {
		cc.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		cc.t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// The console's Connect runs a connect session for the signed-in
// organization: a denial comes back as a message and creates nothing; an
// Allow comes back to the new, valid instance. Reconnect repairs an instance
// Keap stopped accepting: same instance, valid again.
func TestConsole_ConnectDenyAllowAndReconnect(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	cc := s.signIn(o)
	cc.get("/console/elements")
	b := &browser{t: t, s: s, client: &http.Client{Jar: cc.c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	// Denied at Keap.
	connectURL := cc.consolePost("/console/elements/infusionsoftcrm/connect", url.Values{"name": {"Denied"}})
	_, session := b.openPage(connectURL)
	done := b.back(b.atKeap(b.toKeap(session), "deny"))
	if done.Path != "/console/connected" || done.Query().Get("status") != "error" {
		t.Fatalf("denied: back at %s", done)
	}
	r := cc.get(done.RequestURI())
	if !strings.Contains(string(r.Body), "Connecting failed: access_denied") || s.count("instances") != 0 {
		t.Fatalf("denied: %d instances, page %s", s.count("instances"), r.Body)
	}

	// Allowed.
	cc.get("/console/elements")
	connectURL = cc.consolePost("/console/elements/infusionsoftcrm/connect", url.Values{"name": {"Acme CRM"}, "tags": {"console"}})
	_, session = b.openPage(connectURL)
	done = b.back(b.atKeap(b.toKeap(session), "allow"))
	r = cc.get(done.RequestURI())
	if !strings.Contains(cc.last, "/console/instances/") || !strings.Contains(string(r.Body), "Instance connected.") || !strings.Contains(string(r.Body), `<span class="badge ok">valid</span>`) {
		t.Fatalf("allowed: at %s\n%s", cc.last, r.Body)
	}
	id := strings.TrimSuffix(cc.last[strings.LastIndex(cc.last, "/")+1:], "?done=connected")
	got := s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)
	if got["name"] != "Acme CRM" || got["valid"] != true || got["tags"].([]any)[0] != "console" {
		t.Fatalf("the connected instance: %v", got)
	}

	// Keap stops accepting the refresh token; the console shows why and offers Reconnect.
	s.keap.RevokeRefreshTokens(testClientID)
	r = cc.postForm("/console/instances/"+id+"/refresh", url.Values{}, true)
	if r.Status != 400 {
		t.Fatalf("refused refresh: %d %s", r.Status, r.Body)
	}
	r = cc.get("/console/instances/" + id)
	if !strings.Contains(string(r.Body), `<span class="badge bad">invalid</span>`) || !strings.Contains(string(r.Body), ">Reconnect<") {
		t.Fatalf("invalid instance page:\n%s", r.Body)
	}
	connectURL = cc.consolePost("/console/instances/"+id+"/reconnect", url.Values{})
	_, session = b.openPage(connectURL)
	done = b.back(b.atKeap(b.toKeap(session), "allow"))
	r = cc.get(done.RequestURI())
	if !strings.HasSuffix(cc.last, "/console/instances/"+id+"?done=connected") || !strings.Contains(string(r.Body), `<span class="badge ok">valid</span>`) {
		t.Fatalf("reconnected: at %s\n%s", cc.last, r.Body)
	}
	if n := s.count("instances"); n != 1 {
		t.Fatalf("%d instances after reconnecting, want the same one", n)
	}
}
