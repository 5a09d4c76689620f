package xmlrpcbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/connectord/connectord/internal/keap"
)

// scriptStep is one XML-RPC call of the differential script. Its parameters may
// use the answers of earlier steps (ids differ between the two sides only if
// the bridge made or skipped a record the fake did not).
type scriptStep struct {
	name   string
	method string
	params func(got map[string]any) []any
}

func fixed(params ...any) func(map[string]any) []any {
	return func(map[string]any) []any { return params }
}

// script is every method the bridge serves (but system.listMethods and the
// legacy campaigns, which Keap's REST has no equivalent of: see
// TestBridge_UntranslatableCallsAreFaultsNamingWhatWorks), with the %
// wildcard, paging, missing records, bad fields, tags applied and removed,
// and opt-in changes.
var script = []scriptStep{
	{"setting", "DataService.getAppSetting", fixed("Contact", "optiontypes")},
	{"time zone", "DataService.getAppSetting", fixed("Application", "time_zone")},
	{"currency", "DataService.getAppSetting", fixed("Order", "defaultcurrency")},
	{"tag vip", "DataService.add", fixed("ContactGroup", map[string]any{"GroupName": "VIP", "GroupDescription": "Very important"})},
	{"tag lead", "DataService.add", fixed("ContactGroup", map[string]any{"GroupName": "Lead"})},
	{"tag rename", "DataService.update", func(g map[string]any) []any {
		return []any{"ContactGroup", g["tag lead"], map[string]any{"GroupName": "Hot lead"}}
	}},
	{"tags", "DataService.query", fixed("ContactGroup", int64(10), int64(0), map[string]any{}, []any{"Id", "GroupName", "GroupDescription"})},
	{"tag by name", "DataService.query", fixed("ContactGroup", int64(10), int64(0), map[string]any{"GroupName": "VIP"}, []any{"Id", "GroupName"})},
	{"ada", "ContactService.add", fixed(map[string]any{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.test",
		"Phone1": "555-0100", "StreetAddress1": "1 Analytical St", "City": "London", "PostalCode": "N1 1AA"})},
	{"alan", "ContactService.add", fixed(map[string]any{"FirstName": "Alan", "LastName": "Turing", "Email": "alan@example.test"})},
	{"grace", "DataService.add", fixed("Contact", map[string]any{"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@example.test", "JobTitle": "Admiral"})},
	{"albert", "ContactService.add", fixed(map[string]any{"FirstName": "Albert", "LastName": "Einstein", "Email": "albert@example.test"})},
	{"ada again", "ContactService.addWithDupCheck", fixed(map[string]any{"FirstName": "Ada", "Email": "ada@example.test", "Phone2": "555-0101"}, "Email")},
	{"new by dup check", "ContactService.addWithDupCheck", fixed(map[string]any{"FirstName": "Edsger", "LastName": "Dijkstra", "Email": "edsger@example.test"}, "EmailAndName")},
	{"bad dup check", "ContactService.addWithDupCheck", fixed(map[string]any{"Email": "x@example.test"}, "Phone")},
	{"unknown field on add", "ContactService.add", fixed(map[string]any{"ShoeSize": "9"})},
	{"load ada", "ContactService.load", func(g map[string]any) []any {
		return []any{g["ada"], []any{"Id", "FirstName", "LastName", "Email", "Phone1", "Phone2", "StreetAddress1", "City", "PostalCode", "Website"}}
	}},
	{"load missing", "ContactService.load", fixed(int64(9999), []any{"Id"})},
	{"load bad field", "ContactService.load", func(g map[string]any) []any { return []any{g["ada"], []any{"Id", "ShoeSize"}} }},
	{"update ada", "ContactService.update", func(g map[string]any) []any {
		return []any{g["ada"], map[string]any{"Email": "ada@lovelace.test", "EmailAddress2": "countess@example.test", "Phone1": "", "City": "Marylebone"}}
	}},
	{"update missing", "ContactService.update", fixed(int64(9999), map[string]any{"FirstName": "Nobody"})},
	{"update read-only", "ContactService.update", func(g map[string]any) []any { return []any{g["ada"], map[string]any{"Id": int64(5)}} }},
	{"reload ada", "DataService.load", func(g map[string]any) []any {
		return []any{"Contact", g["ada"], []any{"Id", "FirstName", "Email", "EmailAddress2", "Phone1", "Phone2", "City"}}
	}},
	{"update grace", "DataService.update", func(g map[string]any) []any {
		return []any{"Contact", g["grace"], map[string]any{"LastName": "Murray Hopper"}}
	}},
	{"find ada by email", "ContactService.findByEmail", fixed("ada@lovelace.test", []any{"Id", "FirstName", "LastName"})},
	{"find nobody by email", "ContactService.findByEmail", fixed("nobody@example.test", []any{"Id"})},
	{"A% page 0", "DataService.query", fixed("Contact", int64(2), int64(0), map[string]any{"FirstName": "A%"}, []any{"Id", "FirstName", "Email"})},
	{"A% page 1", "DataService.query", fixed("Contact", int64(2), int64(1), map[string]any{"FirstName": "A%"}, []any{"Id", "FirstName", "Email"})},
	{"A% page 2", "DataService.query", fixed("Contact", int64(2), int64(2), map[string]any{"FirstName": "A%"}, []any{"Id", "FirstName"})},
	{"email prefix", "DataService.query", fixed("Contact", int64(10), int64(0), map[string]any{"Email": "al%"}, []any{"Id", "Email"})},
	{"two fields", "DataService.query", fixed("Contact", int64(10), int64(0), map[string]any{"FirstName": "Ada", "LastName": "Lovelace"}, []any{"Id", "LastName"})},
	{"newest first", "DataService.queryWithOrderBy", fixed("Contact", int64(3), int64(0), map[string]any{}, []any{"Id", "FirstName"}, "Id", false)},
	{"query ordered", "DataService.query", fixed("Contact", int64(10), int64(0), map[string]any{"LastName": "%"}, []any{"Id"}, "Id", true)},
	{"by field", "DataService.findByField", fixed("Contact", int64(10), int64(0), "LastName", "Turing", []any{"Id", "FirstName", "LastName"})},
	{"query bad field", "DataService.query", fixed("Contact", int64(10), int64(0), map[string]any{"ShoeSize": "9"}, []any{"Id"})},
	{"query bad return field", "DataService.query", fixed("Contact", int64(10), int64(0), map[string]any{}, []any{"ShoeSize"})},
	{"count A%", "DataService.count", fixed("Contact", map[string]any{"FirstName": "A%"})},
	{"count all", "DataService.count", fixed("Contact", map[string]any{})},
	{"tag ada vip", "ContactService.addToGroup", func(g map[string]any) []any { return []any{g["ada"], g["tag vip"]} }},
	{"tag ada lead", "ContactService.addToGroup", func(g map[string]any) []any { return []any{g["ada"], g["tag lead"]} }},
	{"tag alan vip", "ContactService.addToGroup", func(g map[string]any) []any { return []any{g["alan"], g["tag vip"]} }},
	{"tag missing", "ContactService.addToGroup", func(g map[string]any) []any { return []any{g["ada"], int64(9999)} }},
	{"ada's groups", "ContactService.load", func(g map[string]any) []any { return []any{g["ada"], []any{"Groups"}} }},
	{"ada's assignments", "DataService.query", func(g map[string]any) []any {
		return []any{"ContactGroupAssign", int64(10), int64(0), map[string]any{"ContactId": g["ada"]}, []any{"ContactId", "GroupId", "ContactGroup"}}
	}},
	{"vip's contacts", "DataService.query", func(g map[string]any) []any {
		return []any{"ContactGroupAssign", int64(10), int64(0), map[string]any{"GroupId": g["tag vip"]}, []any{"ContactId", "GroupId", "Contact.FirstName"}}
	}},
	{"untag ada lead", "ContactService.removeFromGroup", func(g map[string]any) []any { return []any{g["ada"], g["tag lead"]} }},
	{"ada's groups after", "ContactService.load", func(g map[string]any) []any { return []any{g["ada"], []any{"Groups"}} }},
	{"opt in", "APIEmailService.optIn", fixed("alan@example.test", "Signed up at the shop")},
	{"opt status in", "APIEmailService.getOptStatus", fixed("alan@example.test")},
	{"opt out", "APIEmailService.optOut", fixed("alan@example.test", "Asked to stop")},
	{"opt status out", "APIEmailService.getOptStatus", fixed("alan@example.test")},
	{"opt in again", "APIEmailService.optIn", fixed("alan@example.test", "Signed up again")},
	{"opt status unknown", "APIEmailService.getOptStatus", fixed("nobody@example.test")},
	{"opt in unknown", "APIEmailService.optIn", fixed("nobody@example.test", "Why not")},
	{"goal", "FunnelService.achieveGoal", func(g map[string]any) []any { return []any{"shop", "purchase", g["grace"]} }},
	{"goal missing contact", "FunnelService.achieveGoal", fixed("shop", "purchase", int64(9999))},
	{"merge", "ContactService.merge", func(g map[string]any) []any { return []any{g["albert"], g["new by dup check"]} }},
	{"merged gone", "ContactService.load", func(g map[string]any) []any { return []any{g["new by dup check"], []any{"Id"}} }},
	{"delete grace", "DataService.delete", func(g map[string]any) []any { return []any{"Contact", g["grace"]} }},
	{"deleted grace", "DataService.load", func(g map[string]any) []any { return []any{"Contact", g["grace"], []any{"Id"}} }},
	{"delete missing", "DataService.delete", fixed("Contact", int64(9999))},
	{"product", "DataService.add", fixed("Product", map[string]any{"ProductName": "Difference Engine", "Sku": "DE-1", "ProductPrice": 12.5})},
	{"stock up", "ProductService.incrementInventory", func(g map[string]any) []any { return []any{g["product"]} }},
	{"stock up again", "ProductService.incrementInventory", func(g map[string]any) []any { return []any{g["product"]} }},
	{"stock down", "ProductService.decrementInventory", func(g map[string]any) []any { return []any{g["product"]} }},
	{"stock missing", "ProductService.incrementInventory", fixed(int64(9999))},
	{"load product", "DataService.load", func(g map[string]any) []any {
		return []any{"Product", g["product"], []any{"Id", "ProductName", "Sku", "ProductPrice", "Inventory"}}
	}},
	{"products by name", "DataService.query", fixed("Product", int64(10), int64(0), map[string]any{"ProductName": "Diff%"}, []any{"Id", "ProductName"})},
	{"order", "InvoiceService.createBlankOrder", func(g map[string]any) []any {
		return []any{g["ada"], "Engine order", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), int64(0), int64(0)}
	}},
	{"order item", "InvoiceService.addOrderItem", func(g map[string]any) []any {
		return []any{g["order"], g["product"], int64(4), 12.5, int64(2), "Two engines", "gift wrap"}
	}},
	{"order item missing order", "InvoiceService.addOrderItem", func(g map[string]any) []any {
		return []any{int64(9999), g["product"], int64(4), 12.5, int64(1), "x", ""}
	}},
	{"payment", "InvoiceService.addManualPayment", func(g map[string]any) []any {
		return []any{g["order"], 25.0, time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC), "Cash", "Paid at the counter", false}
	}},
	{"invoice", "DataService.load", func(g map[string]any) []any {
		return []any{"Invoice", g["order"], []any{"Id", "ContactId", "Description", "InvoiceTotal", "TotalPaid", "TotalDue", "PayStatus"}}
	}},
	{"ada's jobs", "DataService.query", func(g map[string]any) []any {
		return []any{"Job", int64(10), int64(0), map[string]any{"ContactId": g["ada"]}, []any{"Id", "JobTitle", "ContactId"}}
	}},
	{"opportunity", "DataService.add", func(g map[string]any) []any {
		return []any{"Lead", map[string]any{"OpportunityTitle": "Engines for the navy", "ContactID": g["ada"], "StageID": int64(1)}}
	}},
	{"ada's opportunities", "DataService.query", func(g map[string]any) []any {
		return []any{"Lead", int64(10), int64(0), map[string]any{"ContactID": g["ada"]}, []any{"Id", "OpportunityTitle", "StageID"}}
	}},
	{"company", "DataService.add", fixed("Company", map[string]any{"Company": "Analytical Engines Ltd", "Email": "info@engines.test"})},
	{"companies", "DataService.query", fixed("Company", int64(10), int64(0), map[string]any{"Company": "Analytical%"}, []any{"Id", "Company", "Email"})},
	{"note", "DataService.add", func(g map[string]any) []any {
		return []any{"ContactAction", map[string]any{"ObjectType": "Note", "ContactId": g["ada"], "ActionDescription": "Called", "CreationNotes": "Wants two engines"}}
	}},
	{"ada's notes", "DataService.query", func(g map[string]any) []any {
		return []any{"ContactAction", int64(10), int64(0), map[string]any{"ObjectType": "Note", "ContactId": g["ada"]}, []any{"Id", "ContactId", "ActionDescription", "CreationNotes"}}
	}},
	{"load note", "DataService.load", func(g map[string]any) []any {
		return []any{"ContactAction", g["note"], []any{"Id", "ObjectType", "ActionDescription"}}
	}},
	{"unknown table", "DataService.query", fixed("Affiliate", int64(10), int64(0), map[string]any{}, []any{"Id"})},
	{"no such method", "DataService.frobnicate", fixed()},
	{"wrong arguments", "ContactService.load", fixed("7")},
}

// answer is one side's answer to a step: a value or a fault string.
type answer struct {
	value any
	fault string
}

func run(t *testing.T, call func(string, ...any) (any, error)) ([]answer, map[string]any) {
	got := map[string]any{}
	var out []answer
	for _, s := range script {
		params := s.params(got)
		for i, p := range params {
			if p == nil {
				t.Fatalf("%s: parameter %d is the answer of an earlier step that failed: %v", s.name, i+1, out)
			}
		}
		v, err := call(s.method, params...)
		a := answer{value: v}
		if err != nil {
			f, ok := err.(*keap.Fault)
			if !ok {
				t.Fatalf("%s: %v", s.name, err)
			}
			a.fault = f.String
		}
		got[s.name] = v
		out = append(out, a)
	}
	return out, got
}

// The same script of calls, against the fake Keap's own XML-RPC (as Keap
// answered before the sunset) and against the bridge over the fake's REST v2
// with its XML-RPC turned off, gives the same answers and leaves the same
// data; every REST request the bridge sends is valid against Keap's v2 document.
func TestBridge_AnswersAsKeapsXMLRPCDid(t *testing.T) {
	t.Parallel()
	old, bridged := newEnv(t), newEnv(t)
	bridged.fake.SetXMLRPC(false)
	for _, e := range []*env{old, bridged} {
		e.fake.AddGoal("shop", "purchase")
	}

	want, _ := run(t, func(m string, p ...any) (any, error) { return old.viaFake(t, m, p...) })
	got, _ := run(t, func(m string, p ...any) (any, error) { return bridged.viaBridge(t, m, p...) })
	for i, s := range script {
		w, g := want[i], got[i]
		switch {
		case w.fault != "" || g.fault != "":
			// Keap's message first; the bridge may add what is supported.
			if w.fault == "" || g.fault == "" || !strings.HasPrefix(g.fault, w.fault) {
				t.Errorf("%s (%s): bridge fault %q, Keap's XML-RPC %q (value %#v)", s.name, s.method, g.fault, w.fault, w.value)
			}
		case !reflect.DeepEqual(w.value, g.value):
			t.Errorf("%s (%s): bridge answered %#v\nKeap's XML-RPC answered %#v", s.name, s.method, g.value, w.value)
		}
	}

	// The fake's XML-RPC was off: nothing reached it.
	body, _ := keap.EncodeCall("ContactService.load", testKey, int64(1), []any{"Id"})
	req, _ := http.NewRequest(http.MethodPost, bridged.srv.URL+"/crm/xmlrpc/v1", bytes.NewReader(body))
	req.Header.Set("X-Keap-API-Key", testKey)
	resp, err := bridged.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("the bridged side's fake answered XML-RPC with %d, want 410: its XML-RPC is off", resp.StatusCode)
	}

	// The same data is left: every resource the script touched, read
	// through REST v2 on both fakes, times aside.
	for _, path := range []string{
		"/contacts?fields=given_name,family_name,email_addresses,phone_numbers,addresses,job_title,tag_ids,company",
		"/tags", "/contacts/1/tags", "/tags/1/contacts", "/products", "/orders", "/opportunities", "/notes", "/companies",
		"/emailAddresses/alan@example.test/status", "/emailAddresses/ada@lovelace.test/status",
	} {
		w, g := timeless(t, old, path), timeless(t, bridged, path)
		if w != g {
			t.Errorf("GET %s differs:\nbridge left   %s\nXML-RPC left  %s", path, g, w)
		}
	}

	checkAgainstKeapsDocument(t, bridged.keap.take())
}

// timeless reads path on e's fake REST v2 and renders it with every time,
// and the fake's own page tokens, left out.
func timeless(t *testing.T, e *env, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/crm/rest/v2"+path, nil)
	req.Header.Set("X-Keap-API-Key", testKey)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	var strip func(any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if strings.HasSuffix(k, "_time") || strings.HasSuffix(k, "_date") || k == "applied_time" {
					delete(x, k)
					continue
				}
				x[k] = strip(val)
			}
		case []any:
			for i := range x {
				x[i] = strip(x[i])
			}
		}
		return v
	}
	out, _ := json.Marshal(strip(v))
	return string(out)
}

// v2SpecName is Keap's REST v2 OpenAPI document of August 2026, kept (not
// vendored) in a folder shared/keap beside or above the repository.
const v2SpecName = "keap-rest-v2-2026-08.yml"

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
	v2Once   sync.Once
	v2Router routers.Router
	v2Err    error
)

// checkAgainstKeapsDocument validates every request the bridge sent against
// Keap's v2 document, when it is at hand.
func checkAgainstKeapsDocument(t *testing.T, sent []sent) {
	t.Helper()
	v2Once.Do(func() {
		path := findShared(v2SpecName)
		if path == "" {
			return
		}
		doc, err := openapi3.NewLoader().LoadFromFile(path)
		if err != nil {
			v2Err = err
			return
		}
		doc.Servers = openapi3.Servers{{URL: "/crm"}}
		v2Router, v2Err = gorillamux.NewRouter(doc)
	})
	if v2Err != nil {
		t.Fatalf("Keap's v2 document does not load: %v", v2Err)
	}
	if v2Router == nil {
		t.Logf("Keap's REST v2 document (shared/keap/%s) is not at hand: the %d requests the bridge sent are not checked against it", v2SpecName, len(sent))
		return
	}
	if len(sent) == 0 {
		t.Fatal("the bridge sent no request to check")
	}
	seen := map[string]bool{}
	for _, s := range sent {
		var body io.Reader
		if s.Body != nil {
			body = bytes.NewReader(s.Body)
		}
		req, _ := http.NewRequest(s.Method, s.Path, body)
		if s.Body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		route, params, err := v2Router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not an operation of Keap's v2 document: %v", s.Method, s.Path, err)
			continue
		}
		seen[s.Method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s %s: not valid against Keap's v2 document: %v", s.Method, s.Path, s.Body, err)
		}
	}
	ops := make([]string, 0, len(seen))
	for op := range seen {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	t.Logf("%d requests checked against Keap's v2 document, %d operations: %s", len(sent), len(ops), strings.Join(ops, "; "))
}
