package xmlrpcbridge

import (
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/keap"
)

// What REST v2 cannot do faithfully is a fault in Keap's style that names
// what works, and no request that would fetch records to filter them here.
func TestBridge_UntranslatableCallsAreFaultsNamingWhatWorks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		method string
		params []any
		want   []string // the fault starts with the first and contains the rest
	}{
		{"leading wildcard", "DataService.query", []any{"Contact", int64(10), int64(0), map[string]any{"FirstName": "%da"}, []any{"Id"}},
			[]string{"[InvalidParameter]Contact.FirstName: REST v2 matches only a trailing % (starts with)", "Email", "FirstName", "LastName"}},
		{"wildcard on a field v2 matches exactly", "DataService.query", []any{"Contact", int64(10), int64(0), map[string]any{"PostalCode": "N1%"}, []any{"Id"}},
			[]string{"[InvalidParameter]Contact.PostalCode: REST v2 matches only a trailing %", "FirstName"}},
		{"field v2 cannot filter", "DataService.query", []any{"Contact", int64(10), int64(0), map[string]any{"JobTitle": "Admiral"}, []any{"Id"}},
			[]string{"[InvalidParameter]Contact.JobTitle cannot be queried: REST v2 has no filter for it; query Contact on", "Email", "FirstName"}},
		{"~null~ where v2 has no empty filter", "DataService.query", []any{"Contact", int64(10), int64(0), map[string]any{"LastName": "~null~"}, []any{"Id"}},
			[]string{"[InvalidParameter]Contact.LastName: REST v2 cannot look for an empty value (~null~) there; ~null~ works on none"}},
		{"order v2 lacks", "DataService.queryWithOrderBy", []any{"Contact", int64(10), int64(0), map[string]any{}, []any{"Id"}, "LastName", true},
			[]string{"[InvalidParameter]REST v2 cannot order Contact by LastName; order by DateCreated, Email, Id, LastUpdated"}},
		{"limit over 1000", "DataService.query", []any{"Contact", int64(1001), int64(0), map[string]any{}, []any{"Id"}},
			[]string{"[InvalidParameter]limit must be between 1 and 1000"}},
		{"join table without a side", "DataService.query", []any{"ContactGroupAssign", int64(10), int64(0), map[string]any{}, []any{"GroupId"}},
			[]string{"[InvalidParameter]a ContactGroupAssign call must name ContactId or GroupId"}},
		{"table op v2 lacks", "DataService.add", []any{"Invoice", map[string]any{"ContactId": int64(1)}},
			[]string{"[InvalidParameter]the bridge does not add the Invoice table", "InvoiceService.createBlankOrder"}},
		{"unknown table", "DataService.load", []any{"Affiliate", int64(1), []any{"Id"}},
			[]string{"[InvalidParameter]Invalid table name: Affiliate (the bridge serves", "Contact", "ContactAction", "Product"}},
		{"legacy campaign", "ContactService.addToCampaign", []any{int64(1), int64(2)},
			[]string{"[InvalidParameter]ContactService.addToCampaign: Keap's legacy follow-up sequences have no REST equivalent", ":addContacts"}},
		{"legacy campaign removal", "ContactService.removeFromCampaign", []any{int64(1), int64(2)},
			[]string{"[InvalidParameter]ContactService.removeFromCampaign", ":removeContacts"}},
		{"item type v2 lacks", "InvoiceService.addOrderItem", []any{int64(1), int64(0), int64(3), 1.0, int64(1), "", ""},
			[]string{"[InvalidParameter]order item type 3 has no REST v2 equivalent", "4 (product)"}},
		{"unknown setting", "DataService.getAppSetting", []any{"Order", "nosuch"},
			[]string{"[InvalidParameter]the bridge does not know the setting Order.nosuch; it reads", "Contact.optiontypes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.viaBridge(t, tc.method, tc.params...)
			f, ok := err.(*keap.Fault)
			if !ok || !strings.HasPrefix(f.String, tc.want[0]) {
				t.Fatalf("answer %v, want a fault starting %q", err, tc.want[0])
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(f.String, w) {
					t.Errorf("fault %q does not name %q", f.String, w)
				}
			}
		})
	}
	if sent := e.keap.take(); len(sent) != 0 {
		t.Errorf("the refused calls reached Keap: %v", sent)
	}
}

// system.listMethods lists exactly what the bridge serves.
func TestBridge_ListMethodsListsWhatItServes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out, err := e.bridge.Call(t.Context(), e.inst, []byte(`<?xml version="1.0"?><methodCall><methodName>system.listMethods</methodName><params/></methodCall>`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := keap.DecodeResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := v.([]any)
	served := e.bridge.Methods()
	if len(names) != len(served) {
		t.Fatalf("listMethods names %d methods, the bridge serves %d", len(names), len(served))
	}
	for i, m := range served {
		if names[i] != m.Name {
			t.Errorf("listMethods[%d] = %v, want %s", i, names[i], m.Name)
		}
	}
	for _, want := range []string{"ContactService.add", "ContactService.addWithDupCheck", "ContactService.update", "ContactService.load",
		"ContactService.findByEmail", "ContactService.addToGroup", "ContactService.removeFromGroup", "ContactService.merge",
		"ContactService.addToCampaign", "ContactService.removeFromCampaign", "DataService.query", "DataService.queryWithOrderBy",
		"DataService.findByField", "DataService.load", "DataService.add", "DataService.update", "DataService.delete", "DataService.count",
		"DataService.getAppSetting", "APIEmailService.optIn", "APIEmailService.optOut", "APIEmailService.getOptStatus",
		"FunnelService.achieveGoal", "ProductService.incrementInventory", "ProductService.decrementInventory",
		"InvoiceService.createBlankOrder", "InvoiceService.addOrderItem", "InvoiceService.addManualPayment", "system.listMethods"} {
		if !strings.Contains(strings.Join(func() []string {
			var s []string
			for _, n := range names {
				s = append(s, n.(string))
			}
			return s
		}(), " ")+" ", want+" ") {
			t.Errorf("listMethods does not list %s", want)
		}
	}
}

// A body that is not a methodCall is a fault, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><methodCall><methodName>DataService.query</methodName><params><param><value><string>k</string></value></param></params></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>x</methodName><params><param><value><struct><member><name>a</name><value><i4>1</i4></value></member></struct></value></param></params></methodCall>`))
	f.Add([]byte(`<methodCall>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, fault := Parse(body)
		if (c == nil) == (fault == nil) {
			t.Fatalf("Parse gave call %v and fault %v", c, fault)
		}
	})
}

// The README's table of methods is the bridge's own list.
func TestREADME_ListsEveryBridgeMethodAndItsRESTCalls(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range b.Methods() {
		if row := "| `" + m.Name + "` | " + m.REST + " |"; !strings.Contains(string(readme), row) {
			t.Errorf("the README's XML-RPC bridge table lacks the row %s", row)
		}
	}
}
