package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

func TestCreateInstance_MissingConfigNamesEveryEntry(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	r := s.do("POST", "/instances", o.auth(), map[string]any{"element": map[string]any{"key": "infusionsoftcrm"}, "name": "x", "configuration": map[string]any{}})
	if r.Status != 400 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	msg := r.JSON(t)["message"].(string)
	for _, want := range []string{"providerData.code", "oauth.api.key", "oauth.api.secret", "oauth.callback.url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	if r.JSON(t)["requestId"] != r.Header.Get("Elements-Request-Id") || r.Header.Get("Elements-Request-Id") == "" {
		t.Errorf("request id in body %v and header %q differ", r.JSON(t)["requestId"], r.Header.Get("Elements-Request-Id"))
	}
	if n := s.count("instances"); n != 0 {
		t.Fatalf("a refused request left %d instances", n)
	}
}

func TestCreateInstance_RejectsBadRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	tests := []struct {
		name   string
		path   string
		body   func() map[string]any
		status int
		want   []string
	}{
		{"no element", "/instances", func() map[string]any { b := seedBody("x", code, "n"); delete(b, "element"); return b }, 400, []string{"element.key"}},
		{"unknown element in body", "/instances", func() map[string]any { return seedBody("salesforce", code, "n") }, 400, []string{"salesforce"}},
		{"unknown element in path", "/elements/salesforce/instances", func() map[string]any { b := seedBody("x", code, "n"); delete(b, "element"); return b }, 404, []string{"salesforce"}},
		{"path and body disagree", "/elements/infusionsoftcrm/instances", func() map[string]any { return seedBody("infusionsoftmarketing", code, "n") }, 400, []string{"does not match"}},
		{"no name", "/instances", func() map[string]any { return seedBody("infusionsoftcrm", code, " ") }, 400, []string{"name"}},
		{"unknown configuration", "/instances", func() map[string]any {
			b := seedBody("infusionsoftcrm", code, "n")
			b["configuration"].(map[string]any)["oauth.api.kee"] = "x"
			b["configuration"].(map[string]any)["zzz"] = "y"
			return b
		}, 400, []string{"oauth.api.kee", "zzz", "GET /elements/infusionsoftcrm"}},
		{"read-only configuration", "/instances", func() map[string]any {
			b := seedBody("infusionsoftcrm", code, "n")
			b["configuration"].(map[string]any)["oauth.user.token"] = "stolen"
			return b
		}, 400, []string{"oauth.user.token"}},
		{"bad callback url", "/instances", func() map[string]any {
			b := seedBody("infusionsoftcrm", code, "n")
			b["configuration"].(map[string]any)["oauth.callback.url"] = "not a url"
			return b
		}, 400, []string{"oauth.callback.url", "absolute"}},
		{"bad number and boolean", "/instances", func() map[string]any {
			b := seedBody("infusionsoftcrm", code, "n")
			b["configuration"].(map[string]any)["pagination.max"] = "lots"
			b["configuration"].(map[string]any)["filter.response.nulls"] = "maybe"
			return b
		}, 400, []string{"pagination.max", "filter.response.nulls"}},
		{"polling-only element asked for webhooks", "/instances", func() map[string]any {
			b := seedBody("infusionsoftrest", code, "n")
			c := b["configuration"].(map[string]any)
			c["event.notification.enabled"] = true
			c["event.vendor.type"] = "webhook"
			c["event.notification.callback.url"] = "https://example.test/events"
			return b
		}, 400, []string{"polling"}},
		{"events without callback", "/instances", func() map[string]any {
			b := seedBody("infusionsoftcrm", code, "n")
			b["configuration"].(map[string]any)["event.notification.enabled"] = "true"
			return b
		}, 400, []string{"event.notification.callback.url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("POST", tt.path, o.auth(), tt.body())
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(r.Body), w) {
					t.Errorf("body %s does not name %q", r.Body, w)
				}
			}
		})
	}
	if n := s.count("instances"); n != 0 {
		t.Fatalf("refused requests left %d instances", n)
	}
	if s.keap.Stats().CodeExchanges != 0 {
		t.Fatalf("invalid requests reached the token endpoint %d times", s.keap.Stats().CodeExchanges)
	}
}

func TestCreateInstance_ProviderRefusalAndOutage(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")

	// A code Keap never issued: Keap refuses, the caller gets 400 with Keap's words.
	r := s.do("POST", "/instances", o.auth(), seedBody("infusionsoftcrm", "made-up-code", "n"))
	if r.Status != 400 {
		t.Fatalf("refused code: %d %s", r.Status, r.Body)
	}
	body := r.JSON(t)
	if body["providerMessage"] == nil || body["providerMessage"] == "" || body["requestId"] == nil {
		t.Fatalf("refusal lacks providerMessage or requestId: %v", body)
	}

	// A wrong client secret.
	code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	b := seedBody("infusionsoftcrm", code, "n")
	b["configuration"].(map[string]any)["oauth.api.secret"] = "wrong-secret"
	if r := s.do("POST", "/instances", o.auth(), b); r.Status != 400 || r.JSON(t)["providerMessage"] == nil {
		t.Fatalf("wrong client secret: %d %s", r.Status, r.Body)
	}
	if strings.Contains(s.logs.String(), "wrong-secret") {
		t.Fatal("the client secret reached the logs")
	}

	// Keap down: 502.
	code, _ = s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	s.keap.SetDown(true)
	r = s.do("POST", "/instances", o.auth(), seedBody("infusionsoftcrm", code, "n"))
	s.keap.SetDown(false)
	if r.Status != 502 {
		t.Fatalf("provider down: %d %s", r.Status, r.Body)
	}
	if n := s.count("instances"); n != 0 {
		t.Fatalf("failed provisioning left %d instances", n)
	}
}

func TestCreateInstance_ProviderUnreachableIs502(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_INFUSIONSOFT_TOKEN_URL"] = "http://127.0.0.1:1/token"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	r := s.do("POST", "/instances", o.auth(), seedBody("infusionsoftcrm", "code", "n"))
	if r.Status != 502 || !strings.Contains(r.JSON(t)["message"].(string), "reached") {
		t.Fatalf("unreachable provider: %d %s", r.Status, r.Body)
	}
}

func apiKeyBody(element, key, app string) map[string]any {
	cfg := map[string]any{"authentication.type": "apikey", "infusionsoft.api.key": key}
	if app != "" {
		cfg["infusionsoft.app.name"] = app
	}
	return map[string]any{"element": map[string]any{"key": element}, "configuration": cfg, "name": "keyed", "tags": []any{"keys"}}
}

func TestAPIKeyInstances_ServiceAccountAndLegacy(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")

	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("service account key: %d %s", r.Status, r.Body)
	}
	inst := r.JSON(t)
	cfg := inst["configuration"].(map[string]any)
	if inst["token"] == "" || inst["element"].(map[string]any)["authentication"].(map[string]any)["type"] != "apikey" ||
		cfg["infusionsoft.api.key"] != "********" || cfg["base.url"] != s.keap.URL+"/crm/rest/v1" || cfg["oauth.api.key"] != nil {
		t.Fatalf("service account instance: %s", r.Body)
	}
	calls := s.keap.Stats().APICalls
	if calls != 1 {
		t.Fatalf("provisioning made %d Keap API calls, want one cheap check", calls)
	}

	r = s.do("POST", "/elements/infusionsoftmarketing/instances", o.auth(), apiKeyBody("infusionsoftmarketing", testLegacyKey, "FM260"))
	if r.Status != 200 {
		t.Fatalf("legacy key: %d %s", r.Status, r.Body)
	}
	cfg = r.JSON(t)["configuration"].(map[string]any)
	if cfg["base.url"] != s.keap.URL+"/crm/rest/v1" || cfg["infusionsoft.app.name"] != "fm260" {
		t.Fatalf("legacy instance configuration: %v (want Keap's API host, and the application name shown)", cfg)
	}
	if n := s.keap.Stats().APICalls - calls; n != 1 {
		t.Fatalf("checking the legacy key made %d Keap API calls, want one cheap REST call", n)
	}

	// Without authentication.type, an API key still means an API-key instance.
	b := apiKeyBody("infusionsoftcrm", testServiceKey, "")
	delete(b["configuration"].(map[string]any), "authentication.type")
	if r := s.do("POST", "/instances", o.auth(), b); r.Status != 200 {
		t.Fatalf("implicit apikey: %d %s", r.Status, r.Body)
	}

	tests := []struct {
		name      string
		key, app  string
		status    int
		want      string
		wantProvM bool
	}{
		{"wrong service account key", "KeapAK-not-a-real-key", "", 400, "service account key", true},
		{"legacy key without app", testLegacyKey, "", 400, "infusionsoft.app.name", false},
		{"app name not two letters three digits", testLegacyKey, "fm2600", 400, "two letters and three digits", false},
		{"app name with a dot", testLegacyKey, "fm260.infusionsoft.com", 400, "two letters and three digits", false},
		{"wrong legacy key", "0000deadbeef", "fm260", 400, "legacy API key", true},
		{"no key", "", "", 400, "infusionsoft.api.key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", tt.key, tt.app))
			if r.Status != tt.status || !strings.Contains(string(r.Body), tt.want) {
				t.Fatalf("status %d, want %d naming %q: %s", r.Status, tt.status, tt.want, r.Body)
			}
			if tt.wantProvM && r.JSON(t)["providerMessage"] == nil {
				t.Fatalf("no providerMessage: %s", r.Body)
			}
		})
	}
	if n := s.count("instances"); n != 3 {
		t.Fatalf("want the 3 good instances stored, got %d", n)
	}
}

// Event callbacks must not point connectord at its own network: loopback,
// private and link-local destinations are refused when configured, unless the
// operator allows them.
func TestEventCallback_PrivateDestinationsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	withCallback := func(url string) map[string]any {
		code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
		b := seedBody("infusionsoftcrm", code, "events")
		c := b["configuration"].(map[string]any)
		c["event.notification.enabled"] = true
		c["event.notification.callback.url"] = url
		return b
	}
	for _, url := range []string{"http://127.0.0.1:9000/events", "http://169.254.169.254/latest", "http://localhost/events", "http://10.0.0.5/events"} {
		r := s.do("POST", "/instances", o.auth(), withCallback(url))
		if r.Status != 400 || !strings.Contains(r.JSON(t)["message"].(string), "CONNECTORD_CALLBACK_ALLOW_PRIVATE") {
			t.Errorf("callback %s: %d %s", url, r.Status, r.Body)
		}
	}
	r := s.do("POST", "/instances", o.auth(), withCallback("https://hooks.example.test/events"))
	if r.Status != 200 {
		t.Fatalf("public callback: %d %s", r.Status, r.Body)
	}
	id := fmt.Sprint(r.JSON(t)["id"])
	if r := s.do("PATCH", "/instances/"+id+"/configuration/event.notification.callback.url", o.auth(), map[string]any{"propertyValue": "http://192.168.1.10/cb"}); r.Status != 400 {
		t.Fatalf("PATCH to a private callback: %d %s", r.Status, r.Body)
	}
	if r := s.do("PATCH", "/instances/"+id, o.auth(), map[string]any{"configuration": map[string]any{"event.notification.callback.url": "http://[::1]/cb"}}); r.Status != 400 {
		t.Fatalf("PATCH to a loopback callback: %d %s", r.Status, r.Body)
	}

	// An operator who allows private destinations (tests, sandboxes) can use them.
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_CALLBACK_ALLOW_PRIVATE"] = "true"
	open := startServerWith(t, env, k, nil)
	o2 := open.createOrg("Acme", "dev@acme.test")
	code, _ := k.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	b := seedBody("infusionsoftcrm", code, "events")
	b["configuration"].(map[string]any)["event.notification.callback.url"] = "http://127.0.0.1:9000/events"
	if r := open.do("POST", "/instances", o2.auth(), b); r.Status != 200 {
		t.Fatalf("allowed private callback: %d %s", r.Status, r.Body)
	}
}
