package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// appRedirect is the application's own page the end user returns to.
const appRedirect = "https://app.example.com/keap/connected?tenant=42"

// startConnectServer starts connectord with a fake Keap that has connectord's
// connect callback registered for the test client, and an organization whose
// Keap app is the test client.
func startConnectServer(t *testing.T, env map[string]string) (*server, org) {
	t.Helper()
	k := newKeap(t, fakekeap.Options{})
	if env == nil {
		env = baseEnv(t, testdb.New(t), k)
	} else {
		for key, v := range baseEnv(t, testdb.New(t), k) {
			if _, ok := env[key]; !ok {
				env[key] = v
			}
		}
	}
	s := startServerWith(t, env, k, nil)
	k.AddRedirectURI(testClientID, s.URL+"/connect/callback")
	o := s.createOrg("Acme Widgets", "dev@acme.test")
	r := s.do("PUT", "/organizations/elements/infusionsoftcrm/oauth/app", o.auth(), map[string]any{"apiKey": testClientID, "apiSecret": testClientSecret})
	if r.Status != 200 {
		t.Fatalf("PUT oauth/app: %d %s", r.Status, r.Body)
	}
	return s, o
}

// browser is an end user's browser: a cookie jar, redirects followed by hand
// so each step is seen, every connectord answer checked against the contract
// and kept for the secrets check.
type browser struct {
	t      *testing.T
	s      *server
	client *http.Client
	seen   []string // every body and Location header connectord sent
}

func newBrowser(t *testing.T, s *server) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, s: s, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends one request as a browser does (Accept: text/html).
func (b *browser) do(method, target string, form url.Values) response {
	b.t.Helper()
	var body io.Reader
	var raw []byte
	if form != nil {
		raw = []byte(form.Encode())
		body = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: data}
	if strings.HasPrefix(target, b.s.URL+"/") {
		checkContract(b.t, req, raw, r)
		b.seen = append(b.seen, string(data), resp.Header.Get("Location"))
	}
	return r
}

var sessionField = regexp.MustCompile(`<input type="hidden" name="session" value="(\d+)">`)

// openPage opens a connect URL and returns the page's session field.
func (b *browser) openPage(connectURL string) (response, string) {
	b.t.Helper()
	r := b.do("GET", connectURL, nil)
	if r.Status != 200 {
		b.t.Fatalf("connect page: %d %s", r.Status, r.Body)
	}
	m := sessionField.FindStringSubmatch(string(r.Body))
	if m == nil {
		b.t.Fatalf("the connect page has no form with the session:\n%s", r.Body)
	}
	return r, m[1]
}

// toKeap presses the page's button and returns Keap's authorize URL.
func (b *browser) toKeap(session string) string {
	b.t.Helper()
	r := b.do("POST", b.s.URL+"/connect/authorize", url.Values{"session": {session}})
	if r.Status != http.StatusSeeOther {
		b.t.Fatalf("POST /connect/authorize: %d %s", r.Status, r.Body)
	}
	return r.Header.Get("Location")
}

// atKeap opens Keap's authorize page and presses decision ("allow" or
// "deny"), returning where Keap sends the browser back to.
func (b *browser) atKeap(authorizeURL, decision string) string {
	b.t.Helper()
	page := b.do("GET", authorizeURL, nil)
	if page.Status != 200 || !strings.Contains(string(page.Body), `value="`+decision+`"`) {
		b.t.Fatalf("Keap's authorize page: %d %s", page.Status, page.Body)
	}
	u, _ := url.Parse(authorizeURL)
	form := url.Values{"decision": {decision}}
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state"} {
		form.Set(k, u.Query().Get(k))
	}
	r := b.do("POST", u.Scheme+"://"+u.Host+u.Path, form)
	if r.Status != http.StatusFound {
		b.t.Fatalf("Keap's %s: %d %s", decision, r.Status, r.Body)
	}
	return r.Header.Get("Location")
}

// back follows Keap's redirect to connectord's callback and returns where
// connectord sends the browser.
func (b *browser) back(callbackURL string) *url.URL {
	b.t.Helper()
	r := b.do("GET", callbackURL, nil)
	if r.Status != http.StatusSeeOther {
		b.t.Fatalf("callback: %d %s", r.Status, r.Body)
	}
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// createSession opens a connect session and returns its answer.
func (s *server) createSession(o org, body map[string]any) map[string]any {
	s.t.Helper()
	r := s.do("POST", "/connect/sessions", o.auth(), body)
	if r.Status != 201 {
		s.t.Fatalf("POST /connect/sessions: %d %s", r.Status, r.Body)
	}
	return r.JSON(s.t)
}

func newSessionBody(name string) map[string]any {
	return map[string]any{
		"element":     map[string]any{"key": "infusionsoftcrm"},
		"name":        name,
		"tags":        []any{"connect", "customer-42"},
		"redirectUrl": appRedirect,
	}
}

// The whole journey: the application opens a session, the end user sees
// what they connect, allows at Keap, and returns to the application with the
// session id; the application reads the new instance's token once, and the
// instance works.
func TestConnect_SuccessCreatesInstanceAndTokenIsReadOnce(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	created := s.createSession(o, newSessionBody("Customer 42's Keap"))
	id := fmt.Sprint(created["id"])
	connectURL := created["connectUrl"].(string)
	sessionToken := created["token"].(string)
	if !strings.HasPrefix(connectURL, s.URL+"/connect?token=") || !strings.Contains(connectURL, url.QueryEscape(sessionToken)) {
		t.Fatalf("connectUrl %q does not lead to connectord's connect page", connectURL)
	}
	if exp, err := time.Parse(time.RFC3339, created["expiresDate"].(string)); err != nil || exp.Sub(time.Now()) < 29*time.Minute || exp.Sub(time.Now()) > 31*time.Minute {
		t.Fatalf("expiresDate %v is not about 30 minutes away (%v)", created["expiresDate"], err)
	}

	b := newBrowser(t, s)
	page, session := b.openPage(connectURL)
	for _, want := range []string{"Acme Widgets", "Customer 42&#39;s Keap", "infusionsoftcrm", "Continue to Keap"} {
		if !strings.Contains(string(page.Body), want) {
			t.Errorf("the connect page does not show %q:\n%s", want, page.Body)
		}
	}
	checkPageHeaders(t, page, s.keap.URL)
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: page.Header}).Cookies() {
		cookie = c
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Secure || cookie.Path != "/connect" {
		t.Fatalf("the page's cookie is not HttpOnly, SameSite=Lax, Path=/connect (not Secure over http): %+v", cookie)
	}

	authorizeURL := b.toKeap(session)
	au, _ := url.Parse(authorizeURL)
	if !strings.HasPrefix(authorizeURL, s.keap.URL+"/app/oauth/authorize?") || au.Query().Get("client_id") != testClientID ||
		au.Query().Get("redirect_uri") != s.URL+"/connect/callback" || au.Query().Get("state") == "" {
		t.Fatalf("the form leads to %s", authorizeURL)
	}
	back := b.atKeap(authorizeURL, "allow")
	done := b.back(back)
	if done.Scheme+"://"+done.Host+done.Path != "https://app.example.com/keap/connected" ||
		done.Query().Get("tenant") != "42" || done.Query().Get("connectSessionId") != id || done.Query().Get("status") != "success" || done.Query().Has("error") {
		t.Fatalf("the application's redirect is %s", done)
	}
	for _, k := range []string{"token", "instanceToken", "code", "state"} {
		if done.Query().Has(k) {
			t.Errorf("the redirect to the application carries %s: %s", k, done)
		}
	}

	// The application reads the session: the token once.
	first := s.do("GET", "/connect/sessions/"+id, o.auth(), nil).JSON(t)
	token, _ := first["instanceToken"].(string)
	if first["status"] != "success" || first["instanceId"] == nil || len(token) < 20 {
		t.Fatalf("first read: %v", first)
	}
	second := s.do("GET", "/connect/sessions/"+id, o.auth(), nil).JSON(t)
	if second["status"] != "success" || second["instanceId"] != first["instanceId"] || second["instanceToken"] != nil {
		t.Fatalf("second read shows the token again or changed: %v", second)
	}
	iid := fmt.Sprint(first["instanceId"])
	inst := s.do("GET", "/instances/"+iid, o.auth(), nil).JSON(t)
	cfg := inst["configuration"].(map[string]any)
	if inst["name"] != "Customer 42's Keap" || inst["valid"] != true || fmt.Sprint(inst["tags"]) != "[connect customer-42]" ||
		cfg["oauth.api.key"] != testClientID || cfg["oauth.api.secret"] != "********" || cfg["oauth.callback.url"] != s.URL+"/connect/callback" {
		t.Fatalf("the created instance: %v", inst)
	}
	// The token works: a hub call as the instance.
	if r := s.do("GET", "/hubs/crm/contacts?pageSize=1", "User "+o.User.Secret+", Element "+token, nil); r.Status != 200 {
		t.Fatalf("hub call with the connected instance's token: %d %s", r.Status, r.Body)
	}
	// The page's link works once: the session is finished.
	if r := b.do("GET", connectURL, nil); r.Status != http.StatusGone || !strings.Contains(string(r.Body), "already used") {
		t.Fatalf("connect page after success: %d %s", r.Status, r.Body)
	}
	// The callback's URL replayed (the state is single-use) creates nothing.
	before := s.count("instances")
	if r := b.do("GET", back, nil); r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" || !strings.Contains(string(r.Body), "nothing was created") {
		t.Fatalf("replayed callback: %d %s", r.Status, r.Body)
	}
	if s.count("instances") != before {
		t.Fatal("a replayed callback created an instance")
	}

	stored := s.instanceSecrets(iid)
	b.checkNoSecrets(map[string]string{
		"client secret": testClientSecret, "instance token": token, "access token": stored["oauth.user.token"],
		"refresh token": stored["oauth.user.refresh_token"], "organization secret": o.Organization.Secret,
		"user secret": o.User.Secret, "session token": sessionToken, "browser cookie": cookie.Value,
	}, "session token", "browser cookie")
	checkNoSecretsAtRest(t, s, map[string]string{"instance token": token, "session token": sessionToken, "browser cookie": cookie.Value, "client secret": testClientSecret})
}

// checkPageHeaders checks the security headers of a connect page.
func checkPageHeaders(t *testing.T, r response, keapOrigin string) {
	t.Helper()
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' " + keapOrigin, "style-src 'sha256-"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q allows scripts or unsafe sources", csp)
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s is %q, want %q", h, got, want)
		}
	}
}

// checkNoSecrets checks that no secret is in any page, Location header or
// log line; allowedInURL names those that travel in a URL by design (the
// session token in connectUrl), which are still kept from pages and logs.
func (b *browser) checkNoSecrets(secrets map[string]string, allowedInURL ...string) {
	b.t.Helper()
	logs := b.s.logs.String()
	for name, v := range secrets {
		if len(v) < 8 {
			b.t.Fatalf("%s is missing from the test setup (%q)", name, v)
		}
		if strings.Contains(logs, v) {
			b.t.Errorf("the %s is in a log line", name)
		}
		for _, seen := range b.seen {
			if strings.Contains(seen, v) || strings.Contains(seen, url.QueryEscape(v)) {
				b.t.Errorf("the %s is in a page or Location header: %.300s", name, seen)
			}
		}
	}
}

// checkNoSecretsAtRest checks that no value is in clear in any row of the
// connect tables.
func checkNoSecretsAtRest(t *testing.T, s *server, secrets map[string]string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, table := range []string{"connect_sessions", "organization_oauth_apps", "instances", "instance_credentials"} {
		var dump string
		if err := c.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+pgx.Identifier{table}.Sanitize()+` t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		for name, v := range secrets {
			if strings.Contains(dump, v) || strings.Contains(dump, hex.EncodeToString([]byte(v))) {
				t.Errorf("the %s is in clear in table %s", name, table)
			}
		}
	}
}
