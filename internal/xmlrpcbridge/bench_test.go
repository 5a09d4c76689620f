package xmlrpcbridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/keap"
)

// seed gives e's fake three contacts (Ada, Alan, Grace), a tag, a product and an order.
func seed(tb testing.TB, e *env) {
	tb.Helper()
	for _, c := range []map[string]any{
		{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.test"},
		{"FirstName": "Alan", "LastName": "Turing", "Email": "alan@example.test"},
		{"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@example.test"},
	} {
		if _, err := e.viaBridge(tb, "ContactService.add", c); err != nil {
			tb.Fatal(err)
		}
	}
	for _, call := range []struct {
		method string
		params []any
	}{
		{"DataService.add", []any{"ContactGroup", map[string]any{"GroupName": "VIP"}}},
		{"DataService.add", []any{"Product", map[string]any{"ProductName": "Engine", "ProductPrice": 10.0}}},
		{"InvoiceService.createBlankOrder", []any{int64(1), "Order", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), int64(0), int64(0)}},
	} {
		if _, err := e.viaBridge(tb, call.method, call.params...); err != nil {
			tb.Fatalf("%s: %v", call.method, err)
		}
	}
	e.fake.AddGoal("shop", "purchase")
	e.keap.take()
}

// callsPerMethod are the REST calls each XML-RPC method makes, by case;
// docs/performance.md has this table, and the test below checks it is true.
var callsPerMethod = []struct {
	method, when string
	params       []any
	calls        int
}{
	{"ContactService.add", "", []any{map[string]any{"FirstName": "Edsger", "Email": "e@example.test"}}, 1},
	{"ContactService.addWithDupCheck", "", []any{map[string]any{"FirstName": "Ada", "Email": "ada@example.test"}, "Email"}, 1},
	{"ContactService.load", "", []any{int64(1), []any{"Id", "FirstName", "Email"}}, 1},
	{"ContactService.update", "names only", []any{int64(1), map[string]any{"LastName": "King"}}, 1},
	{"ContactService.update", "an email, phone or address", []any{int64(1), map[string]any{"Phone1": "555-0100"}}, 2},
	{"ContactService.findByEmail", "", []any{"ada@example.test", []any{"Id"}}, 1},
	{"ContactService.addToGroup", "", []any{int64(2), int64(1)}, 1},
	{"ContactService.removeFromGroup", "", []any{int64(2), int64(1)}, 1},
	{"ContactService.merge", "", []any{int64(2), int64(4)}, 1},
	{"ContactService.addToCampaign", "(a fault)", []any{int64(1), int64(1)}, 0},
	{"DataService.query", "page 0", []any{"Contact", int64(2), int64(0), map[string]any{"FirstName": "A%"}, []any{"Id"}}, 1},
	{"DataService.query", "page 2", []any{"Contact", int64(1), int64(2), map[string]any{}, []any{"Id"}}, 3},
	{"DataService.queryWithOrderBy", "", []any{"Contact", int64(10), int64(0), map[string]any{}, []any{"Id"}, "Id", false}, 1},
	{"DataService.findByField", "", []any{"Contact", int64(10), int64(0), "LastName", "Hopper", []any{"Id"}}, 1},
	{"DataService.count", "under 1000 records", []any{"Contact", map[string]any{}}, 1},
	{"DataService.load", "", []any{"Product", int64(1), []any{"Id", "ProductName"}}, 1},
	{"DataService.load", "ContactAction (a note, found by list)", []any{"ContactAction", int64(1), []any{"Id"}}, 1},
	{"DataService.add", "", []any{"ContactGroup", map[string]any{"GroupName": "Lead"}}, 1},
	{"DataService.update", "", []any{"ContactGroup", int64(1), map[string]any{"GroupName": "VIPs"}}, 1},
	{"DataService.delete", "", []any{"Contact", int64(3)}, 1},
	{"DataService.getAppSetting", "", []any{"Contact", "optiontypes"}, 1},
	{"APIEmailService.optIn", "", []any{"ada@example.test", "asked"}, 1},
	{"APIEmailService.optOut", "", []any{"ada@example.test", "asked"}, 1},
	{"APIEmailService.getOptStatus", "", []any{"ada@example.test"}, 1},
	{"FunnelService.achieveGoal", "", []any{"shop", "purchase", int64(1)}, 1},
	{"ProductService.incrementInventory", "", []any{int64(1)}, 1},
	{"ProductService.decrementInventory", "", []any{int64(1)}, 1},
	{"InvoiceService.createBlankOrder", "", []any{int64(1), "Order", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), int64(0), int64(0)}, 1},
	{"InvoiceService.addOrderItem", "", []any{int64(1), int64(1), int64(4), 10.0, int64(1), "", ""}, 1},
	{"InvoiceService.addManualPayment", "", []any{int64(1), 10.0, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "Cash", "", false}, 1},
}

var (
	anID    = regexp.MustCompile(`/[0-9]+`)
	anEmail = regexp.MustCompile(`/[^/]+@[^/]+/`)
)

// The REST calls per method in docs/performance.md are what the bridge makes.
func TestBridge_RESTCallsPerMethodAreAsDocumented(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seed(t, e)
	if _, err := e.viaBridge(t, "ContactService.add", map[string]any{"FirstName": "Ada", "Email": "ada2@example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.viaBridge(t, "DataService.add", "ContactAction", map[string]any{"ObjectType": "Note", "ContactId": int64(1), "ActionDescription": "Called"}); err != nil {
		t.Fatal(err)
	}
	e.keap.take()
	doc, err := os.ReadFile("../../docs/performance.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range callsPerMethod {
		_, err := e.viaBridge(t, c.method, c.params...)
		if _, isFault := err.(*keap.Fault); err != nil && !(isFault && c.when == "(a fault)") {
			t.Errorf("%s %s: %v", c.method, c.when, err)
		}
		sent := e.keap.take()
		if len(sent) != c.calls {
			t.Errorf("%s %s: %d REST calls, the table says %d: %v", c.method, c.when, len(sent), c.calls, sent)
		}
		var ops []string
		for _, s := range sent {
			path, _, _ := strings.Cut(strings.TrimPrefix(s.Path, RESTPath), "?")
			path = anEmail.ReplaceAllString(anID.ReplaceAllString(path, "/{id}"), "/{email}/")
			ops = append(ops, s.Method+" "+path)
		}
		row := fmt.Sprintf("| `%s` | %s | %d | %s |", c.method, c.when, c.calls, strings.Join(ops, ", "))
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/performance.md lacks the row\n%s", row)
		}
	}
}

// BenchmarkBridge measures one XML-RPC call through the bridge against the
// same REST v2 call made directly to the fake, in the same run: the
// difference is what the bridge adds (parsing, translating, encoding).
func BenchmarkBridge(b *testing.B) {
	e := newEnv(b)
	seed(b, e)
	direct := func(b *testing.B, method, path string, body string) {
		var rdr io.Reader
		if body != "" {
			rdr = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(context.Background(), method, e.srv.URL+RESTPath+path, rdr)
		req.Header.Set("X-Keap-API-Key", testKey)
		req.Header.Set("Accept", "application/json")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode > 299 {
			b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	bridge := func(b *testing.B, method string, params ...any) {
		body, _ := keap.EncodeCall(method, append([]any{"cdbk_x"}, params...)...)
		out, err := e.bridge.Call(context.Background(), e.inst, body)
		if err != nil {
			b.Fatal(err)
		}
		if bytes.Contains(out, []byte("<fault>")) {
			b.Fatalf("%s: %s", method, out)
		}
	}
	cases := []struct {
		name    string
		viaXML  func(b *testing.B)
		viaREST func(b *testing.B)
	}{
		{"ContactService.load", func(b *testing.B) { bridge(b, "ContactService.load", int64(1), []any{"Id", "FirstName", "Email"}) },
			func(b *testing.B) { direct(b, "GET", "/contacts/1?fields=email_addresses,given_name,id", "") }},
		{"DataService.query_3rows", func(b *testing.B) {
			bridge(b, "DataService.query", "Contact", int64(10), int64(0), map[string]any{"LastName": "%"}, []any{"Id", "FirstName", "Email"})
		}, func(b *testing.B) {
			direct(b, "GET", "/contacts?fields=email_addresses,given_name,id&filter=family_name%3D%3D%2A&order_by=id+asc&page_size=10", "")
		}},
		{"ContactService.update_name", func(b *testing.B) { bridge(b, "ContactService.update", int64(2), map[string]any{"LastName": "Turing"}) },
			func(b *testing.B) {
				direct(b, "PATCH", "/contacts/2?update_mask=family_name", `{"family_name":"Turing"}`)
			}},
		{"ContactService.add", func(b *testing.B) {
			bridge(b, "ContactService.add", map[string]any{"FirstName": "Bench", "Email": "bench@example.test"})
		},
			func(b *testing.B) {
				direct(b, "POST", "/contacts", `{"given_name":"Bench","email_addresses":[{"email":"bench@example.test","field":"EMAIL1"}]}`)
			}},
	}
	// Each iteration makes the direct call and the bridged one back to
	// back, so both see the same fake (it grows with the adds) and the same
	// machine load; the metrics are their mean times and the difference.
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var direct, bridged time.Duration
			for b.Loop() {
				t0 := time.Now()
				c.viaREST(b)
				t1 := time.Now()
				c.viaXML(b)
				direct, bridged = direct+t1.Sub(t0), bridged+time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(direct.Microseconds())/n, "direct-µs/op")
			b.ReportMetric(float64(bridged.Microseconds())/n, "bridge-µs/op")
			b.ReportMetric(float64((bridged-direct).Microseconds())/n, "added-µs/op")
		})
	}
}
