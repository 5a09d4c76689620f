package fakekeap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// v2SpecName is Keap's REST v2 OpenAPI document of August 2026. The project
// does not vendor it: the development machine and CI keep it in a folder
// shared/keap beside (or above) the repository, and the tests below check
// every request and answer against it when they find it.
const v2SpecName = "keap-rest-v2-2026-08.yml"

// findShared walks up from the package directory to the first shared/keap/name.
func findShared(name string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "shared", "keap", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

var (
	v2DocOnce   sync.Once
	v2DocRouter routers.Router
	v2DocErr    error
)

// v2Doc loads Keap's v2 document once, or returns nil when it is not at hand.
func v2Doc(t *testing.T) routers.Router {
	t.Helper()
	v2DocOnce.Do(func() {
		path := findShared(v2SpecName)
		if path == "" {
			return
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(path)
		if err != nil {
			v2DocErr = err
			return
		}
		// Route on paths alone: the fake is not at Keap's host.
		doc.Servers = openapi3.Servers{{URL: "/crm"}}
		v2DocRouter, v2DocErr = gorillamux.NewRouter(doc)
	})
	if v2DocErr != nil {
		t.Fatalf("Keap's v2 document %s does not load: %v", v2SpecName, v2DocErr)
	}
	return v2DocRouter
}

// v2Client calls the fake's REST v2 and, when Keap's document is at hand,
// checks each request and answer against it.
type v2Client struct {
	t      *testing.T
	srv    *httptest.Server
	router routers.Router
	header []string
}

func newV2Client(t *testing.T, srv *httptest.Server) *v2Client {
	router := v2Doc(t)
	if router == nil {
		t.Logf("Keap's REST v2 document (shared/keap/%s) is not at hand: requests and answers are not checked against it; the behaviour checks still run", v2SpecName)
	}
	return &v2Client{t: t, srv: srv, router: router, header: []string{"X-Keap-API-Key", sak}}
}

// do sends a request under /crm/rest/v2 and returns the status and the decoded body.
func (c *v2Client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	r := c.raw(method, path, body)
	if len(r.body) == 0 {
		return r.status, nil
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		c.t.Fatalf("%s %s: answer %q is not a JSON object", method, path, r.body)
	}
	return r.status, m
}

func (c *v2Client) raw(method, path string, body any) reply {
	c.t.Helper()
	var js []byte
	if body != nil {
		js, _ = json.Marshal(body)
	}
	r := send(c.t, method, c.srv.URL+"/crm/rest/v2"+path, bodyReader(js), append(slicesClone(c.header), "Content-Type", "application/json")...)
	if c.router != nil {
		c.check(method, path, js, r)
	}
	return r
}

func bodyReader(js []byte) io.Reader {
	if js == nil {
		return nil
	}
	return bytes.NewReader(js)
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// check validates a request and its answer against Keap's document.
func (c *v2Client) check(method, path string, js []byte, r reply) {
	c.t.Helper()
	req, _ := http.NewRequest(method, "/crm/rest/v2"+path, bodyReader(js))
	if js != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s: not an operation of Keap's v2 document: %v", method, path, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	ctx := context.Background()
	if r.status < 300 { // a refused request may be invalid on purpose
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			c.t.Errorf("%s %s: request not valid against Keap's v2 document: %v", method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header,
		Body: io.NopCloser(bytes.NewReader(r.body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		var re *openapi3filter.ResponseError
		if errors.As(err, &re) && strings.Contains(re.Reason, "status code") {
			c.t.Errorf("%s %s: status %d is not documented by Keap's v2 document", method, path, r.status)
			return
		}
		c.t.Errorf("%s %s: answer %d not valid against Keap's v2 document: %v\n%s", method, path, r.status, err, r.body)
	}
}

func ids(list any, key string) []string {
	var out []string
	for _, x := range list.([]any) {
		m := x.(map[string]any)
		if key != "" {
			m = m[key].(map[string]any)
		}
		out = append(out, m["id"].(string))
	}
	return out
}

func wantStatus(t *testing.T, what string, got, want int, body map[string]any) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d: %v", what, got, want, body)
	}
}

// wantV2Error checks Keap's v2 error body and that its message names about.
func wantV2Error(t *testing.T, what string, got int, body map[string]any, want int, status, about string) {
	t.Helper()
	wantStatus(t, what, got, want, body)
	if body["code"] != float64(want) || body["status"] != status || !strings.Contains(body["message"].(string), about) {
		t.Fatalf("%s: error %v, want code %d, status %s and a message naming %q", what, body, want, status, about)
	}
	if _, ok := body["details"].([]any); !ok {
		t.Fatalf("%s: error %v has no details list", what, body)
	}
}

func TestV2Contacts_CreateFilterOrderPageAndFields(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	for _, p := range []struct{ given, family, email string }{
		{"Mary", "Smith", "mary@example.com"}, {"Mark", "Jones", "mark@example.com"}, {"Anne", "Marsh", "anne@example.org"},
	} {
		st, body := c.do("POST", "/contacts", map[string]any{"given_name": p.given, "family_name": p.family,
			"email_addresses": []any{map[string]any{"email": p.email, "field": "EMAIL1"}},
			"addresses":       []any{map[string]any{"field": "BILLING", "line1": "1 Main St", "locality": "Phoenix", "region_code": "US-AZ", "country_code": "USA", "postal_code": "85001"}}})
		wantStatus(t, "create", st, http.StatusCreated, body)
		if _, isString := body["id"].(string); !isString {
			t.Fatalf("create: id %v is not a string", body["id"])
		}
		addr := body["addresses"].([]any)[0].(map[string]any)
		if addr["region"] != "Arizona" || addr["region_code"] != "US-AZ" {
			t.Fatalf("address %v: want region Arizona and region_code US-AZ", addr)
		}
	}

	st, body := c.do("GET", "/contacts?filter=given_name%3D%3DMar%2A&order_by=email%20desc", nil)
	wantStatus(t, "filter", st, 200, body)
	if got := ids(body["contacts"], ""); strings.Join(got, ",") != "1,2" {
		t.Fatalf("given_name==Mar* ordered by email desc: ids %v, want [1 2] (mary, mark)", got)
	}

	// Paging: two pages of one, then the last with no next token.
	var seen []string
	token := ""
	for pages := 0; ; pages++ {
		path := "/contacts?page_size=2&order_by=id"
		if token != "" {
			path += "&page_token=" + token
		}
		st, body = c.do("GET", path, nil)
		wantStatus(t, "page", st, 200, body)
		seen = append(seen, ids(body["contacts"], "")...)
		token, _ = body["next_page_token"].(string)
		if token == "" || pages > 3 {
			break
		}
	}
	if strings.Join(seen, ",") != "1,2,3" {
		t.Fatalf("paging with page_size=2 saw %v, want 1,2,3 once each", seen)
	}

	st, body = c.do("GET", "/contacts/3?fields=given_name,email_addresses", nil)
	wantStatus(t, "get with fields", st, 200, body)
	if len(body) != 3 || body["given_name"] != "Anne" || body["email_addresses"] == nil {
		t.Fatalf("fields=given_name,email_addresses answered %v", body)
	}

	st, body = c.do("GET", "/contacts?filter=shoe_size%3D%3D9", nil)
	wantV2Error(t, "unknown filter field", st, body, 400, "INVALID_ARGUMENT", "given_name")
	st, body = c.do("GET", "/contacts?filter=given_name%3D%3D%2Ar%2A", nil)
	wantV2Error(t, "inner wildcard", st, body, 400, "INVALID_ARGUMENT", "wildcard")
	st, body = c.do("GET", "/contacts?order_by=shoe_size", nil)
	wantV2Error(t, "unknown order", st, body, 400, "INVALID_ARGUMENT", "create_time")
	st, body = c.do("GET", "/contacts?limit=5", nil)
	wantV2Error(t, "v1 paging parameter", st, body, 400, "INVALID_ARGUMENT", "limit")
	st, body = c.do("GET", "/contacts/99", nil)
	wantV2Error(t, "missing contact", st, body, 404, "NOT_FOUND", "99")
	st, body = c.do("POST", "/contacts", map[string]any{"given_name": "Nobody"})
	wantV2Error(t, "contact without email or phone", st, body, 400, "INVALID_ARGUMENT", "email")
	st, body = c.do("POST", "/contacts", map[string]any{"first_name": "Nobody"})
	wantV2Error(t, "v1 member name", st, body, 400, "INVALID_ARGUMENT", "first_name")
}

func TestV2Contacts_DuplicateOptionPatchMaskDeleteAndMerge(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	mary := map[string]any{"given_name": "Mary", "family_name": "Smith", "email_addresses": []any{map[string]any{"email": "mary@example.com", "field": "EMAIL1"}}}
	st, body := c.do("POST", "/contacts?duplicate_option=Email", mary)
	wantStatus(t, "first create", st, http.StatusCreated, body)
	mary["job_title"] = "CEO"
	st, body = c.do("POST", "/contacts?duplicate_option=Email", mary)
	wantStatus(t, "create of a duplicate", st, http.StatusOK, body)
	if body["id"] != "1" || body["job_title"] != "CEO" {
		t.Fatalf("duplicate_option=Email: %v, want contact 1 updated", body)
	}
	mary["given_name"] = "Maria"
	st, body = c.do("POST", "/contacts?duplicate_option=EmailAndName", mary)
	wantStatus(t, "create with another name", st, http.StatusCreated, body)

	st, body = c.do("PATCH", "/contacts/1?update_mask=job_title", map[string]any{"job_title": "CTO", "given_name": "Ignored"})
	wantStatus(t, "patch", st, 200, body)
	if body["job_title"] != "CTO" || body["given_name"] != "Mary" {
		t.Fatalf("update_mask=job_title changed %v: only job_title may change", body)
	}
	st, body = c.do("PATCH", "/contacts/1?update_mask=shoe_size", map[string]any{})
	wantV2Error(t, "unknown update_mask entry", st, body, 400, "INVALID_ARGUMENT", "shoe_size")

	// Merge: contact 2's phone and tag move onto contact 1; contact 2 is gone.
	tag := fk.AddTag("VIP")
	st, body = c.do("PATCH", "/contacts/2", map[string]any{"phone_numbers": []any{map[string]any{"number": "555-0101", "field": "PHONE1"}}})
	wantStatus(t, "patch phone", st, 200, body)
	st, body = c.do("POST", "/tags/"+idString(tag)+"/contacts:applyTags", map[string]any{"contact_ids": []string{"2"}})
	wantStatus(t, "apply", st, 200, body)
	st, body = c.do("POST", "/contacts:merge", map[string]any{"contact_id": "1", "duplicate_contact_id": "2"})
	wantStatus(t, "merge", st, 200, body)
	if body["id"] != "1" || len(body["phone_numbers"].([]any)) != 1 || body["tag_ids"].([]any)[0] != idString(tag) {
		t.Fatalf("merged contact %v: want contact 1 with contact 2's phone and tag", body)
	}
	st, body = c.do("GET", "/contacts/2", nil)
	wantV2Error(t, "merged-away contact", st, body, 404, "NOT_FOUND", "2")

	st, body = c.do("DELETE", "/contacts/1", nil)
	wantStatus(t, "delete", st, http.StatusNoContent, body)
	if _, ok := fk.Contact(1); ok {
		t.Fatal("contact 1 still there after DELETE")
	}
}

// TestV2_SharesRecordsWithV1AndXMLRPC: a contact made through XML-RPC is the
// one REST v2 reads, and a tag applied through REST v2 is the group XML-RPC loads.
func TestV2_SharesRecordsWithV1AndXMLRPC(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	header := []string{"X-Keap-API-Key", sak}
	id, fault := xmlrpc(t, srv.URL+"/crm/xmlrpc/v1", "ContactService.add", header, "", map[string]any{"FirstName": "Ada", "Email": "ada@example.com"})
	if fault != nil {
		t.Fatal(fault)
	}
	st, body := c.do("GET", "/contacts?filter=email%3D%3Dada%40example.com", nil)
	wantStatus(t, "list", st, 200, body)
	if got := ids(body["contacts"], ""); len(got) != 1 || got[0] != idString(id.(int64)) {
		t.Fatalf("v2 list by email found %v, want the XML-RPC contact %d", got, id)
	}
	st, body = c.do("POST", "/tags", map[string]any{"name": "Customers", "description": "Bought once"})
	wantStatus(t, "create tag", st, http.StatusCreated, body)
	tagID := body["id"].(string)
	st, body = c.do("POST", "/tags/"+tagID+"/contacts:applyTags", map[string]any{"contact_ids": []string{idString(id.(int64)), "999"}})
	wantStatus(t, "apply", st, 200, body)
	if r := body["results"].(map[string]any); r[idString(id.(int64))] != "SUCCESS" || r["999"] != "CONTACT_NOT_FOUND" {
		t.Fatalf("applyTags results %v", r)
	}
	loaded, fault := xmlrpc(t, srv.URL+"/crm/xmlrpc/v1", "ContactService.load", header, "", id, []any{"Groups"})
	if fault != nil || loaded.(map[string]any)["Groups"] != tagID {
		t.Fatalf("XML-RPC load of Groups: %v %v, want %s", loaded, fault, tagID)
	}
	st, body = c.do("GET", "/contacts/"+idString(id.(int64))+"/tags", nil)
	wantStatus(t, "contact's tags", st, 200, body)
	if got := ids(body["tags"], "tag"); len(got) != 1 || got[0] != tagID {
		t.Fatalf("contact's tags %v, want [%s]", got, tagID)
	}
	st, body = c.do("GET", "/tags/"+tagID+"/contacts", nil)
	wantStatus(t, "tag's contacts", st, 200, body)
	if got := ids(body["contacts"], ""); len(got) != 1 {
		t.Fatalf("tag's contacts %v", got)
	}
	st, body = c.do("POST", "/tags/"+tagID+"/contacts:removeTags", map[string]any{"contact_ids": []string{idString(id.(int64))}})
	wantStatus(t, "remove", st, http.StatusNoContent, body)
	if v1 := rest(t, srv, "GET", "/contacts/"+idString(id.(int64)), nil).json(t); len(v1["tag_ids"].([]any)) != 0 {
		t.Fatalf("REST v1 still sees tags %v after v2 removeTags", v1["tag_ids"])
	}
	st, body = c.do("GET", "/tags?filter=name%3D%3DCust%2A", nil)
	wantStatus(t, "tags by name", st, 200, body)
	if len(body["tags"].([]any)) != 1 {
		t.Fatalf("tags name==Cust*: %v", body)
	}
	st, body = c.do("PATCH", "/tags/"+tagID+"?update_mask=description", map[string]any{"name": "ignored", "description": "Twice"})
	wantStatus(t, "patch tag", st, 200, body)
	if body["name"] != "Customers" || body["description"] != "Twice" {
		t.Fatalf("tag after update_mask=description: %v", body)
	}
	st, body = c.do("POST", "/tags/77/contacts:applyTags", map[string]any{"contact_ids": []string{"1"}})
	wantV2Error(t, "apply a missing tag", st, body, 404, "NOT_FOUND", "77")

	// Email opt-in status is per address and seen by v1.
	st, body = c.do("PATCH", "/emailAddresses/ada@example.com/status", map[string]any{"opted_in": true, "reason": "Signed up on the web form"})
	wantStatus(t, "opt in", st, 200, body)
	if body["status"] != "SINGLE_OPT_IN" || body["opted_in"] != true {
		t.Fatalf("after opt-in: %v", body)
	}
	if v1 := rest(t, srv, "GET", "/contacts/"+idString(id.(int64)), nil).json(t); v1["email_opted_in"] != true {
		t.Fatal("REST v1 does not see the v2 opt-in")
	}
	st, body = c.do("PATCH", "/emailAddresses/ada@example.com/status", map[string]any{"opted_in": false, "reason": "Asked by phone"})
	wantStatus(t, "opt out", st, 200, body)
	if fk.EmailStatus("ada@example.com") != "MANUAL" {
		t.Fatalf("after opt-out the status is %s, want MANUAL", fk.EmailStatus("ada@example.com"))
	}
	st, body = c.do("GET", "/emailAddresses?filter=opted_in%3D%3Dfalse", nil)
	wantStatus(t, "list statuses", st, 200, body)
	if len(body["email_addresses"].([]any)) != 1 {
		t.Fatalf("opted_in==false: %v", body)
	}
	st, body = c.do("GET", "/emailAddresses/nobody@example.com/status", nil)
	wantV2Error(t, "unknown address", st, body, 404, "NOT_FOUND", "nobody@example.com")
}

func TestV2_CompaniesOpportunitiesNotesTasks(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	st, body := c.do("POST", "/companies", map[string]any{"company_name": "Acme", "email_address": map[string]any{"email": "info@acme.example", "field": "EMAIL1"},
		"phone_number": map[string]any{"number": "555-0100", "field": "PHONE1"}})
	wantStatus(t, "create company", st, http.StatusCreated, body)
	company := body["id"].(string)
	if v1 := rest(t, srv, "GET", "/companies/"+company, nil).json(t); v1["email_address"] != "info@acme.example" {
		t.Fatalf("REST v1 sees the company as %v", v1)
	}
	st, body = c.do("GET", "/companies?filter=name%3D%3DAc%2A&fields=email_address", nil)
	wantStatus(t, "list companies", st, 200, body)
	first := body["companies"].([]any)[0].(map[string]any)
	if first["company_name"] != "Acme" || first["email_address"] == nil || first["phone_number"] != nil {
		t.Fatalf("companies with fields=email_address: %v", first)
	}
	st, body = c.do("PATCH", "/companies/"+company, map[string]any{"website": "https://acme.example"})
	wantStatus(t, "patch company", st, 200, body)

	st, body = c.do("POST", "/contacts", map[string]any{"given_name": "Bo", "company": map[string]any{"id": company},
		"email_addresses": []any{map[string]any{"email": "bo@acme.example", "field": "EMAIL1"}}})
	wantStatus(t, "create contact", st, http.StatusCreated, body)
	contact := body["id"].(string)
	if body["company"].(map[string]any)["company_name"] != "Acme" {
		t.Fatalf("contact's company %v", body["company"])
	}

	st, body = c.do("POST", "/opportunities", map[string]any{"contact_id": contact, "opportunity_title": "Big deal", "stage_id": "3", "projected_revenue_high": 5000})
	wantStatus(t, "create opportunity", st, http.StatusCreated, body)
	if body["contact"].(map[string]any)["first_name"] != "Bo" || body["stage"].(map[string]any)["id"] != "3" {
		t.Fatalf("opportunity %v: want contact Bo and stage 3", body)
	}
	opp := body["id"].(string)
	st, body = c.do("GET", "/opportunities?filter=projected_revenue_high%3E%3D1000%3Bopportunity_title%3D%3DBig%2A", nil)
	wantStatus(t, "list opportunities", st, 200, body)
	if got := ids(body["opportunities"], ""); len(got) != 1 || got[0] != opp {
		t.Fatalf("opportunities filtered: %v", got)
	}
	st, body = c.do("PATCH", "/opportunities/"+opp+"?update_mask=stage_id", map[string]any{"stage_id": "4"})
	wantStatus(t, "patch opportunity", st, 200, body)
	if body["stage"].(map[string]any)["id"] != "4" {
		t.Fatalf("stage after patch: %v", body["stage"])
	}
	st, body = c.do("POST", "/opportunities", map[string]any{"contact_id": "999", "opportunity_title": "x", "stage_id": "1"})
	wantV2Error(t, "opportunity of a missing contact", st, body, 400, "INVALID_ARGUMENT", "contact_id")

	st, body = c.do("POST", "/contacts/"+contact+"/notes", map[string]any{"title": "Called", "text": "Left a message", "type": "Call", "user_id": "1001"})
	wantStatus(t, "create note", st, http.StatusCreated, body)
	note := body["id"].(string)
	st, body = c.do("GET", "/notes?filter=title%3D%3Dall", nil)
	wantStatus(t, "all notes by title", st, 200, body)
	if got := ids(body["notes"], ""); len(got) != 1 || got[0] != note {
		t.Fatalf("notes title==all (contains): %v", got)
	}
	st, body = c.do("PATCH", "/contacts/"+contact+"/notes/"+note, map[string]any{"text": "Spoke to Bo", "user_id": "1001"})
	wantStatus(t, "patch note", st, 200, body)
	st, body = c.do("GET", "/contacts/999/notes", nil)
	wantV2Error(t, "notes of a missing contact", st, body, 404, "NOT_FOUND", "999")

	st, body = c.do("POST", "/tasks", map[string]any{"title": "Send quote", "assigned_to_user_id": "1001", "contact_id": contact,
		"due_time": "2026-12-01T09:00:00.000Z", "priority": "ESSENTIAL"})
	wantStatus(t, "create task", st, http.StatusCreated, body)
	task := body["id"].(string)
	st, body = c.do("GET", "/tasks?filter=has_due_date%3D%3Dtrue%3Bis_completed%3D%3Dfalse", nil)
	wantStatus(t, "list tasks", st, 200, body)
	if got := ids(body["tasks"], ""); len(got) != 1 || got[0] != task {
		t.Fatalf("open tasks with a due date: %v", got)
	}
	st, body = c.do("PATCH", "/tasks/"+task, map[string]any{"completed": true})
	wantStatus(t, "complete task", st, 200, body)
	st, body = c.do("DELETE", "/tasks/"+task, nil)
	wantStatus(t, "delete task", st, http.StatusNoContent, body)
	st, body = c.do("GET", "/tasks/"+task, nil)
	wantV2Error(t, "deleted task", st, body, 404, "NOT_FOUND", task)
}

func TestV2_OrdersProductsSubscriptionsGoalsSettings(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	st, body := c.do("POST", "/contacts", map[string]any{"given_name": "Cy", "email_addresses": []any{map[string]any{"email": "cy@example.com", "field": "EMAIL1"}}})
	wantStatus(t, "create contact", st, http.StatusCreated, body)
	contact := body["id"].(string)

	st, body = c.do("POST", "/products", map[string]any{"name": "Widget", "price": 1250, "short_description": "A widget", "sku": "W-1", "inventory_count": 10})
	wantStatus(t, "create product", st, http.StatusCreated, body)
	product := body["id"].(string)
	if p := body["price"].(map[string]any); p["amount"] != float64(1250) || p["formatted_amount"] != "$12.50" {
		t.Fatalf("price %v: want 1250 cents, $12.50", p)
	}
	st, body = c.do("POST", "/products/"+product+":adjustInventory", map[string]any{"type": "DECREASE", "quantity": 3})
	wantStatus(t, "adjust inventory", st, 200, body)
	if body["inventory"].(map[string]any)["inventory_count"] != float64(7) {
		t.Fatalf("inventory after decreasing 10 by 3: %v", body["inventory"])
	}
	st, body = c.do("POST", "/products/"+product+":adjustInventory", map[string]any{"type": "SHRINK", "quantity": 3})
	wantV2Error(t, "bad adjustment", st, body, 400, "INVALID_ARGUMENT", "INCREASE")
	st, body = c.do("GET", "/products?filter=sku%3D%3DW%2A", nil)
	wantStatus(t, "list products", st, 200, body)
	if len(body["products"].([]any)) != 1 {
		t.Fatalf("products sku==W*: %v", body)
	}

	st, body = c.do("POST", "/orders", map[string]any{"contact_id": contact, "order_title": "Web order", "order_type": "ONLINE",
		"order_time": "2026-11-30T10:00:00.000Z", "order_items": []any{map[string]any{"product_id": product, "quantity": 2}}})
	wantStatus(t, "create order", st, http.StatusCreated, body)
	order := body["id"].(string)
	if body["total"].(map[string]any)["amount"] != float64(2500) || body["status"] != "DRAFT" {
		t.Fatalf("order %v: want a DRAFT of 2500 cents", body)
	}
	st, body = c.do("POST", "/orders/"+order+"/items", map[string]any{"name": "Shipping", "quantity": 1, "price_per_unit": 5.0, "item_type": "SHIPPING"})
	wantStatus(t, "add item", st, http.StatusCreated, body)
	st, body = c.do("POST", "/orders/"+order+"/payments", map[string]any{"payment_amount": 30.0, "apply_to_commissions": false, "payment_method_type": "CASH"})
	wantStatus(t, "pay", st, http.StatusCreated, body)
	st, body = c.do("GET", "/orders/"+order, nil)
	wantStatus(t, "get order", st, 200, body)
	if body["status"] != "PAID" || body["total_due"].(map[string]any)["amount"] != float64(0) || len(body["order_items"].([]any)) != 2 {
		t.Fatalf("order after paying 30.00 of 30.00: %v", body)
	}
	st, body = c.do("GET", "/orders?filter=paid%3D%3Dtrue%3Bproduct_id%3D%3D"+product, nil)
	wantStatus(t, "paid orders", st, 200, body)
	if got := ids(body["orders"], ""); len(got) != 1 || got[0] != order {
		t.Fatalf("paid orders with the product: %v", got)
	}
	st, body = c.do("GET", "/orders/"+order+"/payments", nil)
	wantStatus(t, "payments", st, 200, body)
	if len(body["invoice_order_payments"].([]any)) != 1 {
		t.Fatalf("payments %v", body)
	}

	st, body = c.do("POST", "/subscriptions", map[string]any{"contact_id": contact, "subscription_plan_id": "5", "billing_amount": 9.99})
	wantStatus(t, "create subscription", st, http.StatusCreated, body)
	st, body = c.do("GET", "/subscriptions?filter=contact_id%3D%3D"+contact, nil)
	wantStatus(t, "list subscriptions", st, 200, body)
	if len(body["subscriptions"].([]any)) != 1 {
		t.Fatalf("subscriptions %v", body)
	}

	fk.AddGoal("shop", "purchased")
	st, body = c.do("POST", "/automations/goals/achieve", map[string]any{"contact_id": 1, "integration": "shop", "call_name": "purchased"})
	wantStatus(t, "achieve goal", st, 200, body)
	if r := body["results"].([]any); len(r) != 1 || r[0].(map[string]any)["success"] != true {
		t.Fatalf("goal results %v", body)
	}
	if got := fk.AchievedGoals(); len(got) != 1 || got[0].ContactID != 1 || got[0].Call != "purchased" {
		t.Fatalf("achieved goals %v", got)
	}

	st, body = c.do("GET", "/settings/contactOptionTypes", nil)
	wantStatus(t, "option types", st, 200, body)
	if len(body["option_types"].([]any)) != 4 {
		t.Fatalf("option types %v", body)
	}
	st, body = c.do("GET", "/settings/applications:getConfiguration?fields=ECOMMERCE", nil)
	wantStatus(t, "configuration", st, 200, body)
	if body["ecommerce"].(map[string]any)["currency"] != "USD" || body["application"].(map[string]any)["time_zone"] == nil {
		t.Fatalf("configuration %v", body)
	}
	st, body = c.do("GET", "/settings/applications:isEnabled", nil)
	wantStatus(t, "enabled", st, 200, body)
}

func TestV2_CredentialsAsKeapTakesThem(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	access, _ := exchange(t, fk, srv)
	for name, header := range map[string][]string{
		"service account key": {"X-Keap-API-Key", sak},
		"legacy key":          {"X-Keap-API-Key", legacyKey},
		"access token":        bearer(access),
	} {
		r := send(t, "GET", srv.URL+"/crm/rest/v2/contacts", nil, header...)
		if r.status != 200 {
			t.Errorf("%s: status %d: %s", name, r.status, r.body)
		}
	}
	if r := send(t, "GET", srv.URL+"/crm/rest/v2/contacts", nil, "X-Keap-API-Key", "wrong"); r.status != 401 {
		t.Errorf("a wrong key: status %d, want 401", r.status)
	}
}

// Custom fields: the model names them, contacts carry them by id, and the
// list filters by field_name with the operators their type allows.
func TestV2Contacts_CustomFieldsModelAndFilters(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	shoe := idString(fk.AddContactCustomField("ShoeSize", "Shoe size", "WHOLE_NUMBER"))
	club := idString(fk.AddContactCustomField("Club", "Club", "TEXT"))
	since := idString(fk.AddContactCustomField("MemberSince", "Member since", "DATE"))
	st, body := c.do("GET", "/contacts/model", nil)
	wantStatus(t, "model", st, 200, body)
	if got := len(body["custom_fields"].([]any)); got != 3 {
		t.Fatalf("model lists %d custom fields, want 3: %v", got, body)
	}
	for i, p := range []struct {
		size  int
		club  string
		since string
	}{{38, "Chess", "2020-01-01T00:00:00.000Z"}, {44, "Chessmasters", "2024-06-01T00:00:00.000Z"}, {41, "Rowing", "2025-01-01T00:00:00.000Z"}} {
		st, body = c.do("POST", "/contacts", map[string]any{"given_name": "C" + idString(int64(i)),
			"email_addresses": []any{map[string]any{"email": "c" + idString(int64(i)) + "@example.com", "field": "EMAIL1"}},
			"custom_fields":   []any{map[string]any{"id": shoe, "content": p.size}, map[string]any{"id": club, "content": p.club}, map[string]any{"id": since, "content": p.since}}})
		wantStatus(t, "create", st, http.StatusCreated, body)
	}
	for _, tc := range []struct {
		filter string
		want   string
	}{
		{"shoesize%3E40", "2,3"},
		{"ShoeSize%3D%3D38", "1"},
		{"club%3D%3DChess%2A", "1,2"},
		{"club%3D%3DChess", "1"},
		{"membersince%3E%3D2024-01-01T00:00:00.000Z%3Bshoesize%3C42", "3"},
	} {
		st, body = c.do("GET", "/contacts?order_by=id&filter="+tc.filter, nil)
		wantStatus(t, tc.filter, st, 200, body)
		if got := strings.Join(ids(body["contacts"], ""), ","); got != tc.want {
			t.Errorf("filter %s: contacts %s, want %s", tc.filter, got, tc.want)
		}
		for _, x := range body["contacts"].([]any) {
			if _, leaked := x.(map[string]any)["_custom"]; leaked {
				t.Fatalf("the fake's bookkeeping leaked into an answer: %v", x)
			}
		}
	}
	st, body = c.do("GET", "/contacts?filter=club%3EA", nil)
	wantV2Error(t, "> on a text custom field", st, body, 400, "INVALID_ARGUMENT", "== only")
	st, body = c.do("GET", "/contacts?filter=membersince%3E2024-01-01", nil)
	wantV2Error(t, "a date without time", st, body, 400, "INVALID_ARGUMENT", "milliseconds")
}

// Bad input is a 400 naming the problem, never a 500 or a dropped connection.
func TestV2_BadInputIsA400(t *testing.T) {
	t.Parallel()
	_, srv := newTestFake(t, Options{})
	c := newV2Client(t, srv)
	st, body := c.do("POST", "/contacts", map[string]any{"given_name": "Ann", "email_addresses": []any{map[string]any{"email": "ann@example.com", "field": "EMAIL1"}}})
	wantStatus(t, "create", st, http.StatusCreated, body)
	c.router = nil // the requests below are invalid on purpose
	for _, tc := range []struct {
		method, path string
		body         any
		about        string
	}{
		{"POST", "/products", map[string]any{"name": "x", "price": "12.50", "short_description": "x"}, "price"},
		{"POST", "/products", map[string]any{"name": "x", "price": nil, "short_description": "x"}, "price"},
		{"POST", "/orders", map[string]any{"contact_id": "1", "order_title": "x", "order_type": "ONLINE", "order_time": "2026-01-01T00:00:00Z", "order_items": []any{"x"}}, "order item"},
		{"POST", "/contacts", map[string]any{"email_addresses": "not a list"}, "email_addresses"},
		{"POST", "/contacts", []any{1, 2}, "JSON object"},
		{"POST", "/contacts:merge", map[string]any{"contact_id": "1"}, "duplicate_contact_id"},
		{"GET", "/contacts?page_size=5000", nil, "page_size"},
		{"GET", "/contacts?page_token=%21%21", nil, "page_token"},
		{"GET", "/contacts/abc", nil, "contact_id"},
		{"PATCH", "/emailAddresses/a@example.com/status", map[string]any{"opted_in": "yes"}, "opted_in"},
		{"POST", "/automations/goals/achieve", map[string]any{"contact_id": "x"}, "contact_id"},
		{"POST", "/tags/1/contacts:applyTags", map[string]any{"contact_ids": []any{}}, "contact_ids"},
	} {
		st, body = c.do(tc.method, tc.path, tc.body)
		if st != 400 || !strings.Contains(body["message"].(string), tc.about) {
			t.Errorf("%s %s: %d %v, want a 400 naming %s", tc.method, tc.path, st, body, tc.about)
		}
	}
}

// FuzzV2Filter: whatever a caller writes as a filter is parsed into clauses
// on known fields with a known operator, or refused with a message; never a panic.
func FuzzV2Filter(f *testing.F) {
	for _, seed := range []string{"given_name==Mar*", "contact_id>5;email==a@b.c", "ids==1,2,3", "x", "==", "a!=;;b<=2", "start_update_time==2026-01-01T00:00:00.000Z"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		clauses, msg := parseV2Filter(s, contactListParams.filters)
		if msg != "" {
			if clauses != nil {
				t.Fatalf("%q: refused (%s) yet parsed", s, msg)
			}
			return
		}
		for _, c := range clauses {
			if _, ok := contactListParams.filters[c.field]; !ok {
				t.Fatalf("%q: clause on unknown field %q", s, c.field)
			}
			if !slices.Contains([]string{"==", "!=", ">=", "<=", ">", "<"}, c.op) {
				t.Fatalf("%q: clause with operator %q", s, c.op)
			}
			_ = clauseMatch(contactListParams.filters[c.field].kind, c, "x")
		}
	})
}
