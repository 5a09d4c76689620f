package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// consoleClient is a person at the console: a cookie jar, and the CSRF token
// of the last page it read.
type consoleClient struct {
	t    testing.TB
	s    *server
	c    *http.Client
	csrf string
	last string // the last page's URL
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (s *server) consoleClient() *consoleClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return &consoleClient{t: s.t, s: s, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// signIn signs in with o's secrets and fails the test if that does not land
// on the instances page.
func (s *server) signIn(o org) *consoleClient {
	s.t.Helper()
	cc := s.consoleClient()
	r := cc.postForm("/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {o.Organization.Secret}}, false)
	if r.Status != 200 || !strings.Contains(string(r.Body), "<h1>Instances</h1>") {
		s.t.Fatalf("sign in: %d %s", r.Status, r.Body)
	}
	return cc
}

func (cc *consoleClient) do(req *http.Request) response {
	cc.t.Helper()
	resp, err := cc.c.Do(req)
	if err != nil {
		cc.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		cc.t.Fatal(err)
	}
	if m := csrfInput.FindSubmatch(b); m != nil {
		cc.csrf = string(m[1])
	}
	cc.last = resp.Request.URL.String()
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (cc *consoleClient) get(path string) response {
	cc.t.Helper()
	req, err := http.NewRequest("GET", cc.s.URL+path, nil)
	if err != nil {
		cc.t.Fatal(err)
	}
	return cc.do(req)
}

// postForm sends a form, with the CSRF token of the last page when withCSRF.
func (cc *consoleClient) postForm(path string, form url.Values, withCSRF bool) response {
	cc.t.Helper()
	if withCSRF {
		form.Set("csrf", cc.csrf)
	}
	req, err := http.NewRequest("POST", cc.s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		cc.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return cc.do(req)
}

func (cc *consoleClient) cookie() *http.Cookie {
	u, _ := url.Parse(cc.s.URL + "/console/")
	for _, c := range cc.c.Jar.Cookies(u) {
		if c.Name == "connectord_console" {
			return c
		}
	}
	return nil
}

// A wrong pair of secrets is refused without saying which was wrong; the
// right one starts a session in an HttpOnly, SameSite cookie scoped to
// /console; signing out ends the session, on the server too.
func TestConsole_SignInAndSignOut(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	other := s.createOrg("Other", "dev@other.test")

	cc := s.consoleClient()
	if r := cc.get("/console/instances"); r.Status != 200 || !strings.HasSuffix(cc.last, "/console/signin") || !strings.Contains(string(r.Body), "User secret") {
		t.Fatalf("a page without a session: %d at %s", r.Status, cc.last)
	}
	for _, form := range []url.Values{
		{"userSecret": {o.User.Secret}, "organizationSecret": {other.Organization.Secret}},
		{"userSecret": {"not-a-secret"}, "organizationSecret": {o.Organization.Secret}},
	} {
		r := cc.postForm("/console/signin", form, false)
		if r.Status != 401 || !strings.Contains(string(r.Body), "do not match a user of an organization") || cc.cookie() != nil {
			t.Fatalf("wrong secrets: %d %s", r.Status, r.Body)
		}
	}
	if r := cc.postForm("/console/signin", url.Values{"userSecret": {o.User.Secret}}, false); r.Status != 400 || !strings.Contains(string(r.Body), "sign in needs the organization secret") {
		t.Fatalf("missing organization secret: %d %s", r.Status, r.Body)
	}

	// The Set-Cookie header itself, as the browser gets it.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(s.URL+"/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {o.Organization.Secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/instances" {
		t.Fatalf("sign in answered %d to %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, want := range []string{"connectord_console=", "Path=/console", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on an http public URL, so the browser would never send it back", set)
	}

	cc = s.signIn(o)
	first := cc.cookie().Value
	// Signing in again in the same browser replaces its session.
	if r := cc.postForm("/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {o.Organization.Secret}}, false); r.Status != 200 || cc.cookie().Value == first {
		t.Fatalf("second sign in: %d", r.Status)
	}
	if n := s.count("console_sessions"); n != 2 {
		t.Fatalf("%d sessions stored, want 2 (the no-follow client's and this browser's latest)", n)
	}
	token := cc.cookie().Value
	var stored int
	s.queryRow("SELECT count(*) FROM console_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))", []any{token}, &stored)
	if stored != 1 {
		t.Fatal("the session is not stored by the SHA-256 of its token")
	}
	page := cc.get("/console/instances")
	if !strings.Contains(string(page.Body), "dev@acme.test") || strings.Contains(string(page.Body), token) {
		t.Fatalf("instances page: %d %s", page.Status, page.Body)
	}
	if r := cc.postForm("/console/signout", url.Values{}, true); r.Status != 200 || !strings.Contains(string(r.Body), "Signed out.") || cc.cookie() != nil {
		t.Fatalf("sign out: %d %s", r.Status, r.Body)
	}
	s.queryRow("SELECT count(*) FROM console_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))", []any{token}, &stored)
	if stored != 0 {
		t.Fatal("sign out left the session in the database")
	}
	// The old cookie, replayed, is no session.
	replay := s.consoleClient()
	u, _ := url.Parse(s.URL + "/console/")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "connectord_console", Value: token, Path: "/console"}})
	if r := replay.get("/console/instances"); !strings.HasSuffix(replay.last, "/console/signin?expired=1") || !strings.Contains(string(r.Body), "Your session expired") {
		t.Fatalf("replayed cookie after sign out reached %s", replay.last)
	}
}

// With an https public URL the cookie is Secure.
func TestConsole_CookieSecureBehindHTTPS(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_PUBLIC_URL"] = "https://connectord.example.test"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		PostForm(s.URL+"/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {o.Organization.Secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if set := resp.Header.Get("Set-Cookie"); !strings.Contains(set, "; Secure") || !strings.Contains(set, "HttpOnly") {
		t.Fatalf("Set-Cookie %q behind https", set)
	}
}

// Every state-changing form is refused without the session's CSRF token, with
// a wrong one, or when the browser says it comes from another site; nothing
// changes. With the right token from the same origin it goes through.
func TestConsole_CSRF(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	id := fmt.Sprint(s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, "")).JSON(t)["id"])
	cc := s.signIn(o)
	cc.get("/console/instances/" + id)
	good := cc.csrf
	if len(good) < 40 {
		t.Fatalf("no CSRF token on the instance page (%q)", good)
	}
	disabled := func() bool {
		return s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)["disabled"].(bool)
	}

	for name, send := range map[string]func() response{
		"no token": func() response { return cc.postForm("/console/instances/"+id+"/disable", url.Values{}, false) },
		"wrong token": func() response {
			return cc.postForm("/console/instances/"+id+"/disable", url.Values{"csrf": {good[:len(good)-4] + "AAAA"}}, false)
		},
		"another session's token": func() response {
			other := s.signIn(o)
			other.get("/console/instances/" + id)
			return cc.postForm("/console/instances/"+id+"/disable", url.Values{"csrf": {other.csrf}}, false)
		},
		"cross-site with the right token": func() response {
			req, _ := http.NewRequest("POST", s.URL+"/console/instances/"+id+"/disable", strings.NewReader(url.Values{"csrf": {good}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "https://evil.example")
			return cc.do(req)
		},
	} {
		r := send()
		if r.Status != 403 || !(strings.Contains(string(r.Body), "security token") || strings.Contains(string(r.Body), "from another site")) {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
		if disabled() {
			t.Fatalf("%s: the refused form disabled the instance", name)
		}
	}
	// Signing out and deleting are forms like the others.
	if r := cc.postForm("/console/instances/"+id+"/delete", url.Values{"confirm": {"yes"}}, false); r.Status != 403 {
		t.Errorf("delete without token: %d", r.Status)
	}
	if r := cc.postForm("/console/signout", url.Values{}, false); r.Status != 403 {
		t.Errorf("sign out without token: %d", r.Status)
	}

	cc.csrf = good
	if r := cc.postForm("/console/instances/"+id+"/disable", url.Values{}, true); r.Status != 200 || !strings.Contains(string(r.Body), "Instance disabled") {
		t.Fatalf("disable with the token: %d %s", r.Status, r.Body)
	}
	if !disabled() {
		t.Fatal("the instance is not disabled")
	}
}

// A session ends after CONNECTORD_CONSOLE_SESSION_TTL: pages send the person
// to sign in again, saying the session expired, and forms are refused.
func TestConsole_SessionExpires(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_CONSOLE_SESSION_TTL"] = "2s"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	cc := s.signIn(o)
	if r := cc.get("/console/elements"); r.Status != 200 || !strings.Contains(string(r.Body), "<h1>Elements</h1>") {
		t.Fatalf("before expiry: %d", r.Status)
	}
	csrf, token := cc.csrf, cc.cookie().Value
	time.Sleep(2500 * time.Millisecond)
	var n int
	s.queryRow("SELECT count(*) FROM console_sessions WHERE expires_at < now()", nil, &n)
	if n != 1 {
		t.Fatalf("%d expired sessions stored, want 1", n)
	}
	// The cookie expires in the browser with the session; the server must
	// refuse the token too, as sent by a browser with a wrong clock.
	u, _ := url.Parse(s.URL + "/console/")
	if cc.cookie() != nil {
		t.Fatal("the cookie outlived the session")
	}
	old := s.consoleClient()
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "connectord_console", Value: token, Path: "/console"}})
	if r := old.get("/console/elements"); !strings.HasSuffix(old.last, "/console/signin?expired=1") || !strings.Contains(string(r.Body), "Your session expired") {
		t.Fatalf("after expiry a page reached %s (%d)", old.last, r.Status)
	}
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "connectord_console", Value: token, Path: "/console"}})
	old.csrf = csrf
	if r := old.postForm("/console/signout", url.Values{}, true); r.Status != 401 || !strings.Contains(string(r.Body), "session expired") {
		t.Fatalf("after expiry a form: %d %s", r.Status, r.Body)
	}
	// The next sign-in sweeps the expired session away.
	s.signIn(o)
	s.queryRow("SELECT count(*) FROM console_sessions WHERE expires_at < now()", nil, &n)
	if n != 0 {
		t.Fatalf("%d expired sessions kept after the next sign-in", n)
	}
}

// The README's console block runs, as written, against `connectord serve --sandbox`.
func TestREADMEConsole_RunsAgainstSandbox(t *testing.T) {
	t.Parallel()
	script := strings.Join(readmeBlocks(t, "console", "sh"), "")
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "BASE=" + s.URL}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "console complete") || !strings.Contains(string(out), "List contacts") {
		t.Fatalf("README console block failed: %v\n%s", err, out)
	}
}

// GET /elements/{keyOrId}/openapi.json answers every element's document, valid
// OpenAPI, at both base paths, and 404 for an unknown element; each answer is
// checked against api/openapi.yaml.
func TestElementOpenAPI_ServedForEveryElement(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, key := range []string{"infusionsoftcrm", "infusionsoftmarketing", "infusionsoftecommerce", "3413"} {
		for _, base := range []string{"", "/elements/api-v2"} {
			r := s.do("GET", base+"/elements/"+key+"/openapi.json", "", nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", key, r.Status, r.Body)
			}
			loader := openapi3.NewLoader()
			doc, err := loader.LoadFromData(r.Body)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if err := doc.Validate(loader.Context); err != nil {
				t.Fatalf("%s: not valid OpenAPI: %v", key, err)
			}
			if doc.Paths.Len() < 5 {
				t.Fatalf("%s: %d paths", key, doc.Paths.Len())
			}
		}
	}
	if r := s.do("GET", "/elements/nosuch/openapi.json", "", nil); r.Status != 404 || !strings.Contains(r.JSON(t)["message"].(string), "infusionsoftcrm") {
		t.Fatalf("unknown element: %d %s", r.Status, r.Body)
	}
}
