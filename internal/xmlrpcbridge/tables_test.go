package xmlrpcbridge

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Every filter, order and ?fields= member the table files name is one Keap's
// v2 document lists for the list operation it is sent to. The document
// describes filters and orders in prose, so a request naming an unknown one
// would still pass the request validation of the differential test.
func TestTables_NameOnlyWhatKeapsDocumentLists(t *testing.T) {
	t.Parallel()
	path := findShared(v2SpecName)
	if path == "" {
		t.Skipf("Keap's REST v2 document (shared/keap/%s) is not at hand: the table files' filters and orders are NOT checked against it", v2SpecName)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := loadTables(tableFiles)
	if err != nil {
		t.Fatal(err)
	}
	param := func(op *openapi3.Operation, name string) string {
		for _, p := range op.Parameters {
			if p.Value != nil && p.Value.Name == name {
				return p.Value.Description
			}
		}
		return ""
	}
	for name, tb := range tables {
		for _, v := range tb.Views {
			p := "/rest/v2" + v.Path
			if strings.Contains(p, "{value}") { // /contacts/{value}/tags: the document names the parameter
				for _, name := range []string{"{contact_id}", "{tag_id}"} {
					if q := strings.Replace(p, "{value}", name, 1); doc.Paths.Find(q) != nil {
						p = q
						break
					}
				}
			}
			item := doc.Paths.Find(p)
			if item == nil || item.Get == nil {
				t.Errorf("%s: Keap's document has no GET %s", name, p)
				continue
			}
			filters, orders, fields := param(item.Get, "filter"), param(item.Get, "order_by"), param(item.Get, "fields")
			for field, f := range v.Fields {
				if f.Filter != "" && !strings.Contains(filters, "`"+f.Filter+"`") {
					t.Errorf("%s.%s: GET %s has no filter %q", name, field, p, f.Filter)
				}
			}
			for field, by := range v.Orders {
				if !strings.Contains(orders, "`"+by+"`") {
					t.Errorf("%s: order by %s: GET %s cannot order by %q", name, field, p, by)
				}
			}
			if def := strings.Fields(v.DefaultOrder); len(def) > 0 && !strings.Contains(orders, "`"+def[0]+"`") {
				t.Errorf("%s: GET %s cannot order by %q (the default order)", name, p, def[0])
			}
			for _, m := range v.FieldsParam {
				if !strings.Contains(fields, m) {
					t.Errorf("%s: GET %s takes no fields=%s", name, p, m)
				}
			}
		}
	}
}
