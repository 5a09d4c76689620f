package main

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// consolePages are the pages a signed-in person can open for instance id.
func consolePages(id string) []string {
	return []string{
		"/console", "/console/", "/console/instances", "/console/instances?tag=seed", "/console/elements",
		"/console/instances/" + id, "/console/instances/" + id + "/docs",
		"/console/instances/" + id + "/docs?method=GET&path=/hubs/crm/contacts/{id}", "/console/instances/" + id + "/delete",
		"/console/no-such-page", "/console/instances/999999", "/console/instances/abc",
		"/console/audit", "/console/audit?action=instance.changed",
	}
}

// checkSecurityHeaders checks what every console answer must carry.
func checkSecurityHeaders(t *testing.T, what string, r response) {
	t.Helper()
	h := r.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "style-src 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %s", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
		t.Errorf("%s: Content-Security-Policy %q allows scripts", what, csp)
	}
	if h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("%s: X-Frame-Options %q", what, h.Get("X-Frame-Options"))
	}
	if h.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("%s: Referrer-Policy %q", what, h.Get("Referrer-Policy"))
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, h.Get("X-Content-Type-Options"))
	}
}

// Every console page, signed in or not, found or not, and the stylesheet
// carry the security headers.
func TestConsole_SecurityHeadersOnEveryPage(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	id := fmt.Sprint(s.provisionOAuth(o, "infusionsoftcrm", "headers")["id"])
	anon := s.consoleClient()
	for _, p := range []string{"/console/signin", "/console/assets/console.css", "/console/instances"} {
		r := anon.get(p)
		checkSecurityHeaders(t, "signed out "+p, r)
	}
	if r := anon.postForm("/console/signin", url.Values{"userSecret": {"x"}, "organizationSecret": {"y"}}, false); r.Status == 200 {
		t.Error("sign in with made-up secrets succeeded")
	} else {
		checkSecurityHeaders(t, "failed sign in", r)
	}
	cc := s.signIn(o)
	for _, p := range consolePages(id) {
		r := cc.get(p)
		checkSecurityHeaders(t, p, r)
		if r.Status != 200 && r.Status != 404 && r.Status != 400 {
			t.Errorf("%s: %d", p, r.Status)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q", p, r.Header.Get("Content-Type"))
		}
	}
	r := cc.postForm("/console/instances/"+id+"/docs", url.Values{"method": {"GET"}, "path": {"/hubs/crm/contacts"}, "query": {"pageSize=2"}}, true)
	checkSecurityHeaders(t, "try it", r)
	r = cc.postForm("/console/instances/"+id+"/refresh", url.Values{}, true)
	checkSecurityHeaders(t, "refresh", r)
	if r := cc.get("/console/assets/console.css"); r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
}

// Creating an instance from the console's API-key forms goes through the API's
// checks: the messages are the API's own, word for word, and what was created
// is what the API would have created.
func TestConsole_APIKeyFormsGiveTheAPIsAnswers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	cc := s.signIn(o)
	cc.get("/console/elements")
	for _, c := range []struct {
		form url.Values
		api  map[string]any
	}{
		{url.Values{"kind": {"legacy"}, "name": {"bad app"}, "appName": {"not-an-app"}, "apiKey": {testLegacyKey}}, apiKeyBody("infusionsoftcrm", testLegacyKey, "not-an-app")},
		{url.Values{"kind": {"service"}, "name": {"bad key"}, "apiKey": {"KeapAK-not-a-key-Keap-knows-000"}}, apiKeyBody("infusionsoftcrm", "KeapAK-not-a-key-Keap-knows-000", "")},
		{url.Values{"kind": {"service"}, "name": {""}, "apiKey": {""}}, map[string]any{"element": map[string]any{"key": "infusionsoftcrm"}, "configuration": map[string]any{"authentication.type": "apikey", "infusionsoft.api.key": ""}, "name": ""}},
	} {
		api := s.do("POST", "/instances", o.auth(), c.api)
		want := api.JSON(t)["message"].(string)
		r := cc.postForm("/console/elements/infusionsoftcrm/instances", c.form, true)
		if r.Status != api.Status || !strings.Contains(html.UnescapeString(string(r.Body)), want) {
			t.Errorf("form %v: console %d, API %d %q\n%s", c.form, r.Status, api.Status, want, r.Body)
		}
	}
	if n := s.count("instances"); n != 0 {
		t.Fatalf("refused forms created %d instances", n)
	}
	r := cc.postForm("/console/elements/infusionsoftcrm/instances", url.Values{"kind": {"legacy"}, "name": {"legacy one"}, "appName": {testLegacyApp}, "apiKey": {testLegacyKey}, "tags": {"a, b"}}, true)
	if r.Status != 200 || !strings.Contains(string(r.Body), "Instance created.") || !strings.Contains(string(r.Body), "legacy one") {
		t.Fatalf("legacy key form: %d %s", r.Status, r.Body)
	}
	list := s.do("GET", "/instances", o.auth(), nil).Array(t)
	if len(list) != 1 {
		t.Fatalf("%d instances", len(list))
	}
	inst := list[0].(map[string]any)
	if inst["authenticationType"] != "apikey" || fmt.Sprint(inst["tags"]) != "[a b]" || inst["configuration"].(map[string]any)["infusionsoft.app.name"] != testLegacyApp {
		t.Errorf("created %v", inst)
	}
}

// The instance page's forms: edit with the API's validation (nothing saved on
// a refusal), disable and enable, refresh, delete only with confirmation.
func TestConsole_InstanceForms(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	id := fmt.Sprint(s.provisionOAuth(o, "infusionsoftcrm", "managed")["id"])
	cc := s.signIn(o)
	page := string(cc.get("/console/instances/" + id).Body)
	for _, want := range []string{"managed", "valid", "Token expires", "Refresh tokens now", "Save configuration", "No notifications yet.", "Keap hooks", "Polling cursors", `type="password"`} {
		if !strings.Contains(page, want) {
			t.Errorf("instance page lacks %q", want)
		}
	}

	api := s.do("PATCH", "/instances/"+id, o.auth(), map[string]any{"configuration": map[string]any{"pagination.max": "99999"}})
	want := api.JSON(t)["message"].(string)
	r := cc.postForm("/console/instances/"+id+"/configuration", url.Values{"cfg.pagination.max": {"99999"}, "name": {"managed"}}, true)
	if r.Status != 400 || !strings.Contains(html.UnescapeString(string(r.Body)), want) || !strings.Contains(string(r.Body), `value="99999"`) {
		t.Fatalf("invalid edit: %d, want the API's %q and the typed value kept\n%s", r.Status, want, r.Body)
	}
	r = cc.postForm("/console/instances/"+id+"/configuration", url.Values{"cfg.pagination.max": {"150"}, "name": {"renamed"}, "tags": {"x, y"}, "cfg.oauth.api.secret": {""}}, true)
	if r.Status != 200 || !strings.Contains(string(r.Body), "Configuration saved.") {
		t.Fatalf("edit: %d %s", r.Status, r.Body)
	}
	got := s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)
	if got["name"] != "renamed" || fmt.Sprint(got["tags"]) != "[x y]" || *strPtr(got["configuration"].(map[string]any)["pagination.max"]) != "150" {
		t.Fatalf("after edit: %v", got)
	}
	if s.instanceSecrets(id)["oauth.api.secret"] != testClientSecret {
		t.Fatal("an empty secret field changed the stored client secret")
	}

	if r := cc.postForm("/console/instances/"+id+"/refresh", url.Values{}, true); r.Status != 200 || !strings.Contains(string(r.Body), "Tokens renewed.") {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	if r := cc.postForm("/console/instances/"+id+"/disable", url.Values{}, true); !strings.Contains(string(r.Body), "Instance disabled") || !strings.Contains(string(r.Body), ">Enable<") {
		t.Fatalf("disable: %d", r.Status)
	}
	if r := cc.postForm("/console/instances/"+id+"/enable", url.Values{}, true); !strings.Contains(string(r.Body), "Instance enabled.") {
		t.Fatalf("enable: %d", r.Status)
	}
	if r := cc.get("/console/instances/" + id + "/delete"); !strings.Contains(string(r.Body), "Delete renamed?") || !strings.Contains(string(r.Body), `name="confirm"`) {
		t.Fatalf("delete page: %d %s", r.Status, r.Body)
	}
	if r := cc.postForm("/console/instances/"+id+"/delete", url.Values{}, true); r.Status != 400 || s.count("instances") != 1 {
		t.Fatalf("delete without confirmation: %d, %d instances", r.Status, s.count("instances"))
	}
	if r := cc.postForm("/console/instances/"+id+"/delete", url.Values{"confirm": {"yes"}}, true); r.Status != 200 || !strings.Contains(string(r.Body), "Instance deleted.") || s.count("instances") != 0 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	// Another organization's instance is not there for this session.
	other := s.createOrg("Other", "dev@other.test")
	oid := fmt.Sprint(s.provisionOAuth(other, "infusionsoftcrm", "theirs")["id"])
	if r := cc.get("/console/instances/" + oid); r.Status != 404 || strings.Contains(string(r.Body), "theirs") {
		t.Fatalf("another organization's instance: %d", r.Status)
	}
	if r := cc.postForm("/console/instances/"+oid+"/delete", url.Values{"confirm": {"yes"}}, true); r.Status != 404 || s.count("instances") != 1 {
		t.Fatalf("deleting another organization's instance: %d", r.Status)
	}
}

func strPtr(v any) *string {
	s, _ := v.(string)
	return &s
}

// The try-it panel runs hub calls as the instance and shows the request,
// status, headers and body; refusals show the API's message and status.
func TestConsole_TryItRunsHubCallsAsTheInstance(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.keap.SeedContacts(3)
	o := s.createOrg("Acme", "dev@acme.test")
	id := fmt.Sprint(s.provisionOAuth(o, "infusionsoftcrm", "docs")["id"])
	cc := s.signIn(o)
	docs := string(cc.get("/console/instances/" + id + "/docs").Body)
	for _, want := range []string{"GET</span> <code>/hubs/crm/contacts</code>", "DELETE</span> <code>/hubs/crm/contacts/{id}/tags</code>", "orderBy takes one of", "Try it as this instance"} {
		if !strings.Contains(docs, want) {
			t.Errorf("docs page lacks %q", want)
		}
	}
	r := cc.postForm("/console/instances/"+id+"/docs", url.Values{"method": {"GET"}, "path": {"/hubs/crm/contacts?pageSize=2"}}, true)
	body := html.UnescapeString(string(r.Body))
	for _, want := range []string{"GET /hubs/crm/contacts?pageSize=2", "200 OK", "Elements-Next-Page-Token: ", `"email_addresses"`} {
		if !strings.Contains(body, want) {
			t.Errorf("list call result lacks %q", want)
		}
	}
	r = cc.postForm("/console/instances/"+id+"/docs", url.Values{"method": {"POST"}, "path": {"/hubs/crm/contacts"}, "body": {`{"given_name":"Ada","email_addresses":[{"email":"ada@example.test","field":"EMAIL1"}]}`}}, true)
	if body := html.UnescapeString(string(r.Body)); !regexp.MustCompile(`20[01] (OK|Created)`).MatchString(body) || !strings.Contains(body, "ada@example.test") {
		t.Errorf("create call result: %s", body)
	}
	api := s.do("GET", "/hubs/crm/contacts?where=nosuchfield='x'", "User "+o.User.Secret+", Element "+s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, "")).JSON(t)["token"].(string), nil)
	r = cc.postForm("/console/instances/"+id+"/docs", url.Values{"method": {"GET"}, "path": {"/hubs/crm/contacts"}, "query": {"where=nosuchfield='x'"}}, true)
	if body := html.UnescapeString(string(r.Body)); !strings.Contains(body, "400 Bad Request") || !strings.Contains(body, api.JSON(t)["message"].(string)) {
		t.Errorf("refused call: want the API's %d %s in\n%s", api.Status, api.Body, body)
	}
	for _, c := range []url.Values{
		{"method": {"GET"}, "path": {"/hubs/marketing/contacts"}},
		{"method": {"TRACE"}, "path": {"/hubs/crm/contacts"}},
		{"method": {"GET"}, "path": {"/hubs/crm/contacts/{id}"}},
		{"method": {"GET"}, "path": {"/hubs/crm/contacts"}, "query": {"%zz"}},
	} {
		r := cc.postForm("/console/instances/"+id+"/docs", c, true)
		if body := html.UnescapeString(string(r.Body)); !strings.Contains(body, "400 Bad Request") {
			t.Errorf("try %v: %s", c, body)
		}
	}
	if r := cc.postForm("/console/instances/"+id+"/docs", url.Values{"method": {"GET"}, "path": {"/hubs/crm/lookups/countries"}}, true); !strings.Contains(string(r.Body), "200 OK") {
		t.Errorf("countries lookup: %s", r.Body)
	}
}
