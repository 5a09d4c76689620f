package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// appRedirect is the application's own page the end user returns to.
const appRedirect = "https://app.example.com/keap/connected?tenant=42"

// startConnectServer starts connectord with a fake Keap that has connectord's
// connect callback registered for the test client, and an organization whose
// Keap app is the test client. env holds settings beyond the base
// environment (the fake Keap and database are always the helper's own).
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
	body := newSessionBody("Customer 42's Keap")
	body["configuration"] = map[string]any{"pagination.max": 50}
	created := s.createSession(o, body)
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
	if first["instanceTokenRead"] != nil || second["status"] != "success" || second["instanceId"] != first["instanceId"] || second["instanceToken"] != nil || second["instanceTokenRead"] != true {
		t.Fatalf("second read shows the token again or changed: %v", second)
	}
	iid := fmt.Sprint(first["instanceId"])
	inst := s.do("GET", "/instances/"+iid, o.auth(), nil).JSON(t)
	cfg := inst["configuration"].(map[string]any)
	if inst["name"] != "Customer 42's Keap" || inst["valid"] != true || fmt.Sprint(inst["tags"]) != "[connect customer-42]" ||
		cfg["oauth.api.key"] != testClientID || cfg["oauth.api.secret"] != "********" || cfg["oauth.callback.url"] != s.URL+"/connect/callback" ||
		cfg["pagination.max"] != "50" {
		t.Fatalf("the created instance: %v", inst)
	}
	// The token works: a hub call as the instance.
	if r := s.do("GET", "/hubs/crm/contacts?pageSize=1", "User "+o.User.Secret+", Element "+token, nil); r.Status != 200 {
		t.Fatalf("hub call with the connected instance's token: %d %s", r.Status, r.Body)
	}
	// The finished session keeps no configuration, sealed or not.
	var sealed bool
	s.queryRow(`SELECT ciphertext IS NOT NULL FROM connect_sessions WHERE id = $1`, []any{id}, &sealed)
	if sealed {
		t.Error("a finished session still holds its sealed configuration")
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
	})
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
	// The page's one style sheet is the one the policy allows, byte for byte.
	if m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(r.Body); m != nil {
		sum := sha256.Sum256(m[1])
		if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q does not allow the page's style sheet (%s)", csp, want)
		}
	} else {
		t.Errorf("the page has no style sheet:\n%s", r.Body)
	}
	if strings.Contains(string(r.Body), "<script") || strings.Contains(string(r.Body), " style=") {
		t.Errorf("the page has a script or an inline style attribute the policy would block")
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s is %q, want %q", h, got, want)
		}
	}
}

// checkNoSecrets checks that no secret is in any page or Location header
// connectord sent, or in any log line.
func (b *browser) checkNoSecrets(secrets map[string]string) {
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

// connectInstances counts the instances of the server's database.
func (s *server) instanceCount() int { return s.count("instances") }

// expireSession makes a session's expiry pass, as time would.
func (s *server) expireSession(id string) {
	s.t.Helper()
	var n int
	s.queryRow(`WITH u AS (UPDATE connect_sessions SET expires_at = now() - interval '1 second' WHERE id = $1 RETURNING 1) SELECT count(*) FROM u`, []any{id}, &n)
	if n != 1 {
		s.t.Fatalf("no session %s to expire", id)
	}
}

// The user presses Deny at Keap: the application hears access_denied and
// nothing is created.
func TestConnect_UserDeniesRedirectsWithAccessDenied(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	created := s.createSession(o, newSessionBody("denied"))
	id := fmt.Sprint(created["id"])
	b := newBrowser(t, s)
	_, session := b.openPage(created["connectUrl"].(string))
	back := b.atKeap(b.toKeap(session), "deny")
	done := b.back(back)
	if done.Host != "app.example.com" || done.Query().Get("connectSessionId") != id || done.Query().Get("status") != "error" || done.Query().Get("error") != "access_denied" {
		t.Fatalf("the application's redirect is %s", done)
	}
	got := s.do("GET", "/connect/sessions/"+id, o.auth(), nil).JSON(t)
	if got["status"] != "error" || got["error"] != "access_denied" || got["instanceId"] != nil || got["instanceToken"] != nil || got["completedDate"] == nil {
		t.Fatalf("session after deny: %v", got)
	}
	if n := s.instanceCount(); n != 0 {
		t.Fatalf("%d instances after a denial", n)
	}
	if s.keap.Stats().CodeExchanges != 0 {
		t.Fatal("connectord exchanged a code after the user denied")
	}
}

// A session that expires before the user opens it, or while they are at
// Keap, sends them back with error=expired and creates nothing, even with
// Keap's code in hand.
func TestConnect_ExpiredSessionRedirectsWithExpired(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)

	// Expired before the page opens: straight back to the application.
	first := s.createSession(o, newSessionBody("late"))
	s.expireSession(fmt.Sprint(first["id"]))
	b := newBrowser(t, s)
	r := b.do("GET", first["connectUrl"].(string), nil)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != http.StatusSeeOther || loc == nil || loc.Host != "app.example.com" || loc.Query().Get("error") != "expired" || loc.Query().Get("connectSessionId") != fmt.Sprint(first["id"]) {
		t.Fatalf("expired page: %d %s", r.Status, r.Header.Get("Location"))
	}
	if again := b.do("GET", first["connectUrl"].(string), nil); again.Status != http.StatusSeeOther || again.Header.Get("Location") != loc.String() {
		t.Fatalf("expired page opened again: %d %s", again.Status, again.Header.Get("Location"))
	}

	// Expired while the user was at Keap: the callback refuses the code.
	second := s.createSession(o, newSessionBody("slow"))
	id := fmt.Sprint(second["id"])
	_, session := b.openPage(second["connectUrl"].(string))
	back := b.atKeap(b.toKeap(session), "allow")
	s.expireSession(id)
	done := b.back(back)
	if done.Query().Get("status") != "error" || done.Query().Get("error") != "expired" || done.Query().Get("connectSessionId") != id {
		t.Fatalf("the application's redirect is %s", done)
	}
	if got := s.do("GET", "/connect/sessions/"+id, o.auth(), nil).JSON(t); got["status"] != "error" || got["error"] != "expired" {
		t.Fatalf("session: %v", got)
	}
	// Expired while the page was open: the button sends the user back.
	fourth := s.createSession(o, newSessionBody("idle"))
	_, session = b.openPage(fourth["connectUrl"].(string))
	s.expireSession(fmt.Sprint(fourth["id"]))
	r = b.do("POST", s.URL+"/connect/authorize", url.Values{"session": {session}})
	if loc, _ := url.Parse(r.Header.Get("Location")); r.Status != http.StatusSeeOther || loc.Host != "app.example.com" || loc.Query().Get("error") != "expired" {
		t.Fatalf("the button of an expired session: %d %s", r.Status, r.Header.Get("Location"))
	}
	// Pending and past its expiry, a session reads as expired too.
	third := s.createSession(o, newSessionBody("never opened"))
	s.expireSession(fmt.Sprint(third["id"]))
	if got := s.do("GET", fmt.Sprint("/connect/sessions/", third["id"]), o.auth(), nil).JSON(t); got["status"] != "error" || got["error"] != "expired" {
		t.Fatalf("unopened expired session: %v", got)
	}
	if n := s.instanceCount(); n != 0 || s.keap.Stats().CodeExchanges != 0 {
		t.Fatalf("%d instances, %d code exchanges after expired sessions", n, s.keap.Stats().CodeExchanges)
	}
	// Thirty days after its expiry a session is deleted, when the
	// organization opens its next one.
	var n int
	s.queryRow(`WITH u AS (UPDATE connect_sessions SET expires_at = now() - interval '31 days' WHERE id = $1 RETURNING 1) SELECT count(*) FROM u`, []any{first["id"]}, &n)
	s.createSession(o, newSessionBody("next"))
	if r := s.do("GET", fmt.Sprint("/connect/sessions/", first["id"]), o.auth(), nil); r.Status != 404 || n != 1 {
		t.Fatalf("a session 31 days past its expiry: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/connect/sessions/"+id, o.auth(), nil); r.Status != 200 {
		t.Fatalf("a session just expired was deleted too: %d %s", r.Status, r.Body)
	}
}

// Callbacks connectord did not start, or that come back twice, create
// nothing and redirect nowhere.
func TestConnect_ForgedAndReplayedCallbacksCreateNothing(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	created := s.createSession(o, newSessionBody("target"))
	b := newBrowser(t, s)
	_, session := b.openPage(created["connectUrl"].(string))
	authorizeURL := b.toKeap(session)

	// A real code from Keap but a made-up state, and no state at all.
	code, err := s.keap.IssueCode(testClientID, s.URL+"/connect/callback")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"code=" + code + "&state=forged-state-0123456789", "code=" + code, "error=access_denied&state=forged"} {
		r := b.do("GET", s.URL+"/connect/callback?"+q, nil)
		if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" || !strings.Contains(string(r.Body), "start again") {
			t.Fatalf("forged callback %q: %d %s", q, r.Status, r.Body)
		}
		checkPageHeaders(t, r, s.keap.URL)
	}
	// The real state works once: of the same callback sent four times at
	// once (a double click, a replay), one finishes and the rest do nothing.
	back := b.atKeap(authorizeURL, "allow")
	statuses := make(chan int, 4)
	for range 4 {
		go func() {
			req, _ := http.NewRequest("GET", back, nil)
			resp, err := b.client.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			checkContract(t, req, nil, response{Status: resp.StatusCode, Header: resp.Header, Body: data})
			statuses <- resp.StatusCode
		}()
	}
	counts := map[int]int{}
	for range 4 {
		counts[<-statuses]++
	}
	if counts[http.StatusSeeOther] != 1 || counts[http.StatusBadRequest] != 3 {
		t.Fatalf("four concurrent callbacks answered %v, want one 303 and three 400", counts)
	}
	if got := s.do("GET", fmt.Sprint("/connect/sessions/", created["id"]), o.auth(), nil).JSON(t); got["status"] != "success" {
		t.Fatalf("session after the callbacks: %v", got)
	}
	if n := s.instanceCount(); n != 1 || s.keap.Stats().CodeExchanges != 1 {
		t.Fatalf("%d instances and %d code exchanges, want 1 of each", n, s.keap.Stats().CodeExchanges)
	}
	// Pages with no token or a wrong one say so.
	for _, c := range []struct {
		url    string
		status int
	}{{s.URL + "/connect", 400}, {s.URL + "/connect?token=not-a-session-token", 404}} {
		if r := b.do("GET", c.url, nil); r.Status != c.status {
			t.Fatalf("GET %s: %d %s", c.url, r.Status, r.Body)
		}
	}
}

// The callback must come back to the browser that opened the connect page:
// another browser (no cookie, or another session's) gets 403 and nothing is
// created, and the user can still finish.
func TestConnect_WrongCookieCreatesNothing(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	victim := s.createSession(o, newSessionBody("victim"))
	other := s.createSession(o, newSessionBody("other"))
	user, stranger := newBrowser(t, s), newBrowser(t, s)
	_, session := user.openPage(victim["connectUrl"].(string))
	stranger.openPage(other["connectUrl"].(string)) // the stranger holds a cookie, of another session

	// Pressing the form from another browser is refused.
	if r := stranger.do("POST", s.URL+"/connect/authorize", url.Values{"session": {session}}); r.Status != http.StatusForbidden || r.Header.Get("Location") != "" {
		t.Fatalf("authorize from another browser: %d %s", r.Status, r.Body)
	}
	// The callback in another browser: one with another session's cookie,
	// one with none. Each refused callback uses its state up.
	for _, b := range []*browser{stranger, newBrowser(t, s)} {
		back := user.atKeap(user.toKeap(session), "allow")
		if r := b.do("GET", back, nil); r.Status != http.StatusForbidden || r.Header.Get("Location") != "" || !strings.Contains(string(r.Body), "this browser") {
			t.Fatalf("callback in another browser: %d %s", r.Status, r.Body)
		}
		if r := user.do("GET", back, nil); r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
			t.Fatalf("the state another browser used: %d %s", r.Status, r.Body)
		}
	}
	if n := s.instanceCount(); n != 0 || s.keap.Stats().CodeExchanges != 0 {
		t.Fatalf("%d instances, %d code exchanges after wrong-cookie callbacks", n, s.keap.Stats().CodeExchanges)
	}
	// The session is still the user's: they press the button again and finish.
	done := user.back(user.atKeap(user.toKeap(session), "allow"))
	if done.Query().Get("status") != "success" || done.Query().Get("connectSessionId") != fmt.Sprint(victim["id"]) {
		t.Fatalf("the user's own callback: %s", done)
	}
}

// Keap refusing the code (here: the organization's app secret changed to a
// wrong one meanwhile) ends the session with provider_refused.
func TestConnect_KeapRefusalRedirectsWithProviderRefused(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	created := s.createSession(o, newSessionBody("refused"))
	b := newBrowser(t, s)
	_, session := b.openPage(created["connectUrl"].(string))
	back := b.atKeap(b.toKeap(session), "allow")
	if r := s.do("PUT", "/organizations/elements/infusionsoftcrm/oauth/app", o.auth(), map[string]any{"apiKey": testClientID, "apiSecret": "a-wrong-secret-123"}); r.Status != 200 {
		t.Fatalf("PUT app: %d %s", r.Status, r.Body)
	}
	done := b.back(back)
	if done.Query().Get("status") != "error" || done.Query().Get("error") != "provider_refused" || done.Query().Has("errorMessage") {
		t.Fatalf("the application's redirect is %s", done)
	}
	// The application reads what Keap said.
	got := s.do("GET", fmt.Sprint("/connect/sessions/", created["id"]), o.auth(), nil).JSON(t)
	if got["error"] != "provider_refused" || !strings.Contains(fmt.Sprint(got["errorMessage"]), "refused") || !strings.Contains(fmt.Sprint(got["errorMessage"]), "Invalid client credentials") {
		t.Fatalf("session after Keap refused: %v", got)
	}
	if n := s.instanceCount(); n != 0 {
		t.Fatalf("%d instances after Keap refused", n)
	}
}

// The application's redirect URL and the rest of a session request are
// checked before anything is stored, with every problem named.
func TestConnect_SessionRequestValidation(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	apiKey := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, "")).JSON(t)
	with := func(changes map[string]any) map[string]any {
		b := newSessionBody("checked")
		for k, v := range changes {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"no redirect", with(map[string]any{"redirectUrl": nil}), 400, "missing required field: redirectUrl"},
		{"javascript redirect", with(map[string]any{"redirectUrl": "javascript:alert(1)"}), 400, "redirectUrl"},
		{"ftp redirect", with(map[string]any{"redirectUrl": "ftp://app.example.com/x"}), 400, "redirectUrl"},
		{"relative redirect", with(map[string]any{"redirectUrl": "/connected"}), 400, "redirectUrl"},
		{"scheme-relative redirect", with(map[string]any{"redirectUrl": "//evil.example/x"}), 400, "redirectUrl"},
		{"redirect with user", with(map[string]any{"redirectUrl": "https://me:pw@app.example.com/"}), 400, "redirectUrl"},
		{"redirect with fragment", with(map[string]any{"redirectUrl": "https://app.example.com/#x"}), 400, "redirectUrl"},
		{"expiry too short", with(map[string]any{"expiresInSeconds": 10}), 400, "expiresInSeconds 10 is out of range (60 to 86400)"},
		{"expiry too long", with(map[string]any{"expiresInSeconds": 86401}), 400, "expiresInSeconds"},
		{"oauth entries", with(map[string]any{"configuration": map[string]any{"oauth.api.secret": "x"}}), 400, "oauth.api.secret is set by the connect flow"},
		{"unknown entry", with(map[string]any{"configuration": map[string]any{"no.such.key": "x"}}), 400, "unknown configuration entries: no.such.key"},
		{"events without callback", with(map[string]any{"configuration": map[string]any{"event.notification.enabled": true}}), 400, "event.notification.callback.url is required"},
		{"no name", with(map[string]any{"name": nil}), 400, "missing required field: name"},
		{"no element", with(map[string]any{"element": nil}), 400, "element.key"},
		{"unknown field", with(map[string]any{"colour": "red"}), 400, "unknown fields in request body: colour"},
		{"no app for element", with(map[string]any{"element": map[string]any{"key": "infusionsoftmarketing"}}), 409, "PUT /organizations/elements/infusionsoftmarketing/oauth/app"},
		{"reconnect unknown", map[string]any{"instanceId": 999999, "redirectUrl": appRedirect}, 404, "no instance 999999"},
		{"reconnect api key", map[string]any{"instanceId": apiKey["id"], "redirectUrl": appRedirect}, 400, "only OAuth instances"},
		{"reconnect with name", map[string]any{"instanceId": apiKey["id"], "name": "x", "redirectUrl": appRedirect}, 400, "not taken with instanceId"},
	} {
		r := s.do("POST", "/connect/sessions", o.auth(), c.body)
		if r.Status != c.status || !strings.Contains(fmt.Sprint(r.JSON(t)["message"]), c.want) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, r.Status, r.Body, c.status, c.want)
		}
	}
	if n := s.count("connect_sessions"); n != 0 {
		t.Fatalf("%d sessions stored from refused requests", n)
	}
	// Organization auth is needed.
	if r := s.do("POST", "/connect/sessions", "User "+o.User.Secret, newSessionBody("x")); r.Status != 401 {
		t.Fatalf("without the organization secret: %d %s", r.Status, r.Body)
	}
	// A session of one organization is not another's.
	created := s.createSession(o, newSessionBody("mine"))
	other := s.createOrg("Other", "x@other.test")
	if r := s.do("GET", fmt.Sprint("/connect/sessions/", created["id"]), other.auth(), nil); r.Status != 404 {
		t.Fatalf("another organization reads the session: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/connect/sessions/abc", o.auth(), nil); r.Status != 400 {
		t.Fatalf("GET /connect/sessions/abc: %d", r.Status)
	}
	// A custom expiry is kept.
	short := s.createSession(o, with(map[string]any{"expiresInSeconds": 120}))
	if exp, _ := time.Parse(time.RFC3339, short["expiresDate"].(string)); exp.Sub(time.Now()) > 121*time.Second || exp.Sub(time.Now()) < 100*time.Second {
		t.Fatalf("expiresInSeconds 120 gave expiresDate %v", short["expiresDate"])
	}
}

// The organization's Keap app: stored once, shown masked with the redirect
// URI to register at Keap, removed; the secret is never in an answer.
func TestConnect_OAuthAppPutGetDelete(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	const path = "/elements/api-v2/organizations/elements/infusionsoftcrm/oauth/app"
	got := s.do("GET", path, o.auth(), nil)
	app := got.JSON(t)
	if got.Status != 200 || app["apiKey"] != testClientID || app["apiSecret"] != "********" || app["redirectUri"] != s.URL+"/connect/callback" || app["element"] != "infusionsoftcrm" {
		t.Fatalf("GET app: %d %s", got.Status, got.Body)
	}
	for _, c := range []struct {
		body   any
		status int
		want   string
	}{
		{map[string]any{}, 400, "missing required field: apiKey (the client id of your Keap developer app), apiSecret"},
		{map[string]any{"apiKey": "x"}, 400, "apiSecret"},
		{map[string]any{"apiKey": "x", "apiSecret": "y", "callbackUrl": "z"}, 400, "unknown fields in request body: callbackUrl"},
	} {
		r := s.do("PUT", path, o.auth(), c.body)
		if r.Status != c.status || !strings.Contains(fmt.Sprint(r.JSON(t)["message"]), c.want) {
			t.Errorf("PUT %v: %d %s, want %d naming %q", c.body, r.Status, r.Body, c.status, c.want)
		}
	}
	if r := s.do("PUT", "/organizations/elements/nosuch/oauth/app", o.auth(), map[string]any{"apiKey": "a", "apiSecret": "b"}); r.Status != 404 {
		t.Fatalf("unknown element: %d %s", r.Status, r.Body)
	}
	const newSecret = "replaced-client-secret-456"
	r := s.do("PUT", path, o.auth(), map[string]any{"apiKey": "another-client", "apiSecret": newSecret})
	if r.Status != 200 || strings.Contains(string(r.Body), newSecret) || r.JSON(t)["apiKey"] != "another-client" {
		t.Fatalf("replace: %d %s", r.Status, r.Body)
	}
	// Another organization has its own (none).
	other := s.createOrg("Other", "x@other.test")
	if r := s.do("GET", path, other.auth(), nil); r.Status != 404 || !strings.Contains(string(r.Body), "PUT /organizations/elements/infusionsoftcrm/oauth/app") {
		t.Fatalf("another organization's app: %d %s", r.Status, r.Body)
	}
	if r := s.do("DELETE", path, o.auth(), nil); r.Status != 200 || len(r.Body) != 0 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := s.do("DELETE", path, o.auth(), nil); r.Status != 404 {
		t.Fatalf("DELETE again: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", path, o.auth(), nil); r.Status != 404 {
		t.Fatalf("GET after DELETE: %d %s", r.Status, r.Body)
	}
	if strings.Contains(s.logs.String(), newSecret) || strings.Contains(s.logs.String(), testClientSecret) {
		t.Fatal("a client secret is in the logs")
	}
	checkNoSecretsAtRest(t, s, map[string]string{"client secret": newSecret})
}

// An instance that became invalid is repaired through a reconnect session:
// new tokens, same instance, same instance token. The instance's event
// callback hears "created" when connect made it and "reconnected" after.
func TestConnect_ReconnectRepairsInvalidInstanceAndNotifies(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CONNECTORD_CALLBACK_ALLOW_PRIVATE": "true", "CONNECTORD_DELIVERY_BACKOFF_BASE": "10ms"}
	s, o := startConnectServer(t, env)
	rcv := newReceiver(t, "connect-signature-key")
	body := newSessionBody("with events")
	body["configuration"] = map[string]any{
		"event.notification.enabled":       true,
		"event.notification.callback.url":  rcv.URL,
		"event.notification.signature.key": "connect-signature-key",
		"event.vendor.type":                "polling",
	}
	created := s.createSession(o, body)
	b := newBrowser(t, s)
	_, session := b.openPage(created["connectUrl"].(string))
	if done := b.back(b.atKeap(b.toKeap(session), "allow")); done.Query().Get("status") != "success" {
		t.Fatalf("connect: %s", done)
	}
	read := s.do("GET", fmt.Sprint("/connect/sessions/", created["id"]), o.auth(), nil).JSON(t)
	id, token := fmt.Sprint(read["instanceId"]), read["instanceToken"].(string)
	waitUntil(t, "the instance-created notification", 15*time.Second, func() bool { return len(rcv.received()) >= 1 })
	checkInstanceNotice(t, rcv.received()[0], id, "CREATED", "created")

	// Keap stops accepting the refresh token: the instance becomes invalid.
	oldRefresh := s.instanceSecrets(id)["oauth.user.refresh_token"]
	s.keap.RevokeRefreshTokens(testClientID)
	if r := s.do("PUT", "/instances/"+id+"/tokens/refresh", o.auth(), nil); r.Status != 400 {
		t.Fatalf("refused refresh: %d %s", r.Status, r.Body)
	}
	if got := s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t); got["valid"] != false {
		t.Fatalf("instance after the refused refresh: %v", got)
	}

	// The application opens a reconnect session; the user allows again.
	re := s.createSession(o, map[string]any{"instanceId": read["instanceId"], "redirectUrl": appRedirect})
	pending := s.do("GET", fmt.Sprint("/connect/sessions/", re["id"]), o.auth(), nil).JSON(t)
	if pending["status"] != "pending" || pending["reconnect"] != true || fmt.Sprint(pending["instanceId"]) != id || pending["name"] != "with events" {
		t.Fatalf("reconnect session: %v", pending)
	}
	page, session := b.openPage(re["connectUrl"].(string))
	if !strings.Contains(string(page.Body), "Reconnect") || !strings.Contains(string(page.Body), "with events") {
		t.Fatalf("the reconnect page:\n%s", page.Body)
	}
	done := b.back(b.atKeap(b.toKeap(session), "allow"))
	if done.Query().Get("status") != "success" || done.Query().Get("connectSessionId") != fmt.Sprint(re["id"]) {
		t.Fatalf("reconnect redirect: %s", done)
	}
	after := s.do("GET", fmt.Sprint("/connect/sessions/", re["id"]), o.auth(), nil).JSON(t)
	if after["status"] != "success" || fmt.Sprint(after["instanceId"]) != id || after["instanceToken"] != nil {
		t.Fatalf("reconnect session after success: %v", after)
	}
	inst := s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)
	if inst["valid"] != true || inst["invalidReason"] != nil || inst["name"] != "with events" {
		t.Fatalf("instance after reconnect: %v", inst)
	}
	if s.instanceSecrets(id)["oauth.user.refresh_token"] == oldRefresh {
		t.Fatal("the reconnected instance kept its old refresh token")
	}
	if r := s.do("GET", "/hubs/crm/contacts?pageSize=1", "User "+o.User.Secret+", Element "+token, nil); r.Status != 200 {
		t.Fatalf("the same instance token after reconnect: %d %s", r.Status, r.Body)
	}
	if s.instanceCount() != 1 {
		t.Fatalf("%d instances, want the one", s.instanceCount())
	}
	waitUntil(t, "the instance-reconnected notification", 15*time.Second, func() bool {
		for _, g := range rcv.received() {
			if raw, _ := g.Body["raw"].(map[string]any); raw["connect"] == "reconnected" {
				return true
			}
		}
		return false
	})
	var notice received
	for _, g := range rcv.received() {
		if raw, _ := g.Body["raw"].(map[string]any); raw["connect"] == "reconnected" {
			notice = g
		}
	}
	checkInstanceNotice(t, notice, id, "UPDATED", "reconnected")
	b.checkNoSecrets(map[string]string{"instance token": token, "client secret": testClientSecret, "signature key": "connect-signature-key"})
	checkNoSecretsAtRest(t, s, map[string]string{"signature key": "connect-signature-key"})
}

func checkInstanceNotice(t *testing.T, g received, id, eventType, what string) {
	t.Helper()
	evs, _ := g.Body["events"].([]any)
	if !g.Signed || len(evs) != 1 {
		t.Fatalf("notification signed %v with %d events: %v", g.Signed, len(evs), g.Body)
	}
	ev := evs[0].(map[string]any)
	raw, _ := g.Body["raw"].(map[string]any)
	if ev["objectType"] != "instance" || ev["objectId"] != id || ev["eventType"] != eventType || raw["connect"] != what || raw["valid"] != true {
		t.Fatalf("notification %v, want %s of instance %s (%s)", g.Body, eventType, id, what)
	}
}

// The README's connect block runs, as written, against `connectord serve --sandbox`.
func TestREADMEConnect_RunsAgainstSandbox(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README connect block needs %s: install it (apt-get install %s)", tool, tool)
		}
	}
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	o := s.createOrg("dev", "dev@localhost")
	cmd := exec.Command("bash", "-c", strings.Join(readmeBlocks(t, "connect", "sh"), ""))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "BASE=" + s.URL, "USER_SECRET=" + o.User.Secret, "ORG_SECRET=" + o.Organization.Secret}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "connect complete") {
		t.Fatalf("README connect block failed: %v\n%s\nserver logs:\n%s", err, out, s.logs)
	}
	for _, want := range []string{`"apiSecret": "********"`, `"redirectUri": "` + s.URL + `/connect/callback"`, "https://www.yourcallbackurl.com/connected\n", `"status": "success"`, `"hasToken": true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The sandbox's start-up warning names its made-up credentials on
	// purpose; no request line may hold the secret or a token.
	for _, line := range s.logs.Lines() {
		if strings.Contains(line, `"message":"request"`) && (strings.Contains(line, "sandbox-client-secret") || strings.Contains(line, "token=") && !strings.Contains(line, "token=REDACTED")) {
			t.Errorf("a request log line holds a secret: %s", line)
		}
	}
	if k.Stats().CodeExchanges != 0 {
		t.Fatal("the sandbox flow reached the test's fake Keap instead of the in-process one")
	}
}

// The organization's Keap app and the sealed parts of connect sessions are
// re-encrypted by `connectord keys rotate` like instance credentials, so the
// old key can go.
func TestConnect_KeysRotateResealsAppsAndSessions(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	k, env := s.keap, s.env
	oldKey := env["CONNECTORD_ENCRYPTION_KEY"]
	// One session finished with its token unread, one pending with a
	// configuration holding a secret.
	done := s.createSession(o, newSessionBody("finished"))
	b := newBrowser(t, s)
	_, session := b.openPage(done["connectUrl"].(string))
	if out := b.back(b.atKeap(b.toKeap(session), "allow")); out.Query().Get("status") != "success" {
		t.Fatalf("connect: %s", out)
	}
	body := newSessionBody("pending")
	body["configuration"] = map[string]any{"event.notification.signature.key": "rotating-signature-key"}
	pending := s.createSession(o, body)
	s.stop()

	newEnv := map[string]string{}
	for key, v := range env {
		newEnv[key] = v
	}
	newEnv["CONNECTORD_ENCRYPTION_KEY"] = newEncryptionKey(t)
	if err := run(context.Background(), []string{"serve"}, getenvFrom(newEnv), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "CONNECTORD_ENCRYPTION_KEY_PREVIOUS") {
		t.Fatalf("serve with the app and sessions sealed by an unknown key: %v", err)
	}
	newEnv["CONNECTORD_ENCRYPTION_KEY_PREVIOUS"] = oldKey
	if err := run(context.Background(), []string{"keys", "rotate"}, getenvFrom(newEnv), io.Discard, io.Discard); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	delete(newEnv, "CONNECTORD_ENCRYPTION_KEY_PREVIOUS")
	s2 := startServerWith(t, newEnv, k, nil)
	k.AddRedirectURI(testClientID, s2.URL+"/connect/callback")
	if r := s2.do("GET", "/organizations/elements/infusionsoftcrm/oauth/app", o.auth(), nil); r.Status != 200 {
		t.Fatalf("the app after rotation: %d %s", r.Status, r.Body)
	}
	if got := s2.do("GET", fmt.Sprint("/connect/sessions/", done["id"]), o.auth(), nil).JSON(t); got["instanceToken"] == nil {
		t.Fatalf("the unread token after rotation: %v", got)
	}
	// The pending session finishes under the new key: its configuration opens.
	connectURL := strings.Replace(pending["connectUrl"].(string), s.URL, s2.URL, 1)
	b2 := newBrowser(t, s2)
	_, session = b2.openPage(connectURL)
	if out := b2.back(b2.atKeap(b2.toKeap(session), "allow")); out.Query().Get("status") != "success" {
		t.Fatalf("the pending session after rotation: %s", out)
	}
}

// Behind an https public URL, the links and the redirect URI use it and the
// browser cookie is Secure.
func TestConnect_HTTPSPublicURLMakesTheCookieSecure(t *testing.T) {
	t.Parallel()
	const public = "https://connect.example.test"
	s, o := startConnectServer(t, map[string]string{"CONNECTORD_PUBLIC_URL": public})
	if got := s.do("GET", "/organizations/elements/infusionsoftcrm/oauth/app", o.auth(), nil).JSON(t); got["redirectUri"] != public+"/connect/callback" {
		t.Fatalf("redirectUri %v", got["redirectUri"])
	}
	created := s.createSession(o, newSessionBody("secure"))
	connectURL := created["connectUrl"].(string)
	if !strings.HasPrefix(connectURL, public+"/connect?token=") {
		t.Fatalf("connectUrl %q is not under the public URL", connectURL)
	}
	// The test reaches the server directly, as the proxy in front would.
	r := newBrowser(t, s).do("GET", s.URL+strings.TrimPrefix(connectURL, public), nil)
	cookies := (&http.Response{Header: r.Header}).Cookies()
	if r.Status != 200 || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("page %d, cookies %+v: want one Secure, HttpOnly, SameSite=Lax cookie", r.Status, cookies)
	}
}

// The connect form refuses what a browser would not send, with a page that
// says what to do, and an oversized body with 413.
func TestConnect_AuthorizeFormRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, o := startConnectServer(t, nil)
	created := s.createSession(o, newSessionBody("form"))
	b := newBrowser(t, s)
	_, session := b.openPage(created["connectUrl"].(string))
	for _, c := range []struct {
		form   url.Values
		status int
		want   string
	}{
		{url.Values{}, 400, "names no connect session"},
		{url.Values{"session": {"abc"}}, 400, "names no connect session"},
		{url.Values{"session": {"999999"}}, 403, "this browser"},
		{url.Values{"session": {session}, "pad": {strings.Repeat("x", 2<<20)}}, 413, "larger than"},
	} {
		r := b.do("POST", s.URL+"/connect/authorize", c.form)
		if r.Status != c.status || !strings.Contains(string(r.Body), c.want) || r.Header.Get("Location") != "" {
			t.Errorf("form %.60v: %d %.300s, want %d naming %q", c.form, r.Status, r.Body, c.status, c.want)
		}
	}
	if r := b.do("GET", s.URL+"/connect/authorize", nil); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET /connect/authorize: %d", r.Status)
	}
}
