package elements

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// keapV1 is Keap's REST v1 OpenAPI document in the shared folder beside the
// repository; it is not vendored.
const keapV1 = "../../../shared/keap/keap-rest-v1.json"

// Every resource's nullable members are what Keap's REST v1 document says of
// that write's request body, no more and no less; and every write the
// definitions list is one the document has.
func TestNullable_MatchesKeapsDocument(t *testing.T) {
	t.Parallel()
	cat, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	el, ok := cat.Lookup("infusionsoftcrm")
	if !ok {
		t.Fatal("no infusionsoftcrm element")
	}
	// The data itself is checked whether or not the document is at hand:
	// every write a resource serves has its list.
	for _, r := range el.Resources {
		for _, m := range writesOf(r) {
			if _, listed := r.Nullable[m]; !listed {
				t.Errorf("resource %s: %s has no nullable list (derive it from Keap's document, [] when it marks none)", r.Name, m)
			}
		}
	}
	raw, err := os.ReadFile(keapV1)
	if err != nil {
		t.Skipf("comparing with Keap's document skipped: %s is not here (%v); the data was checked for completeness above", keapV1, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	placeholder := regexp.MustCompile(`\{[^}]*\}`)
	// find merges the operations of every document path that matches path
	// up to the names of its placeholders (the document spells one path
	// several ways: /contacts/{contactId} and /contacts/{id}).
	find := func(path string) map[string]any {
		want := placeholder.ReplaceAllString("/v1"+path, "{}")
		out := map[string]any{}
		for p, ops := range paths {
			if placeholder.ReplaceAllString(p, "{}") == want {
				for m, op := range ops.(map[string]any) {
					out[m] = op
				}
			}
		}
		return out
	}
	checked := 0
	for _, r := range el.Resources {
		for _, m := range writesOf(r) {
			path, method := r.Path, m
			switch {
			case m == "UPSERT":
				path, method = r.Upsert.Path, r.Upsert.Method
			case m == "PATCH" || m == "PUT":
				path += "/{id}"
			}
			ops := find(path)
			op, _ := ops[strings.ToLower(method)].(map[string]any)
			if op == nil {
				t.Errorf("resource %s: Keap's document has no %s %s", r.Name, method, path)
				continue
			}
			var got []string
			if body, ok := op["requestBody"].(map[string]any); ok {
				for _, media := range body["content"].(map[string]any) {
					collectNullable(media.(map[string]any)["schema"], schemas, "", &got, 0)
				}
			}
			sort.Strings(got)
			got = slices.Compact(got)
			listed := slices.Clone(r.Nullable[m])
			sort.Strings(listed)
			if !slices.Equal(got, listed) {
				t.Errorf("resource %s %s: the definitions list nullable %v, Keap's document %v", r.Name, m, listed, got)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d writes were compared with the document", checked)
	}
}

func writesOf(r Resource) []string {
	var out []string
	if slices.Contains(r.Methods, "POST") {
		out = append(out, "POST")
	}
	for _, m := range r.ItemMethods {
		if m == "PATCH" || m == "PUT" {
			out = append(out, m)
		}
	}
	if r.Upsert != nil {
		out = append(out, "UPSERT")
	}
	return out
}

// collectNullable adds the dotted paths of the members schema marks
// nullable (OpenAPI 3.0's nullable: true), following $refs.
func collectNullable(schema any, schemas map[string]any, prefix string, out *[]string, depth int) {
	s, ok := schema.(map[string]any)
	if !ok || depth > 8 {
		return
	}
	if ref, ok := s["$ref"].(string); ok {
		collectNullable(schemas[strings.TrimPrefix(ref, "#/components/schemas/")], schemas, prefix, out, depth+1)
		return
	}
	if items, ok := s["items"]; ok {
		collectNullable(items, schemas, prefix, out, depth+1)
	}
	for _, key := range []string{"allOf", "oneOf", "anyOf"} {
		if parts, ok := s[key].([]any); ok {
			for _, p := range parts {
				collectNullable(p, schemas, prefix, out, depth+1)
			}
		}
	}
	props, _ := s["properties"].(map[string]any)
	for name, p := range props {
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if pm, ok := p.(map[string]any); ok && pm["nullable"] == true {
			*out = append(*out, path)
		}
		collectNullable(p, schemas, path, out, depth+1)
	}
}
