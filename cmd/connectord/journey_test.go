package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestOAuthJourney_SeedFlowEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")

	// Step 1: the OAuth URL, with no Authorization header, under the Open Connectors prefix.
	r := s.do("GET", "/elements/api-v2/elements/infusionsoftcrm/oauth/url?apiKey="+testClientID+
		"&apiSecret="+testClientSecret+"&callbackUrl=http://fake.oauth.callback/url&state=infusionsoftecommerce", "", nil)
	if r.Status != 200 {
		t.Fatalf("oauth/url: %d %s", r.Status, r.Body)
	}
	body := r.JSON(t)
	wantURL := s.keap.URL + "/app/oauth/authorize?response_type=code&client_id=" + testClientID +
		"&redirect_uri=" + url.QueryEscape("http://fake.oauth.callback/url") + "&scope=full&state=infusionsoftecommerce"
	if body["element"] != "infusionsoftcrm" || body["oauthUrl"] != wantURL {
		t.Fatalf("oauth/url answered %v\nwant oauthUrl %s", body, wantURL)
	}

	// The user authorizes at Keap, which redirects to the callback with code and state.
	code, state := authorize(t, body["oauthUrl"].(string))
	if state != "infusionsoftecommerce" {
		t.Fatalf("state %q did not survive the round trip", state)
	}

	// Step 2: create the instance with the seed's body.
	req := seedBody("infusionsoftecommerce", code, "Test")
	req["configuration"].(map[string]any)["oauth.callback.url"] = "http://fake.oauth.callback/url"
	r = s.do("POST", "/elements/api-v2/instances", o.auth(), req)
	if r.Status != 200 {
		t.Fatalf("POST /instances: %d %s", r.Status, r.Body)
	}
	inst := r.JSON(t)
	token, _ := inst["token"].(string)
	if token == "" || inst["id"] == nil || inst["name"] != "Test" || inst["valid"] != true || inst["disabled"] != false {
		t.Fatalf("instance lacks id, token, name or state: %v", inst)
	}
	el := inst["element"].(map[string]any)
	if el["key"] != "infusionsoftecommerce" || el["hub"] != "ecommerce" || el["authentication"].(map[string]any)["type"] != "oauth2" {
		t.Fatalf("element: %v", el)
	}
	cfg := inst["configuration"].(map[string]any)
	want := map[string]any{
		"oauth.api.key":               testClientID,
		"oauth.api.secret":            "********",
		"oauth.user.token":            "********",
		"oauth.user.refresh_token":    "********",
		"oauth.callback.url":          "http://fake.oauth.callback/url",
		"oauth.scope":                 "full",
		"oauth.token.url":             s.keap.URL + "/token",
		"oauth.authorization.url":     s.keap.URL + "/app/oauth/authorize",
		"base.url":                    s.keap.URL + "/crm/rest/v1",
		"pagination.max":              "200",
		"oauth.user.refresh_interval": "28800",
		"event.notification.enabled":  "false",
		"event.vendor.type":           "webhook",
		"filter.response.nulls":       "true",
		"document.tagging":            "false",
		"infusionsoft.app.name":       "ab123",
	}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("configuration %s = %v, want %v", k, cfg[k], v)
		}
	}
	if v, ok := cfg["event.notification.callback.url"]; !ok || v != nil {
		t.Errorf("event.notification.callback.url should be present and null, got %v (present %v)", v, ok)
	}
	if rt, _ := cfg["oauth.user.refresh_time"].(string); len(rt) != 13 {
		t.Errorf("oauth.user.refresh_time should be epoch ms, got %v", cfg["oauth.user.refresh_time"])
	}
	if s.keap.Stats().CodeExchanges != 1 {
		t.Errorf("fake Keap saw %d code exchanges, want 1", s.keap.Stats().CodeExchanges)
	}

	// The token is shown once: reads never show it, and secrets stay masked.
	id := fmt.Sprint(inst["id"])
	for _, path := range []string{"/instances/" + id, "/elements/api-v2/instances/" + id} {
		got := s.do("GET", path, o.auth(), nil)
		if got.Status != 200 {
			t.Fatalf("GET %s: %d %s", path, got.Status, got.Body)
		}
		if strings.Contains(string(got.Body), token) || got.JSON(t)["token"] != nil {
			t.Fatalf("GET %s shows the instance token", path)
		}
		if strings.Contains(string(got.Body), testClientSecret) {
			t.Fatalf("GET %s shows the client secret", path)
		}
	}
	// The instance token authenticates the instance (Element part of the header).
	if r := s.do("GET", "/instances/"+id, "User "+o.User.Secret+", Element "+token+", Organization "+o.Organization.Secret, nil); r.Status != 200 {
		t.Fatalf("all three parts: %d %s", r.Status, r.Body)
	}
	// The Cloud Elements Python SDK writes a colon after each name.
	if r := s.do("GET", "/instances/"+id, "User: "+o.User.Secret+", Organization: "+o.Organization.Secret+", Element: "+token, nil); r.Status != 200 {
		t.Fatalf("colon form: %d %s", r.Status, r.Body)
	}
}

func TestOAuthURL_Errors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tests := []struct {
		name, query string
		status      int
		want        []string
	}{
		{"nothing", "", 400, []string{"apiKey", "apiSecret", "callbackUrl"}},
		{"no secret", "apiKey=a&callbackUrl=https://x.test/cb", 400, []string{"apiSecret"}},
		{"relative callback", "apiKey=a&apiSecret=b&callbackUrl=/cb", 400, []string{"callbackUrl", "absolute"}},
		{"ftp callback", "apiKey=a&apiSecret=b&callbackUrl=ftp://x.test/cb", 400, []string{"callbackUrl"}},
		{"no state is fine", "apiKey=a&apiSecret=b&callbackUrl=https://x.test/cb", 200, []string{"response_type=code&client_id=a&redirect_uri=https%3A%2F%2Fx.test%2Fcb&scope=full\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", "/elements/infusionsoftmarketing/oauth/url?"+tt.query, "", nil)
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
	r := s.do("GET", "/elements/salesforce/oauth/url?apiKey=a&apiSecret=b&callbackUrl=https://x.test/cb", "", nil)
	if r.Status != 404 || !strings.Contains(string(r.Body), "salesforce") {
		t.Fatalf("unknown element: %d %s", r.Status, r.Body)
	}
	// By numeric id too.
	list := s.do("GET", "/elements", "", nil).Array(t)
	if len(list) != 4 {
		t.Fatalf("GET /elements listed %d elements, want 4", len(list))
	}
	first := list[0].(map[string]any)
	r = s.do("GET", fmt.Sprintf("/elements/%v/oauth/url?apiKey=a&apiSecret=b&callbackUrl=https://x.test/cb", first["id"]), "", nil)
	if r.Status != 200 || r.JSON(t)["element"] != first["key"] {
		t.Fatalf("by id: %d %s", r.Status, r.Body)
	}
}

func TestElementsCatalog(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	hubs := map[string]string{}
	for _, e := range s.do("GET", "/elements", "", nil).Array(t) {
		m := e.(map[string]any)
		hubs[m["key"].(string)] = m["hub"].(string)
		if len(m["resources"].([]any)) == 0 || len(m["authenticationTypes"].([]any)) != 2 {
			t.Errorf("%s lacks resources or authentication types", m["key"])
		}
	}
	want := map[string]string{"infusionsoftcrm": "crm", "infusionsoftmarketing": "marketing", "infusionsoftecommerce": "ecommerce", "infusionsoftrest": "crm"}
	for k, h := range want {
		if hubs[k] != h {
			t.Errorf("element %s hub %q, want %q", k, hubs[k], h)
		}
	}
	r := s.do("GET", "/elements/api-v2/elements/infusionsoftrest", "", nil)
	if r.Status != 200 || r.JSON(t)["key"] != "infusionsoftrest" {
		t.Fatalf("GET element: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/elements/nope", "", nil); r.Status != 404 {
		t.Fatalf("unknown element: %d", r.Status)
	}
}
