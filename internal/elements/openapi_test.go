package elements

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Every element's generated document is valid OpenAPI 3 (checked by
// kin-openapi) and lists exactly the methods its definition allows on each
// resource, on the collection and on one record.
func TestOpenAPI_ValidAndMatchesTheDefinitions(t *testing.T) {
	t.Parallel()
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, el := range c.All() {
		t.Run(el.Key, func(t *testing.T) {
			raw, err := json.Marshal(el.OpenAPI())
			if err != nil {
				t.Fatal(err)
			}
			loader := openapi3.NewLoader()
			doc, err := loader.LoadFromData(raw)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if err := doc.Validate(context.Background()); err != nil {
				t.Fatalf("the generated document is not valid OpenAPI: %v", err)
			}
			want := map[string]bool{}
			base := "/hubs/" + el.Hub + "/"
			for _, r := range el.Resources {
				switch {
				case strings.HasPrefix(r.Name, "lookups/") && r.Parent == "":
					want["GET "+base+r.Name] = true
				case strings.HasPrefix(r.Parent, "lookups/"):
					want["GET "+base+r.Parent+"/{code}/"+r.Segment] = true
				case r.Parent != "":
					for _, m := range r.Methods {
						want[m+" "+base+r.Parent+"/{id}/"+r.Segment] = true
					}
					for _, m := range r.ItemMethods {
						want[m+" "+base+r.Parent+"/{id}/"+r.Segment+"/{subId}"] = true
					}
				default:
					for _, m := range r.Methods {
						want[m+" "+base+r.Name] = true
					}
					for _, m := range r.ItemMethods {
						want[m+" "+base+r.Name+"/{id}"] = true
					}
				}
			}
			got := map[string]bool{}
			for path, item := range doc.Paths.Map() {
				for m, op := range item.Operations() {
					got[m+" "+path] = true
					if op.Responses.Value("200") == nil || op.OperationID == "" {
						t.Errorf("%s %s: no 200 answer or no operationId", m, path)
					}
				}
			}
			for k := range want {
				if !got[k] {
					t.Errorf("the definition allows %s but the document leaves it out", k)
				}
			}
			for k := range got {
				if !want[k] {
					t.Errorf("the document lists %s, which the definition does not allow", k)
				}
			}
			if len(got) < 5 {
				t.Fatalf("only %d operations documented", len(got))
			}
		})
	}
}

// The list of contacts documents its where fields and orderBy choices from
// the definition, and the upsert its duplicate options.
func TestOpenAPI_ListAndUpsertParametersComeFromTheDefinition(t *testing.T) {
	t.Parallel()
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	el, _ := c.Lookup("infusionsoftcrm")
	doc := el.OpenAPI()
	list := doc.Paths["/hubs/crm/contacts"]["get"]
	for _, s := range []string{"email = '…'", "lastUpdated >= ", "orderBy takes one of createdDate, email, id, lastUpdated, name"} {
		if !strings.Contains(list.Description, s) {
			t.Errorf("list description %q lacks %q", list.Description, s)
		}
	}
	upsert := doc.Paths["/hubs/crm/contacts"][strings.ToLower(http.MethodPut)]
	if len(upsert.Parameters) != 1 || strings.Join(upsert.Parameters[0].Schema.Enum, ",") != "Email,EmailAndName" {
		t.Errorf("upsert parameters: %+v", upsert.Parameters)
	}
	tags := doc.Paths["/hubs/crm/contacts/{id}/tags"]["delete"]
	if len(tags.Parameters) != 2 || tags.Parameters[1].Name != "ids" || !tags.Parameters[1].Required {
		t.Errorf("DELETE contact tags parameters: %+v", tags.Parameters)
	}
}
