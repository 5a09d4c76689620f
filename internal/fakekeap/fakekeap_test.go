package fakekeap

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	clientID     = "abcdefghijklmnopqrstuvwx"
	clientSecret = "s3cr3tK3y9"
	sak          = "KeapAK-test-service-account-key"
	legacyKey    = "legacy-encrypted-key"
	callback     = "https://app.example.com/oauth/callback?tenant=7"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestFake(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	fk := New(opts)
	fk.RegisterClient(clientID, clientSecret, callback)
	fk.AddServiceAccountKey(sak)
	fk.AddLegacyKey(AppName, legacyKey)
	srv := httptest.NewServer(fk)
	t.Cleanup(func() { srv.Close(); fk.Close() })
	return fk, srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send makes a request; header holds name, value pairs.
func send(t *testing.T, method, target string, body any, header ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
		header = append(header, "Content-Type", "application/json")
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func basicAuth() []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":"+clientSecret))}
}

func postToken(t *testing.T, srv *httptest.Server, form url.Values, header ...string) reply {
	t.Helper()
	return send(t, http.MethodPost, srv.URL+"/token", form.Encode(), append(header, "Content-Type", "application/x-www-form-urlencoded")...)
}

func exchange(t *testing.T, fk *Server, srv *httptest.Server) (access, refresh string) {
	t.Helper()
	code, err := fk.IssueCode(clientID, callback)
	if err != nil {
		t.Fatal(err)
	}
	r := postToken(t, srv, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback},
		"client_id": {clientID}, "client_secret": {clientSecret}})
	if r.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", r.status, r.body)
	}
	m := r.json(t)
	return m["access_token"].(string), m["refresh_token"].(string)
}

func refreshWith(t *testing.T, srv *httptest.Server, token string) reply {
	t.Helper()
	return postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}, basicAuth()...)
}

func rest(t *testing.T, srv *httptest.Server, method, path string, body any) reply {
	t.Helper()
	return send(t, method, srv.URL+"/crm/rest/v1"+path, body, bearer(sak)...)
}

func TestAuthorize_RedirectsWithCodeStateAndScope(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	q := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"full"}, "state": {"xyz"}}
	r := send(t, http.MethodGet, srv.URL+"/app/oauth/authorize?"+q.Encode(), nil)
	if r.status != http.StatusFound {
		t.Fatalf("status %d, want 302: %s", r.status, r.body)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	got := loc.Query()
	if got.Get("state") != "xyz" || got.Get("scope") != "full|ab123.infusionsoft.com" || got.Get("code") == "" || got.Get("tenant") != "7" {
		t.Fatalf("redirect %s lacks code, state, scope or the callback's own query", loc)
	}
	tok := postToken(t, srv, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {callback}}, basicAuth()...)
	if tok.status != http.StatusOK || tok.json(t)["token_type"] != "bearer" || tok.json(t)["expires_in"] != float64(86400) {
		t.Fatalf("exchange with basic auth: %d %s", tok.status, tok.body)
	}
	if fk.Stats().CodeExchanges != 1 {
		t.Fatalf("stats %+v", fk.Stats())
	}
}

func TestAuthorize_DenyRedirectsWithAccessDenied(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	q := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"}, "state": {"s1"}, "deny": {"1"}}
	r := send(t, http.MethodGet, srv.URL+"/app/oauth/authorize?"+q.Encode(), nil)
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "s1" || loc.Query().Has("code") {
		t.Fatalf("status %d location %s", r.status, loc)
	}
}

func TestAuthorize_RejectsBadRequestsWithExplanation(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	good := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"full"}}
	for _, tc := range []struct{ name, param, value, want string }{
		{"unknown client", "client_id", "nobody", "unknown client_id"},
		{"missing redirect", "redirect_uri", "", "missing redirect_uri"},
		{"relative redirect", "redirect_uri", "/cb", "absolute"},
		{"token flow", "response_type", "token", "response_type"},
		{"other scope", "scope", "contacts", "scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = v
			}
			q.Set(tc.param, tc.value)
			r := send(t, http.MethodGet, srv.URL+"/app/oauth/authorize?"+q.Encode(), nil)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("status %d body %q, want 400 mentioning %q", r.status, r.body, tc.want)
			}
		})
	}
}

func TestAuthorize_BrowserGetsConsentPageUnlessAutoApprove(t *testing.T) {
	t.Parallel()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"}, "state": {"s<1>"}}
	for _, auto := range []bool{false, true} {
		_, srv := newTestFake(t, Options{AutoApprove: auto})
		r := send(t, http.MethodGet, srv.URL+"/app/oauth/authorize?"+q.Encode(), nil, "Accept", "text/html")
		body := string(r.body)
		if auto && r.status != http.StatusFound || !auto && (r.status != http.StatusOK ||
			!strings.Contains(body, `<form method="post"`) || !strings.Contains(body, `value="allow"`) || !strings.Contains(body, `value="deny"`) ||
			!strings.Contains(body, `value="s&lt;1&gt;"`)) {
			t.Fatalf("AutoApprove=%v: status %d body %s", auto, r.status, r.body)
		}
	}
}

// The consent page's buttons post the request back with the person's
// decision: Allow redirects with a code, Deny with error=access_denied.
func TestAuthorize_ConsentButtonsAllowAndDeny(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct{ decision, want string }{{"allow", "code"}, {"deny", "error"}, {"maybe", ""}} {
		form := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"full"}, "state": {"st"}, "decision": {tc.decision}}
		resp, err := c.PostForm(srv.URL+"/app/oauth/authorize", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if tc.want == "" {
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("decision %q: status %d, want 400", tc.decision, resp.StatusCode)
			}
			continue
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get(tc.want) == "" || loc.Query().Get("state") != "st" || !strings.HasPrefix(loc.String(), "https://app.example.com/oauth/callback?") {
			t.Fatalf("decision %q: status %d location %s", tc.decision, resp.StatusCode, loc)
		}
		if tc.decision == "deny" && (loc.Query().Get("error") != "access_denied" || loc.Query().Has("code")) {
			t.Fatalf("deny redirected to %s", loc)
		}
	}
}

// The authorize page sends users only to a redirect URI registered for the
// client; anything else is refused without a redirect, Allow or Deny alike.
func TestAuthorize_RefusesUnregisteredRedirectURI(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	for _, uri := range []string{"https://evil.example/cb", callback + "&x=1", "https://app.example.com/oauth/callback"} {
		q := url.Values{"client_id": {clientID}, "redirect_uri": {uri}, "response_type": {"code"}}
		for _, extra := range []string{"", "&deny=1"} {
			r := send(t, http.MethodGet, srv.URL+"/app/oauth/authorize?"+q.Encode()+extra, nil)
			if r.status != http.StatusBadRequest || r.header.Get("Location") != "" || !strings.Contains(string(r.body), "not registered") {
				t.Fatalf("%s%s: status %d location %q body %s", uri, extra, r.status, r.header.Get("Location"), r.body)
			}
		}
	}
	fk.AddRedirectURI(clientID, "https://evil.example/cb")
	q := url.Values{"client_id": {clientID}, "redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}}
	if r := send(t, http.MethodGet, srv.URL+"/app/oauth/authorize?"+q.Encode(), nil); r.status != http.StatusFound {
		t.Fatalf("after AddRedirectURI: status %d %s", r.status, r.body)
	}
}

func TestToken_RejectsJSONBody(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	r := send(t, http.MethodPost, srv.URL+"/token", map[string]string{"grant_type": "refresh_token", "refresh_token": "x"})
	want := `{"error":"invalid_request","error_description":"response_type or grant_type is required"}`
	if r.status != http.StatusBadRequest || strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
}

func TestToken_CodeExchangeRules(t *testing.T) {
	t.Parallel()
	clk := newClock()
	fk, srv := newTestFake(t, Options{Now: clk.Now})
	for _, tc := range []struct {
		name       string
		edit       func(form url.Values)
		before     func()
		wantStatus int
		wantError  string
	}{
		{"valid", func(url.Values) {}, nil, 200, ""},
		{"wrong secret", func(f url.Values) { f.Set("client_secret", "nope") }, nil, 401, "invalid_client"},
		{"wrong redirect_uri", func(f url.Values) { f.Set("redirect_uri", "https://evil.example.com/") }, nil, 400, "invalid_grant"},
		{"unknown code", func(f url.Values) { f.Set("code", "made-up") }, nil, 400, "invalid_grant"},
		{"expired code", func(url.Values) {}, func() { clk.Advance(11 * time.Minute) }, 400, "invalid_grant"},
		{"unsupported grant", func(f url.Values) { f.Set("grant_type", "password") }, nil, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := fk.IssueCode(clientID, callback)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback},
				"client_id": {clientID}, "client_secret": {clientSecret}}
			tc.edit(form)
			if tc.before != nil {
				tc.before()
			}
			r := postToken(t, srv, form)
			if r.status != tc.wantStatus || tc.wantError != "" && r.json(t)["error"] != tc.wantError {
				t.Fatalf("status %d body %s, want %d %s", r.status, r.body, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus == 200 {
				if again := postToken(t, srv, form); again.status != 400 || again.json(t)["error"] != "invalid_grant" {
					t.Fatalf("second use of a code: %d %s", again.status, again.body)
				}
			}
		})
	}
	if _, err := fk.IssueCode("unknown", callback); err == nil {
		t.Fatal("IssueCode accepted an unknown client")
	}
}

func TestToken_RefreshRotatesAndCountsReuse(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	access1, rt1 := exchange(t, fk, srv)

	r := refreshWith(t, srv, rt1)
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	rt2 := r.json(t)["refresh_token"].(string)
	if rt2 == rt1 || fk.RefreshTokenValid(rt1) || !fk.RefreshTokenValid(rt2) || r.json(t)["scope"] != tokenScope {
		t.Fatalf("refresh did not rotate: %s", r.body)
	}
	if got := send(t, http.MethodGet, srv.URL+"/crm/rest/v1/account/profile", nil, bearer(access1)...); got.status != 200 {
		t.Fatalf("the old access token stopped working before its expiry: %d", got.status)
	}

	r = refreshWith(t, srv, rt1)
	if r.status != 400 || strings.TrimSpace(string(r.body)) != `{"error":"invalid_grant","error_description":"Invalid Refresh Token"}` {
		t.Fatalf("reuse of a rotated token: %d %s", r.status, r.body)
	}
	if r := refreshWith(t, srv, "never-issued"); r.status != 400 {
		t.Fatalf("unknown token: %d", r.status)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "client_id": {clientID}, "client_secret": {clientSecret}}
	r = postToken(t, srv, form)
	if r.status != 200 {
		t.Fatalf("refresh with credentials in the body: %d %s", r.status, r.body)
	}
	rt3 := r.json(t)["refresh_token"].(string)
	fk.RevokeRefreshTokens(clientID)
	if fk.RefreshTokenValid(rt3) || refreshWith(t, srv, rt3).status != 400 {
		t.Fatal("a revoked refresh token still works")
	}
	want := Stats{CodeExchanges: 1, Refreshes: 2, RefreshTokenReuse: 1, InvalidRefreshAttempts: 2, APICalls: 1}
	if got := fk.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func TestToken_ConcurrentRefreshesStayConsistent(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	const instances, workers, rounds = 200, 8, 3
	tokens := make([]string, instances)
	for i := range tokens {
		_, tokens[i] = exchange(t, fk, srv)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < instances; i += workers {
				for range rounds {
					r := refreshWith(t, srv, tokens[i])
					if r.status != 200 {
						t.Errorf("instance %d: %d %s", i, r.status, r.body)
						return
					}
					tokens[i] = r.json(t)["refresh_token"].(string)
				}
			}
		})
	}
	wg.Wait()

	// Two processes refreshing the same instance: one wins, the other loses the token.
	statuses := make(chan int, 2)
	for range 2 {
		wg.Go(func() { statuses <- refreshWith(t, srv, tokens[0]).status })
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	st := fk.Stats()
	if got[200] != 1 || got[400] != 1 || st.RefreshTokenReuse != 1 || st.Refreshes != instances*rounds+1 {
		t.Fatalf("statuses %v stats %+v", got, st)
	}
}

func TestREST_AuthFailures(t *testing.T) {
	t.Parallel()
	clk := newClock()
	fk, srv := newTestFake(t, Options{Now: clk.Now})
	access, _ := exchange(t, fk, srv)
	stale, _ := exchange(t, fk, srv)
	fk.ExpireAccessTokens()
	fresh, _ := exchange(t, fk, srv)
	aged, _ := exchange(t, fk, srv)
	for _, tc := range []struct {
		name       string
		header     []string
		wantStatus int
		wantCode   string
	}{
		{"no credentials", nil, 401, "keymanagement.service.invalid_access_token"},
		{"unknown bearer", bearer("bogus"), 401, "keymanagement.service.invalid_access_token"},
		{"expired by ExpireAccessTokens", bearer(access), 401, "keymanagement.service.access_token_expired"},
		{"another expired token", bearer(stale), 401, "keymanagement.service.access_token_expired"},
		{"unknown api key", []string{"X-Keap-API-Key", "KeapAK-nope"}, 401, "keymanagement.service.invalid_access_token"},
		{"legacy key as bearer", bearer(legacyKey), 401, "keymanagement.service.invalid_access_token"},
		{"legacy key header (as Keap takes them since 2024)", []string{"X-Keap-API-Key", legacyKey}, 200, ""},
		{"fresh token", bearer(fresh), 200, ""},
		{"service account key header", []string{"X-Keap-API-Key", sak}, 200, ""},
		{"service account key as bearer", bearer(sak), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, http.MethodGet, srv.URL+"/crm/rest/v1/account/profile", nil, tc.header...)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			if r.header.Get("x-keap-product-throttle-limit") == "" {
				t.Fatal("no throttle headers")
			}
			if tc.wantCode != "" {
				fault := r.json(t)["fault"].(map[string]any)
				if fault["detail"].(map[string]any)["errorcode"] != tc.wantCode {
					t.Fatalf("fault %v, want %s", fault, tc.wantCode)
				}
			}
		})
	}
	clk.Advance(24*time.Hour + time.Second)
	if r := send(t, http.MethodGet, srv.URL+"/crm/rest/v1/oauth/connect/userinfo", nil, bearer(aged)...); r.status != 401 ||
		!strings.Contains(string(r.body), "Access Token Expired") {
		t.Fatalf("a 24h-old token: %d %s", r.status, r.body)
	}
}

func TestContacts_PagingFollowsNextAndFilters(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	fk.SeedContacts(120)

	seen := map[float64]bool{}
	next, pages := srv.URL+"/crm/rest/v1/contacts?limit=50", 0
	for ; pages < 10; pages++ {
		m := send(t, http.MethodGet, next, nil, bearer(sak)...).json(t)
		contacts := m["contacts"].([]any)
		if m["count"] != float64(120) {
			t.Fatalf("count %v", m["count"])
		}
		for _, c := range contacts {
			seen[c.(map[string]any)["id"].(float64)] = true
		}
		next = m["next"].(string)
		if !strings.HasPrefix(next, srv.URL+"/crm/rest/v1/contacts?") {
			t.Fatalf("next %q is not an absolute URL of the list", next)
		}
		if len(contacts) < 50 {
			break
		}
	}
	if len(seen) != 120 || pages != 2 {
		t.Fatalf("saw %d contacts in %d pages", len(seen), pages+1)
	}

	seed, _ := fk.Contact(100)
	for _, tc := range []struct {
		name, query string
		wantCount   int
		wantFirstID float64
	}{
		{"email", "email=CONTACT7@example.com", 1, 7},
		{"given name", "given_name=seed9", 1, 9},
		{"descending ids", "order=id&order_direction=DESCENDING&limit=5", 120, 120},
		{"since last_updated", "since=" + url.QueryEscape(seed["last_updated"].(string)), 21, 100},
		{"until", "until=" + url.QueryEscape(seed["last_updated"].(string)) + "&order=last_updated&order_direction=DESCENDING", 100, 100},
		{"offset past the end", "offset=500", 120, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rest(t, srv, http.MethodGet, "/contacts?"+tc.query, nil)
			m := r.json(t)
			contacts := m["contacts"].([]any)
			if m["count"] != float64(tc.wantCount) {
				t.Fatalf("count %v, want %d", m["count"], tc.wantCount)
			}
			if tc.wantFirstID != 0 && contacts[0].(map[string]any)["id"] != tc.wantFirstID {
				t.Fatalf("first id %v, want %v", contacts[0].(map[string]any)["id"], tc.wantFirstID)
			}
			if tc.wantFirstID == 0 && len(contacts) != 0 {
				t.Fatalf("got %d contacts past the end", len(contacts))
			}
		})
	}
	if r := rest(t, srv, http.MethodGet, "/contacts?order=shoe_size", nil); r.status != 400 {
		t.Fatalf("bad order: %d", r.status)
	}
}

func TestContacts_CreateValidatesContactPointsAndRegions(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	email := []map[string]string{{"email": "a@example.com", "field": "EMAIL1"}}
	addr := func(cc, region string) map[string]any {
		return map[string]any{"email_addresses": email, "addresses": []map[string]string{{"field": "BILLING", "country_code": cc, "region": region}}}
	}
	for _, tc := range []struct {
		name       string
		body       any
		wantStatus int
		wantMsg    string
	}{
		{"email only", map[string]any{"email_addresses": email, "given_name": "Ann"}, 201, ""},
		{"phone only", map[string]any{"phone_numbers": []map[string]string{{"number": "555-1234", "field": "PHONE1"}}}, 201, ""},
		{"neither email nor phone", map[string]any{"given_name": "Nobody"}, 400, "email address or phone number"},
		{"bad email", map[string]any{"email_addresses": []map[string]string{{"email": "not-an-email", "field": "EMAIL1"}}}, 400, "Invalid email"},
		{"US state", addr("USA", "US-AZ"), 201, ""},
		{"Canadian province", addr("CAN", "CA-ON"), 201, ""},
		{"UK region", addr("GBR", "GB-LND"), 201, ""},
		{"region without country", addr("", "US-AZ"), 400, "BILLING Country Code is required"},
		{"unknown state", addr("USA", "US-ZZ"), 400, "BILLING Region is invalid"},
		{"region of another country", addr("GBR", "US-AZ"), 400, "BILLING Region is invalid"},
		{"alpha-2 country", addr("US", ""), 400, "BILLING Country Code is invalid"},
		{"not JSON", "{", 400, "Input could not be converted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r reply
			if s, ok := tc.body.(string); ok {
				r = send(t, http.MethodPost, srv.URL+"/crm/rest/v1/contacts", s, append(bearer(sak), "Content-Type", "application/json")...)
			} else {
				r = rest(t, srv, http.MethodPost, "/contacts", tc.body)
			}
			if r.status != tc.wantStatus || tc.wantMsg != "" && !strings.Contains(r.json(t)["message"].(string), tc.wantMsg) {
				t.Fatalf("status %d body %s, want %d %q", r.status, r.body, tc.wantStatus, tc.wantMsg)
			}
			if r.status == 201 {
				m := r.json(t)
				if _, ok := m["middle_name"]; !ok || m["middle_name"] != nil || !strings.HasSuffix(m["date_created"].(string), "Z") {
					t.Fatalf("created contact lacks explicit nulls or timestamps: %s", r.body)
				}
			}
		})
	}
	if r := send(t, http.MethodGet, srv.URL+"/crm/rest/v1/locales/countries/CAN/provinces", nil, bearer(sak)...); !strings.Contains(string(r.body), `"CA-QC":"Quebec"`) {
		t.Fatalf("provinces: %s", r.body)
	}
}

func TestContacts_UpsertUpdatesDuplicateElseCreates(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	body := func(given, option string) map[string]any {
		return map[string]any{"given_name": given, "family_name": "Lee", "duplicate_option": option,
			"email_addresses": []map[string]string{{"email": "lee@example.com", "field": "EMAIL1"}}}
	}
	first := rest(t, srv, http.MethodPut, "/contacts", body("Ann", "Email"))
	second := rest(t, srv, http.MethodPut, "/contacts", body("Anne", "Email"))
	third := rest(t, srv, http.MethodPut, "/contacts", body("Bob", "EmailAndName"))
	bad := rest(t, srv, http.MethodPut, "/contacts", body("Ann", "Phone"))
	if first.status != 201 || second.status != 200 || third.status != 201 || bad.status != 400 {
		t.Fatalf("statuses %d %d %d %d, want 201 200 201 400", first.status, second.status, third.status, bad.status)
	}
	if first.json(t)["id"] != second.json(t)["id"] || second.json(t)["given_name"] != "Anne" || third.json(t)["id"] == first.json(t)["id"] {
		t.Fatalf("upsert matched wrongly: %s / %s / %s", first.body, second.body, third.body)
	}
}

func TestContacts_PatchTagsAndDelete(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	c := rest(t, srv, http.MethodPost, "/contacts", map[string]any{"email_addresses": []map[string]string{{"email": "t@example.com", "field": "EMAIL1"}}}).json(t)
	id := int64(c["id"].(float64))
	path := fmt.Sprintf("/contacts/%d", id)

	if r := rest(t, srv, http.MethodPatch, path, map[string]any{"given_name": "Tia", "phone_numbers": []map[string]string{{"number": "555", "field": "PHONE2"}}}); r.status != 200 || r.json(t)["given_name"] != "Tia" || len(r.json(t)["email_addresses"].([]any)) != 1 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	tag := rest(t, srv, http.MethodPost, "/tags", map[string]any{"name": "VIP"}).json(t)["id"].(float64)
	other := fk.AddTag("Lead")
	r := rest(t, srv, http.MethodPost, path+"/tags", map[string]any{"tagIds": []any{tag, other, 999}})
	want := fmt.Sprintf(`{"%d":"SUCCESS","%d":"SUCCESS","999":"TAG_ID_NOT_FOUND"}`, int64(tag), other)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("apply tags: %d %s, want %s", r.status, r.body, want)
	}
	if r := rest(t, srv, http.MethodPost, path+"/tags", map[string]any{"tagIds": []any{tag}}); !strings.Contains(string(r.body), "DUPLICATE") {
		t.Fatalf("re-apply: %s", r.body)
	}
	if r := rest(t, srv, http.MethodDelete, fmt.Sprintf("%s/tags?ids=%d", path, other), nil); r.status != 204 {
		t.Fatalf("remove tags: %d", r.status)
	}
	if m, _ := fk.Contact(id); fmt.Sprint(m["tag_ids"]) != fmt.Sprintf("[%d]", int64(tag)) {
		t.Fatalf("tag_ids %v", m["tag_ids"])
	}
	if r := rest(t, srv, http.MethodGet, path+"/tags", nil); r.json(t)["count"] != float64(1) {
		t.Fatalf("applied tags: %s", r.body)
	}
	if r := rest(t, srv, http.MethodDelete, path, nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if r := rest(t, srv, http.MethodGet, path, nil); r.status != 404 {
		t.Fatalf("get after delete: %d", r.status)
	}
}

func TestREST_UnknownPathAndWrongMethod(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	if r := rest(t, srv, http.MethodGet, "/nothing/here", nil); r.status != 404 || r.json(t)["message"] == nil {
		t.Fatalf("unknown path: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, http.MethodGet, "/contacts/?limit=1", nil); r.status != 200 {
		t.Fatalf("trailing slash: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, http.MethodPost, "/account/profile", nil); r.status != 405 {
		t.Fatalf("wrong method: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, http.MethodPost, "/companies", map[string]any{"company_name": "Acme", "address": map[string]string{"country_code": "USA", "region": "US-TX"}}); r.status != 201 {
		t.Fatalf("create company: %d %s", r.status, r.body)
	}
}

// receiver is a hook endpoint; echo controls whether it completes the handshake.
type receiver struct {
	*httptest.Server
	secrets    chan string
	deliveries chan map[string]any
}

func newReceiver(t *testing.T, echo bool, status int) *receiver {
	rc := &receiver{secrets: make(chan string, 8), deliveries: make(chan map[string]any, 8)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if secret := r.Header.Get("X-Hook-Secret"); secret != "" {
			rc.secrets <- secret
			if echo {
				w.Header().Set("X-Hook-Secret", secret)
			}
			return
		}
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		rc.deliveries <- m
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-rc.deliveries:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
		return nil
	}
}

func TestHooks_HandshakeDeliveryAndInactivation(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	good, silent, gone := newReceiver(t, true, 200), newReceiver(t, false, 200), newReceiver(t, true, 410)

	h := rest(t, srv, http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.add", "hookUrl": good.URL}).json(t)
	if h["status"] != "Verified" || h["key"] == "" {
		t.Fatalf("hook with an echoing receiver: %v", h)
	}
	u := rest(t, srv, http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.edit", "hookUrl": silent.URL}).json(t)
	if u["status"] != "Unverified" {
		t.Fatalf("hook with a silent receiver: %v", u)
	}
	if r := rest(t, srv, http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.explode", "hookUrl": good.URL}); r.status != 400 {
		t.Fatalf("unknown event key: %d", r.status)
	}

	c := rest(t, srv, http.MethodPost, "/contacts", map[string]any{"email_addresses": []map[string]string{{"email": "h@example.com", "field": "EMAIL1"}}}).json(t)
	d := good.next(t)
	keys := d["object_keys"].([]any)
	key := keys[0].(map[string]any)
	if d["event_key"] != "contact.add" || d["object_type"] != "contact" || key["id"] != c["id"] ||
		key["apiUrl"] != fmt.Sprintf("%s/crm/rest/v1/contacts/%v", srv.URL, c["id"]) || key["timestamp"] == "" {
		t.Fatalf("delivery %v", d)
	}

	// Delayed verification with the secret the silent receiver was sent.
	secret := <-silent.secrets
	r := send(t, http.MethodPost, srv.URL+"/crm/rest/v1/hooks/"+u["key"].(string)+"/delayedVerify", nil, append(bearer(sak), "X-Hook-Secret", secret)...)
	if r.json(t)["status"] != "Verified" {
		t.Fatalf("delayedVerify: %s", r.body)
	}
	rest(t, srv, http.MethodPatch, fmt.Sprintf("/contacts/%v", c["id"]), map[string]any{"given_name": "Hal"})
	if d := silent.next(t); d["event_key"] != "contact.edit" {
		t.Fatalf("edit delivery %v", d)
	}

	g := rest(t, srv, http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.delete", "hookUrl": gone.URL}).json(t)
	if err := fk.DeliverHook("contact.delete", []int64{42}); err != nil {
		t.Fatal(err)
	}
	gone.next(t)
	fk.Close()
	for _, hk := range fk.Hooks() {
		if hk.Key == g["key"] && hk.Status != "Inactive" {
			t.Fatalf("hook answered 410 but is %s", hk.Status)
		}
	}
	if err := fk.DeliverHook("contact.add", []int64{1}); err == nil {
		t.Fatal("DeliverHook after Close succeeded")
	}
}

// xmlrpc calls method at target and returns the result or the fault.
func xmlrpc(t *testing.T, target, method string, header []string, params ...any) (any, *rpcFault) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>` + method + `</methodName><params>`)
	for _, p := range params {
		b.WriteString("<param>")
		encodeValue(&b, p)
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>")
	return parseXMLRPCReply(t, send(t, http.MethodPost, target, &b, append(header, "Content-Type", "text/xml")...))
}

func parseXMLRPCReply(t *testing.T, r reply) (any, *rpcFault) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("XML-RPC status %d: %s", r.status, r.body)
	}
	var resp struct {
		Params []xmlValue `xml:"params>param>value"`
		Fault  *xmlValue  `xml:"fault>value"`
	}
	if err := xml.Unmarshal(r.body, &resp); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if resp.Fault != nil {
		v, _ := resp.Fault.decode()
		m := v.(map[string]any)
		return nil, &rpcFault{int(m["faultCode"].(int64)), m["faultString"].(string)}
	}
	v, err := resp.Params[0].decode()
	if err != nil {
		t.Fatal(err)
	}
	return v, nil
}

func TestXMLRPC_ContactsQueriesAndFaults(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	api := srv.URL + "/crm/xmlrpc/v1"
	key := []string{"X-Keap-API-Key", sak}

	id, f := xmlrpc(t, api, "ContactService.add", key, "", map[string]any{"FirstName": "Xena", "Email": "xena@example.com", "Country": "United States", "State": "US-CA"})
	if f != nil {
		t.Fatal(f)
	}
	tag := fk.AddTag("Imported")
	if ok, f := xmlrpc(t, api, "ContactService.addToGroup", key, "", id, tag); f != nil || ok != true {
		t.Fatalf("addToGroup: %v %v", ok, f)
	}
	loaded, f := xmlrpc(t, api, "ContactService.load", key, "", id, []any{"Id", "FirstName", "Email", "Country", "Groups", "LastName"})
	want := map[string]any{"Id": id, "FirstName": "Xena", "Email": "xena@example.com", "Country": "USA", "Groups": fmt.Sprint(tag)}
	if f != nil || fmt.Sprint(loaded) != fmt.Sprint(want) {
		t.Fatalf("load: %v %v, want %v", loaded, f, want)
	}
	if rc, _ := fk.Contact(id.(int64)); rc["given_name"] != "Xena" {
		t.Fatalf("REST does not see the XML-RPC contact: %v", rc)
	}
	dup, _ := xmlrpc(t, api, "ContactService.addWithDupCheck", bearer(sak), "", map[string]any{"Email": "XENA@example.com", "LastName": "W"}, "Email")
	if dup != id {
		t.Fatalf("addWithDupCheck returned %v, want %v", dup, id)
	}
	fk.SeedContacts(5)
	rows, f := xmlrpc(t, api, "DataService.query", key, "", "Contact", int64(2), int64(0), map[string]any{"Email": "contact%@example.com"}, []any{"Id", "Email"})
	if f != nil || len(rows.([]any)) != 2 || rows.([]any)[0].(map[string]any)["Email"] != "contact2@example.com" {
		t.Fatalf("query: %v %v", rows, f)
	}

	for _, tc := range []struct {
		name, method string
		params       []any
		wantFault    string
	}{
		{"unknown method", "ContactService.explode", []any{""}, "No such handler: ContactService.explode"},
		{"wrong arguments", "ContactService.load", []any{"", "7"}, "No method matching arguments: java.lang.String, java.lang.String"},
		{"unknown field", "ContactService.add", []any{"", map[string]any{"ShoeSize": "9"}}, "[NoFieldFound]No field found: Contact.ShoeSize"},
		{"missing record", "ContactService.load", []any{"", int64(9999), []any{"Id"}}, "[RecordNotFound]"},
		{"unknown table", "DataService.query", []any{"", "Affiliate", int64(10), int64(0), map[string]any{}, []any{"Id"}}, "[InvalidParameter]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, f := xmlrpc(t, api, tc.method, key, tc.params...); f == nil || !strings.HasPrefix(f.msg, tc.wantFault) {
				t.Fatalf("fault %v, want %q", f, tc.wantFault)
			}
		})
	}
	if r := send(t, http.MethodPost, api, "<methodCall/>", "Content-Type", "text/xml"); r.status != 401 {
		t.Fatalf("XML-RPC without credentials: %d", r.status)
	}
}

func TestXMLRPC_LegacyKeyIsTheFirstParameter(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	legacy := srv.URL + "/legacy/" + AppName + "/api/xmlrpc"
	if v, f := xmlrpc(t, legacy, "DataService.getAppSetting", nil, legacyKey, "Contact", "optiontypes"); f != nil || v == "" {
		t.Fatalf("right key: %v %v", v, f)
	}
	if _, f := xmlrpc(t, legacy, "DataService.getAppSetting", nil, "wrong", "Contact", "optiontypes"); f == nil || f.msg != "[InvalidKey]Invalid Key" {
		t.Fatalf("wrong key: %v", f)
	}
	if r := send(t, http.MethodPost, srv.URL+"/legacy/zz999/api/xmlrpc", "<methodCall/>"); r.status != 404 {
		t.Fatalf("unknown app: %d", r.status)
	}
	if _, f := xmlrpc(t, srv.URL+"/crm/xmlrpc/v1", "DataService.getAppSetting", []string{"X-Keap-API-Key", legacyKey}, "", "Contact", "optiontypes"); f != nil {
		t.Fatalf("legacy key in X-Keap-API-Key: %v", f)
	}

	// Every value type, written by hand, comes back through echo.
	raw := `<?xml version="1.0"?><methodCall><methodName>DataService.echo</methodName><params><param><value><struct>
<member><name>s</name><value>plain &amp; simple</value></member>
<member><name>i</name><value><i4>-7</i4></value></member>
<member><name>n</name><value><int>42</int></value></member>
<member><name>b</name><value><boolean>1</boolean></value></member>
<member><name>d</name><value><double>2.5</double></value></member>
<member><name>t</name><value><dateTime.iso8601>20250301T12:30:00</dateTime.iso8601></value></member>
<member><name>a</name><value><array><data><value><string>x</string></value><value><i4>1</i4></value></data></array></value></member>
</struct></value></param></params></methodCall>`
	v, f := parseXMLRPCReply(t, send(t, http.MethodPost, legacy, raw, "Content-Type", "text/xml"))
	want := map[string]any{"s": "plain & simple", "i": int64(-7), "n": int64(42), "b": true, "d": 2.5,
		"t": time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC), "a": []any{"x", int64(1)}}
	if f != nil || fmt.Sprint(v) != fmt.Sprint(want) {
		t.Fatalf("echo: %v %v, want %v", v, f, want)
	}
}

func TestThrottle_RateLimitHeadersAnd429(t *testing.T) {
	t.Parallel()
	clk := newClock()
	fk, srv := newTestFake(t, Options{Now: clk.Now})
	fk.SetRateLimit(3)
	for i, wantAvailable := range []string{"2", "1", "0"} {
		r := rest(t, srv, http.MethodGet, "/account/profile", nil)
		if r.status != 200 || r.header.Get("x-keap-product-throttle-available") != wantAvailable ||
			r.header.Get("x-keap-product-throttle-limit") != "3" || r.header.Get("x-keap-product-throttle-time-unit") != "second" {
			t.Fatalf("call %d: %d %v", i, r.status, r.header)
		}
	}
	r := rest(t, srv, http.MethodGet, "/account/profile", nil)
	want := `{"fault":{"detail":{"errorcode":"policies.ratelimit.QuotaViolation"},"faultstring":"Rate limit quota violation. Quota limit  exceeded."}}`
	if r.status != 429 || strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("over the limit: %d %s", r.status, r.body)
	}
	// Keap counts each credential apart: legacy XML-RPC (the key in the
	// body) has its own count, and its own 429 past it.
	echo := `<methodCall><methodName>DataService.echo</methodName><params><param><value>x</value></param></params></methodCall>`
	for i := range 3 {
		if r := send(t, http.MethodPost, srv.URL+"/legacy/"+AppName+"/api/xmlrpc", echo); r.status != 200 {
			t.Fatalf("XML-RPC call %d, under its own limit: %d %s", i, r.status, r.body)
		}
	}
	if r := send(t, http.MethodPost, srv.URL+"/legacy/"+AppName+"/api/xmlrpc", echo); r.status != 429 || !strings.Contains(string(r.body), "QuotaViolation") {
		t.Fatalf("XML-RPC over the limit: %d %s", r.status, r.body)
	}
}

func TestThrottle_WindowResetsAndFailNext(t *testing.T) {
	t.Parallel()
	clk := newClock()
	fk, srv := newTestFake(t, Options{Now: clk.Now})
	fk.SetRateLimit(1)
	rest(t, srv, http.MethodGet, "/account/profile", nil)
	if r := rest(t, srv, http.MethodGet, "/account/profile", nil); r.status != 429 {
		t.Fatalf("second call in the same second: %d", r.status)
	}
	clk.Advance(time.Second)
	if r := rest(t, srv, http.MethodGet, "/account/profile", nil); r.status != 200 {
		t.Fatalf("after the window: %d", r.status)
	}
	fk.SetRateLimit(0)

	for _, tc := range []struct {
		status     int
		retryAfter string
		wantBody   string
	}{
		{503, "7", "messaging.adaptors.http.flow.ServiceUnavailable"},
		{429, "", "policies.ratelimit.QuotaViolation"},
		{500, "", `"message"`},
	} {
		fk.FailNext(2, tc.status, tc.retryAfter)
		for range 2 {
			r := rest(t, srv, http.MethodGet, "/contacts", nil)
			if r.status != tc.status || r.header.Get("Retry-After") != tc.retryAfter || !strings.Contains(string(r.body), tc.wantBody) ||
				r.header.Get("x-keap-product-quota-limit") == "" {
				t.Fatalf("FailNext(%d): %d %v %s", tc.status, r.status, r.header, r.body)
			}
		}
		if r := rest(t, srv, http.MethodGet, "/contacts", nil); r.status != 200 {
			t.Fatalf("after FailNext(%d): %d", tc.status, r.status)
		}
	}
	if got := fk.Stats().APICalls; got != 3+3*3 {
		t.Fatalf("APICalls %d", got)
	}
}

func TestSetDown_EveryEndpointAnswers503(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	fk.SetDown(true)
	for _, path := range []string{"/token", "/crm/rest/v1/contacts", "/app/oauth/authorize"} {
		if r := send(t, http.MethodGet, srv.URL+path, nil); r.status != 503 {
			t.Fatalf("%s: %d", path, r.status)
		}
	}
	fk.SetDown(false)
	if r := rest(t, srv, http.MethodGet, "/contacts", nil); r.status != 200 {
		t.Fatalf("after the outage: %d", r.status)
	}
}

func TestMountedUnderPrefix_URLsKeepThePrefix(t *testing.T) {
	t.Parallel()
	fk := New(Options{})
	fk.AddServiceAccountKey(sak)
	fk.SeedContacts(3)
	mux := http.NewServeMux()
	mux.Handle("/sandbox/keap/", http.StripPrefix("/sandbox/keap", fk))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); fk.Close() })
	m := send(t, http.MethodGet, srv.URL+"/sandbox/keap/crm/rest/v1/contacts?limit=2", nil, bearer(sak)...).json(t)
	if next := m["next"].(string); !strings.HasPrefix(next, srv.URL+"/sandbox/keap/crm/rest/v1/contacts?") {
		t.Fatalf("next %q lost the mount prefix", next)
	}
}

func FuzzXMLRPCDecode(f *testing.F) {
	f.Add(`<methodCall><methodName>DataService.echo</methodName><params><param><value>x</value></param></params></methodCall>`)
	f.Add(`<methodCall><methodName>m</methodName><params><param><value><struct><member><name>a</name><value><array><data><value><i4>1</i4></value><value><boolean>0</boolean></value></data></array></value></member></struct></value></param></params></methodCall>`)
	f.Add(`<methodCall><methodName>m</methodName><params><param><value><dateTime.iso8601>20250301T12:30:00</dateTime.iso8601></value></param><param><value><double>1e3</double></value></param></params></methodCall>`)
	f.Fuzz(func(t *testing.T, body string) {
		var call methodCall
		if xml.Unmarshal([]byte(body), &call) != nil {
			return
		}
		for _, p := range call.Params {
			v, err := p.decode()
			if err != nil {
				continue
			}
			// What the fake decodes it must be able to send back.
			var b bytes.Buffer
			encodeValue(&b, v)
			var back xmlValue
			if err := xml.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatalf("re-encoded %v as invalid XML %s: %v", v, b.Bytes(), err)
			}
		}
	})
}

// The hooks endpoints refuse what Keap's REST v1 document does not describe:
// query parameters, a missing body, an unknown event key; SetHookStatus
// changes a hook as Keap would on its own.
func TestHooks_RefuseWhatTheSpecRefuses(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/hooks?verify=false", map[string]string{"eventKey": "contact.add", "hookUrl": "https://example.test/h"}},
		{http.MethodGet, "/hooks?limit=5", nil},
		{http.MethodPost, "/hooks", nil},
		{http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.explode", "hookUrl": "https://example.test/h"}},
		{http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.add", "hookUrl": "/relative"}},
	} {
		if r := rest(t, srv, c.method, c.path, c.body); r.status != http.StatusBadRequest {
			t.Errorf("%s %s %v: %d %s, want 400", c.method, c.path, c.body, r.status, r.body)
		}
	}
	h := rest(t, srv, http.MethodPost, "/hooks", map[string]string{"eventKey": "contact.add", "hookUrl": "http://127.0.0.1:1/h"}).json(t)
	if !fk.SetHookStatus(h["key"].(string), "Inactive") || fk.Hooks()[0].Status != "Inactive" {
		t.Fatalf("SetHookStatus: %v", fk.Hooks())
	}
	if fk.SetHookStatus("nope", "Inactive") {
		t.Fatal("SetHookStatus of an unknown hook succeeded")
	}
}

// Keap counts an OAuth app's calls over all its tenants' tokens, and each
// key's apart from the app's.
func TestThrottle_CountedPerClientIDOverItsTokens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	fk, srv := newTestFake(t, Options{Now: clk.Now})
	fk.SetRateLimit(2)
	one, _ := exchange(t, fk, srv)
	two, _ := exchange(t, fk, srv)
	for i, tok := range []string{one, two, one} {
		want := 200
		if i == 2 {
			want = 429 // the client's third call this second, on either token
		}
		if r := send(t, http.MethodGet, srv.URL+"/crm/rest/v1/account/profile", nil, bearer(tok)...); r.status != want {
			t.Fatalf("call %d: %d, want %d", i, r.status, want)
		}
	}
	if r := rest(t, srv, http.MethodGet, "/account/profile", nil); r.status != 200 || r.header.Get("x-keap-product-throttle-available") != "1" {
		t.Fatalf("the service account key, counted apart: %d available %q", r.status, r.header.Get("x-keap-product-throttle-available"))
	}
	if got := fk.Stats().Throttled; got != 1 {
		t.Fatalf("Stats().Throttled %d, want 1", got)
	}
}
