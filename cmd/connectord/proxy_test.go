package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// seenRequest is a request as the fake Keap received it.
type seenRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// wire sits in front of the fake Keap: it records what reaches Keap, adds a
// cookie and a header of Keap's own to every answer, and can play dead.
type wire struct {
	mu   sync.Mutex
	seen []seenRequest
	dead atomic.Bool // close every connection without answering
}

func (wr *wire) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wr.dead.Load() {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		wr.mu.Lock()
		wr.seen = append(wr.seen, seenRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
		wr.mu.Unlock()
		w.Header().Set("Set-Cookie", "keapsession=s3cr3t; Path=/; HttpOnly")
		w.Header().Set("X-Keap-Test", "from Keap")
		h.ServeHTTP(w, r)
	})
}

// since returns the requests Keap received after the first n.
func (wr *wire) since(n int) []seenRequest {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return append([]seenRequest(nil), wr.seen[n:]...)
}

func (wr *wire) count() int {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return len(wr.seen)
}

// proxyFixture is a server with one organization and an instance of each kind.
type proxyFixture struct {
	*server
	wire                           *wire
	org                            org
	oauth, sak, legacy             string // Element tokens
	oauthID, sakID, legacyID       string
	oauthAuth, sakAuth, legacyAuth string
}

func newProxyFixture(t *testing.T) *proxyFixture {
	t.Helper()
	return newProxyFixtureEnv(t, nil)
}

// newProxyFixtureEnv is newProxyFixture with extra environment for the server;
// "{keap}" in a value stands for the fake Keap's URL.
func newProxyFixtureEnv(t *testing.T, extra map[string]string) *proxyFixture {
	t.Helper()
	wr := &wire{}
	k := newKeapWrapped(t, fakekeap.Options{}, wr.wrap)
	env := baseEnv(t, testdb.New(t), k)
	for name, v := range extra {
		env[name] = strings.ReplaceAll(v, "{keap}", k.URL)
	}
	s := startServerWith(t, env, k, nil)
	f := &proxyFixture{server: s, wire: wr, org: s.createOrg("Acme", "dev@acme.test")}
	inst := s.provisionOAuth(f.org, "infusionsoftcrm", "oauth")
	f.oauth, f.oauthID = inst["token"].(string), fmt.Sprint(inst["id"])
	for _, x := range []struct {
		element, key, app string
		token, id         *string
	}{
		{"infusionsoftcrm", testServiceKey, "", &f.sak, &f.sakID},
		{"infusionsoftmarketing", testLegacyKey, testLegacyApp, &f.legacy, &f.legacyID},
	} {
		r := s.do("POST", "/instances", f.org.auth(), apiKeyBody(x.element, x.key, x.app))
		if r.Status != 200 {
			t.Fatalf("provision %s: %d %s", x.key, r.Status, r.Body)
		}
		*x.token, *x.id = r.JSON(t)["token"].(string), fmt.Sprint(r.JSON(t)["id"])
	}
	f.oauthAuth, f.sakAuth, f.legacyAuth = f.element(f.oauth), f.element(f.sak), f.element(f.legacy)
	// These instances pass XML-RPC on to Keap (the bridge is the default).
	for _, id := range []string{f.oauthID, f.sakID, f.legacyID} {
		if r := s.do("PATCH", "/instances/"+id, f.org.auth(), map[string]any{"configuration": map[string]any{"xmlrpc.mode": "passthrough"}}); r.Status != 200 {
			t.Fatalf("xmlrpc.mode passthrough: %d %s", r.Status, r.Body)
		}
	}
	return f
}

func (f *proxyFixture) element(token string) string {
	return "User " + f.org.User.Secret + ", Element " + token
}

// proxy sends a request through connectord with extra headers.
func (f *proxyFixture) proxy(method, path, auth, contentType, body string, header map[string]string) response {
	f.t.Helper()
	var rdr io.Reader
	var raw []byte
	if body != "" {
		raw = []byte(body)
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, f.URL+path, rdr)
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", auth)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return f.send(req, raw)
}

// direct calls the fake Keap as connectord should, with key as the credential.
func (f *proxyFixture) direct(method, path, key string) response {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.keap.URL+path, nil)
	req.Header.Set("X-Keap-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// isOurError checks that r is connectord's own error with status.
func isOurError(t *testing.T, r response, status int, words string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	m := r.JSON(t)
	if m["requestId"] != r.Header.Get("Elements-Request-Id") || !strings.Contains(fmt.Sprint(m["message"]), words) {
		t.Fatalf("want connectord's error naming %q, got %s", words, r.Body)
	}
}

const xmlrpcAdd = `<?xml version="1.0"?>
<methodCall>
  <methodName>ContactService.add</methodName>
  <params>
    <param><value><string>placeholder</string></value></param>
    <param><value><struct>
      <member><name>FirstName</name><value><string>Ada &amp; Co</string></value></member>
      <member><name>Email</name><value><string>ada@example.test</string></value></member>
    </struct></value></param>
  </params>
</methodCall>`

func TestProxy_RESTPassesThroughForOAuthAndServiceAccountKey(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)
	f.keap.SeedContacts(12)
	oauthToken := f.instanceSecrets(f.oauthID)["oauth.user.token"]
	for _, tc := range []struct {
		name, auth, header, value string
	}{
		{"oauth", f.oauthAuth, "Authorization", "Bearer " + oauthToken},
		{"service account key", f.sakAuth, "X-Keap-API-Key", testServiceKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, prefix := range []string{"", "/elements/api-v2"} {
				n := f.wire.count()
				r := f.proxy("GET", prefix+"/proxy/crm/rest/v1/contacts?limit=5&offset=2&order=id", tc.auth, "", "", map[string]string{
					"Cookie": "session=caller", "Elements-Custom": "ours", "X-Custom": "theirs",
					"Accept": "application/json", "Connection": "X-Hop", "X-Hop": "hop-by-hop",
				})
				if r.Status != 200 {
					t.Fatalf("%s: %d %s", prefix, r.Status, r.Body)
				}
				seen := f.wire.since(n)
				if len(seen) != 1 {
					t.Fatalf("Keap saw %d requests, want 1", len(seen))
				}
				got := seen[0]
				if got.Method != "GET" || got.Path != "/crm/rest/v1/contacts" || got.RawQuery != "limit=5&offset=2&order=id" {
					t.Fatalf("Keap saw %s %s?%s", got.Method, got.Path, got.RawQuery)
				}
				if got.Header.Get(tc.header) != tc.value {
					t.Fatalf("Keap saw %s %q, want the instance's credential", tc.header, got.Header.Get(tc.header))
				}
				for _, h := range []string{"Cookie", "Elements-Custom", "X-Hop", "X-Forwarded-For"} {
					if v := got.Header.Get(h); v != "" {
						t.Errorf("%s reached Keap: %q", h, v)
					}
				}
				if tc.header != "Authorization" && got.Header.Get("Authorization") != "" {
					t.Errorf("the caller's Authorization reached Keap: %q", got.Header.Get("Authorization"))
				}
				if got.Header.Get("X-Custom") != "theirs" || got.Header.Get("Accept") != "application/json" {
					t.Errorf("the caller's headers did not reach Keap: %v", got.Header)
				}
				// Keap's answer comes back unchanged but for its cookie.
				want := f.direct("GET", "/crm/rest/v1/contacts?limit=5&offset=2&order=id", testServiceKey)
				if !bytes.Equal(r.Body, want.Body) {
					t.Fatalf("body changed:\n got %s\nwant %s", r.Body, want.Body)
				}
				if r.Header.Get("Content-Type") != want.Header.Get("Content-Type") || r.Header.Get("X-Keap-Test") != "from Keap" ||
					r.Header.Get("X-Keap-Product-Throttle-Limit") == "" || r.Header.Get("Elements-Request-Id") == "" {
					t.Fatalf("headers changed: %v", r.Header)
				}
				if r.Header.Get("Set-Cookie") != "" {
					t.Fatalf("Keap's Set-Cookie reached the caller")
				}
			}

			// A body, its type and a status other than 200 pass both ways.
			n := f.wire.count()
			body := `{"email_addresses":[{"email":"proxy-` + strings.ReplaceAll(tc.name, " ", "") + `@example.test","field":"EMAIL1"}],"given_name":"Prox"}`
			r := f.proxy("POST", "/proxy/crm/rest/v1/contacts", tc.auth, "application/json; charset=utf-8", body, nil)
			if r.Status != 201 || !strings.Contains(string(r.Body), `"given_name":"Prox"`) {
				t.Fatalf("POST: %d %s", r.Status, r.Body)
			}
			seen := f.wire.since(n)
			if len(seen) != 1 || string(seen[0].Body) != body || seen[0].Header.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Fatalf("Keap saw %+v", seen)
			}

			// Keap's 404 stays a 404 with Keap's body.
			r = f.proxy("GET", "/proxy/crm/rest/v1/contacts/999999", tc.auth, "", "", nil)
			want := f.direct("GET", "/crm/rest/v1/contacts/999999", testServiceKey)
			if r.Status != 404 || want.Status != 404 || !bytes.Equal(r.Body, want.Body) {
				t.Fatalf("404: %d %s, Keap said %d %s", r.Status, r.Body, want.Status, want.Body)
			}
			// An escaped path segment reaches Keap as escaped.
			n = f.wire.count()
			f.proxy("GET", "/proxy/crm/rest/v1/contacts/a%2Fb", tc.auth, "", "", nil)
			if seen := f.wire.since(n); len(seen) != 1 || seen[0].Path != "/crm/rest/v1/contacts/a%2Fb" {
				t.Fatalf("Keap saw %+v", seen)
			}
		})
	}
}

// firstParam returns the first parameter of an XML-RPC call as a string.
func firstParam(t *testing.T, body []byte) (string, int) {
	t.Helper()
	var call struct {
		Params []struct {
			String string `xml:"value>string"`
		} `xml:"params>param"`
	}
	if err := xml.Unmarshal(body, &call); err != nil {
		t.Fatalf("Keap got malformed XML-RPC: %v\n%s", err, body)
	}
	if len(call.Params) == 0 {
		return "", 0
	}
	return call.Params[0].String, len(call.Params)
}

func TestProxy_XMLRPCForEveryKindOfInstance(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)
	oauthToken := f.instanceSecrets(f.oauthID)["oauth.user.token"]
	idRe := regexp.MustCompile(`<methodResponse><params><param><value><i4>\d+</i4></value></param></params></methodResponse>`)
	for _, tc := range []struct {
		name, auth, path, header, value, first string
	}{
		{"oauth", f.oauthAuth, "/crm/xmlrpc/v1", "Authorization", "Bearer " + oauthToken, "placeholder"},
		{"service account key", f.sakAuth, "/crm/xmlrpc/v1", "X-Keap-API-Key", testServiceKey, "placeholder"},
		{"legacy key", f.legacyAuth, "/crm/xmlrpc/v1", "X-Keap-API-Key", testLegacyKey, "placeholder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := f.wire.count()
			r := f.proxy("POST", "/proxy/crm/xmlrpc/v1", tc.auth, "text/xml", xmlrpcAdd, map[string]string{"Cookie": "a=b"})
			if r.Status != 200 || !idRe.Match(r.Body) || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
				t.Fatalf("XML-RPC: %d %s %v", r.Status, r.Body, r.Header)
			}
			seen := f.wire.since(n)
			if len(seen) != 1 || seen[0].Path != tc.path {
				t.Fatalf("Keap saw %+v, want one call to %s", seen, tc.path)
			}
			got := seen[0]
			if tc.header != "" && got.Header.Get(tc.header) != tc.value {
				t.Fatalf("Keap saw %s %q", tc.header, got.Header.Get(tc.header))
			}
			if tc.header == "" && (got.Header.Get("Authorization") != "" || got.Header.Get("X-Keap-API-Key") != "") {
				t.Fatalf("a legacy call carried a credential header: %v", got.Header)
			}
			if got.Header.Get("Cookie") != "" {
				t.Fatalf("the caller's cookie reached Keap")
			}
			first, params := firstParam(t, got.Body)
			if first != tc.first || params != 2 {
				t.Fatalf("first parameter %q of %d, want %q of 2", first, params, tc.first)
			}
			// Everything but the key reaches Keap as the caller wrote it.
			if want := strings.Replace(xmlrpcAdd, "placeholder", tc.first, 1); string(got.Body) != want {
				t.Fatalf("Keap got\n%s\nwant\n%s", got.Body, want)
			}
		})
	}

	t.Run("legacy key reaches REST too", func(t *testing.T) {
		n := f.wire.count()
		for _, path := range []string{"/proxy/crm/rest/v1/contacts?limit=1", "/proxy/crm/rest/v2/contacts?page_size=1"} {
			if r := f.proxy("GET", path, f.legacyAuth, "", "", nil); r.Status != 200 {
				t.Fatalf("%s: %d %s", path, r.Status, r.Body)
			}
		}
		for _, got := range f.wire.since(n) {
			if got.Header.Get("X-Keap-API-Key") != testLegacyKey {
				t.Fatalf("%s reached Keap without the legacy key as X-Keap-API-Key", got.Path)
			}
		}
	})
}

// With CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL set, legacy keys go the old
// way: XML-RPC only, to the application's endpoint, the key as the call's
// first parameter, except for the methods that take no key.
func TestProxy_LegacyEndpointWhenTheOperatorConfiguresIt(t *testing.T) {
	t.Parallel()
	f := newProxyFixtureEnv(t, map[string]string{"CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL": "{keap}/legacy/{app}/api/xmlrpc"})

	t.Run("legacy key replaces the placeholder", func(t *testing.T) {
		n := f.wire.count()
		r := f.proxy("POST", "/proxy/crm/xmlrpc/v1", f.legacyAuth, "text/xml", xmlrpcAdd, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), "<i4>") {
			t.Fatalf("XML-RPC: %d %s", r.Status, r.Body)
		}
		seen := f.wire.since(n)
		if len(seen) != 1 || seen[0].Path != "/legacy/"+testLegacyApp+"/api/xmlrpc" {
			t.Fatalf("Keap saw %+v, want one call to the legacy endpoint", seen)
		}
		if seen[0].Header.Get("Authorization") != "" || seen[0].Header.Get("X-Keap-API-Key") != "" {
			t.Fatalf("a legacy call carried a credential header: %v", seen[0].Header)
		}
		if want := strings.Replace(xmlrpcAdd, "placeholder", testLegacyKey, 1); string(seen[0].Body) != want {
			t.Fatalf("Keap got\n%s\nwant\n%s", seen[0].Body, want)
		}
	})

	t.Run("DataService.echo does not hand the key back", func(t *testing.T) {
		r := f.proxy("POST", "/proxy/crm/xmlrpc/v1", f.legacyAuth, "text/xml",
			`<?xml version="1.0"?><methodCall><methodName>DataService.echo</methodName><params><param><value><string>placeholder</string></value></param></params></methodCall>`, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), testLegacyKey) || !strings.Contains(string(r.Body), "placeholder") {
			t.Fatalf("echo answered %d %s: want the caller's own argument back and never the key", r.Status, r.Body)
		}
	})

	t.Run("legacy key inserted when the call has no parameters", func(t *testing.T) {
		n := f.wire.count()
		r := f.proxy("POST", "/proxy/crm/xmlrpc/v1", f.legacyAuth, "text/xml",
			`<?xml version="1.0"?><methodCall><methodName>DataService.getAppSetting</methodName></methodCall>`, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), "<fault>") {
			t.Fatalf("%d %s (want Keap's fault for the missing arguments)", r.Status, r.Body)
		}
		seen := f.wire.since(n)
		if len(seen) != 1 {
			t.Fatalf("Keap saw %d calls", len(seen))
		}
		if first, params := firstParam(t, seen[0].Body); first != testLegacyKey || params != 1 {
			t.Fatalf("first parameter %q of %d", first, params)
		}
	})

	t.Run("legacy key refused outside XML-RPC", func(t *testing.T) {
		n := f.wire.count()
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/proxy/crm/rest/v1/contacts", ""},
			{"GET", "/proxy/crm/xmlrpc/v1", ""},
			{"POST", "/proxy/crm/rest/v1/contacts", `{"given_name":"x"}`},
		} {
			r := f.proxy(c.method, c.path, f.legacyAuth, "application/json", c.body, nil)
			isOurError(t, r, 400, "legacy XML-RPC endpoint")
		}
		for _, bad := range []string{"<methodCall><methodName>x</methodName>", "not xml", `{"json":true}`, "<methodResponse/>", ""} {
			r := f.proxy("POST", "/proxy/crm/xmlrpc/v1", f.legacyAuth, "text/xml", bad, nil)
			if r.Status != 400 {
				t.Errorf("malformed %q: %d %s", bad, r.Status, r.Body)
			}
		}
		if seen := f.wire.since(n); len(seen) != 0 {
			t.Fatalf("refused calls reached Keap: %+v", seen)
		}
	})
}

func TestProxy_RetriesAndThrottling(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)
	tests := []struct {
		name               string
		method, path, body string
		failN, failStatus  int
		retryAfter         string
		wantStatus         int
		wantCalls          int
		atLeast            time.Duration
		wantBodyContains   string
		wantRetryAfterKept bool
		oauth              bool
	}{
		{name: "429 with Retry-After is waited for", method: "GET", path: "/crm/rest/v1/contacts", failN: 1, failStatus: 429, retryAfter: "1", wantStatus: 200, wantCalls: 2, atLeast: 950 * time.Millisecond},
		{name: "429 without Retry-After backs off", method: "GET", path: "/crm/rest/v1/contacts", failN: 1, failStatus: 429, wantStatus: 200, wantCalls: 2, atLeast: 100 * time.Millisecond},
		{name: "429 on POST is retried", method: "POST", path: "/crm/rest/v1/contacts", body: `{"email_addresses":[{"email":"p429@example.test","field":"EMAIL1"}]}`, failN: 1, failStatus: 429, wantStatus: 201, wantCalls: 2},
		{name: "5xx on GET is retried until it heals", method: "GET", path: "/crm/rest/v1/contacts", failN: 2, failStatus: 503, wantStatus: 200, wantCalls: 3},
		{name: "5xx on GET given up after the retries, Keap's answer passed on", method: "GET", path: "/crm/rest/v1/contacts", failN: 10, failStatus: 502, wantStatus: 502, wantCalls: 4, wantBodyContains: "UnexpectedEOFAtTarget"},
		{name: "5xx on POST is not retried", method: "POST", path: "/crm/rest/v1/contacts", body: `{"email_addresses":[{"email":"p503@example.test","field":"EMAIL1"}]}`, failN: 1, failStatus: 503, wantStatus: 503, wantCalls: 1, wantBodyContains: "temporarily unavailable"},
		{name: "XML-RPC over OAuth retried on 429", method: "POST", path: "/crm/xmlrpc/v1", body: xmlrpcAdd, failN: 1, failStatus: 429, retryAfter: "1", wantStatus: 200, wantCalls: 2, atLeast: 950 * time.Millisecond, oauth: true},
		{name: "a Retry-After too long for a caller is handed back", method: "GET", path: "/crm/rest/v1/contacts", failN: 1, failStatus: 429, retryAfter: "3600", wantStatus: 429, wantCalls: 1, wantBodyContains: "QuotaViolation", wantRetryAfterKept: true},
	}
	// The cases share one fake, whose injected failures are global: one at a time.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := f.sakAuth
			if tt.oauth {
				auth = f.oauthAuth
			}
			f.keap.FailNext(tt.failN, tt.failStatus, tt.retryAfter)
			defer f.keap.FailNext(0, 0, "")
			n := f.wire.count()
			start := time.Now()
			ct := ""
			switch {
			case strings.Contains(tt.path, "xmlrpc"):
				ct = "text/xml"
			case tt.body != "":
				ct = "application/json"
			}
			r := f.proxy(tt.method, "/proxy"+tt.path, auth, ct, tt.body, nil)
			took := time.Since(start)
			if r.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.wantStatus, r.Body)
			}
			if got := len(f.wire.since(n)); got != tt.wantCalls {
				t.Fatalf("Keap saw %d calls, want %d", got, tt.wantCalls)
			}
			if took < tt.atLeast {
				t.Fatalf("answered in %v, want at least %v", took, tt.atLeast)
			}
			if tt.wantBodyContains != "" && !strings.Contains(string(r.Body), tt.wantBodyContains) {
				t.Fatalf("body %s, want Keap's own naming %q", r.Body, tt.wantBodyContains)
			}
			if tt.wantRetryAfterKept && r.Header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("Retry-After %q, want Keap's %q", r.Header.Get("Retry-After"), tt.retryAfter)
			}
		})
	}
}

func TestProxy_401HealsByOneRefresh(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)
	before := f.keap.Stats().Refreshes
	old := f.instanceSecrets(f.oauthID)["oauth.user.token"]
	f.keap.ExpireAccessTokens()
	n := f.wire.count()
	r := f.proxy("GET", "/proxy/crm/rest/v1/account/profile", f.oauthAuth, "", "", nil)
	if r.Status != 200 {
		t.Fatalf("after expiry: %d %s", r.Status, r.Body)
	}
	if got := f.keap.Stats().Refreshes - before; got != 1 {
		t.Fatalf("Keap saw %d refreshes, want 1", got)
	}
	// The rejected call, the refresh, the retry with the new token.
	seen := f.wire.since(n)
	if len(seen) != 3 || seen[0].Header.Get("Authorization") != "Bearer "+old || seen[1].Path != "/token" ||
		seen[2].Header.Get("Authorization") == "Bearer "+old {
		t.Fatalf("Keap saw %+v", seen)
	}
	if cur := f.instanceSecrets(f.oauthID)["oauth.user.token"]; cur == old || seen[2].Header.Get("Authorization") != "Bearer "+cur {
		t.Fatalf("the retry did not use the stored new token")
	}
	// The next call uses the new token without refreshing again.
	if r := f.proxy("GET", "/proxy/crm/rest/v1/account/profile", f.oauthAuth, "", "", nil); r.Status != 200 {
		t.Fatalf("second call: %d %s", r.Status, r.Body)
	}
	if got := f.keap.Stats().Refreshes - before; got != 1 {
		t.Fatalf("Keap saw %d refreshes after the second call, want 1", got)
	}
}

func TestProxy_ConnectordsOwnFailures(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)

	// Keap unreachable: 502 in connectord's error shape, after the GET's retries.
	f.wire.dead.Store(true)
	isOurError(t, f.proxy("GET", "/proxy/crm/rest/v1/contacts", f.sakAuth, "", "", nil), 502, "Keap could not be reached")
	isOurError(t, f.proxy("POST", "/proxy/crm/xmlrpc/v1", f.legacyAuth, "text/xml", xmlrpcAdd, nil), 502, "Keap could not be reached")
	f.wire.dead.Store(false)

	// Keap answering its own 503 page is Keap's answer, passed on.
	f.keap.SetDown(true)
	r := f.proxy("POST", "/proxy/crm/rest/v1/contacts", f.sakAuth, "application/json", `{}`, nil)
	if r.Status != 503 || !strings.Contains(string(r.Body), "Service Unavailable") {
		t.Fatalf("Keap's 503: %d %s", r.Status, r.Body)
	}
	f.keap.SetDown(false)

	// The caller's side.
	isOurError(t, f.proxy("GET", "/proxy/crm/rest/v1/contacts", f.org.auth(), "", "", nil), 401, "Element")
	isOurError(t, f.proxy("GET", "/proxy/crm/rest/v1/contacts", "User "+f.org.User.Secret+", Element nope", "", "", nil), 401, "Element token")
	isOurError(t, f.proxy("GET", "/proxy/crm/rest/v1/../../token", f.sakAuth, "", "", nil), 400, ". or ..")
	big := strings.Repeat("x", 1<<20+1)
	isOurError(t, f.proxy("POST", "/proxy/crm/rest/v1/contacts", f.sakAuth, "application/json", big, nil), 413, "larger than")

	// A disabled instance is refused before Keap hears of it, at once: the
	// change went through this process, which forgets what it had cached.
	if r := f.proxy("GET", "/proxy/crm/rest/v1/account/profile", f.sakAuth, "", "", nil); r.Status != 200 {
		t.Fatalf("before disabling: %d %s", r.Status, r.Body)
	}
	if r := f.do("PATCH", "/instances/"+f.sakID, f.org.auth(), map[string]any{"disabled": true}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	n := f.wire.count()
	isOurError(t, f.proxy("GET", "/proxy/crm/rest/v1/contacts", f.sakAuth, "", "", nil), 403, "disabled")
	if seen := f.wire.since(n); len(seen) != 0 {
		t.Fatalf("a call for a disabled instance reached Keap: %+v", seen)
	}
	if r := f.do("PATCH", "/instances/"+f.sakID, f.org.auth(), map[string]any{"disabled": false}); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	if r := f.proxy("GET", "/proxy/crm/rest/v1/account/profile", f.sakAuth, "", "", nil); r.Status != 200 {
		t.Fatalf("after enabling: %d %s", r.Status, r.Body)
	}
	// A deleted instance's token stops working at once too.
	if r := f.do("DELETE", "/instances/"+f.sakID, f.org.auth(), nil); r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := f.proxy("GET", "/proxy/crm/rest/v1/account/profile", f.sakAuth, "", "", nil); r.Status != 401 && r.Status != 404 {
		t.Fatalf("after deleting: %d %s", r.Status, r.Body)
	}
}

// The README's proxy block runs, as written, against `connectord serve --sandbox`.
func TestREADMEProxy_RunsAgainstSandbox(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README proxy block needs %s: install it (apt-get install %s)", tool, tool)
		}
	}
	block := readmeBlocks(t, "proxy", "sh")[0]
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	o := s.createOrg("dev", "dev@localhost")
	cmd := exec.Command("bash", "-c", block)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "BASE=" + s.URL, "USER_SECRET=" + o.User.Secret, "ORG_SECRET=" + o.Organization.Secret}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "proxy complete") {
		t.Fatalf("README proxy block failed: %v\n%s\nserver logs:\n%s", err, out, s.logs)
	}
	for _, want := range []string{"true\n404\n", "<string>ab123</string>"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A Keap that does not answer within CONNECTORD_KEAP_TIMEOUT is a 504, in
// connectord's error shape, through the proxy and the hubs alike.
func TestKeapTimeout_Is504ThroughProxyAndHubs(t *testing.T) {
	t.Parallel()
	var slow atomic.Bool
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() {
				time.Sleep(time.Second)
			}
			h.ServeHTTP(w, r)
		})
	})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_KEAP_TIMEOUT"] = "200ms"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	auth := "User " + o.User.Secret + ", Element " + r.JSON(t)["token"].(string)
	slow.Store(true)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/proxy/crm/rest/v1/contacts", `{"email_addresses":[{"email":"a@b.test","field":"EMAIL1"}]}`},
		{"GET", "/hubs/crm/contacts?pageSize=5", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := s.do(c.method, c.path, auth, body)
		if r.Status != 504 || r.JSON(t)["requestId"] == nil || !strings.Contains(r.JSON(t)["message"].(string), "in time") {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
}
