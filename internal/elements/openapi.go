package elements

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// OpenAPI is an OpenAPI 3.0 document: just the parts connectord writes.
type OpenAPI struct {
	OpenAPI    string                          `json:"openapi"`
	Info       OpenAPIInfo                     `json:"info"`
	Servers    []OpenAPIServer                 `json:"servers"`
	Security   []map[string][]string           `json:"security"`
	Paths      map[string]map[string]Operation `json:"paths"` // path, then lower-case method
	Components OpenAPIComponents               `json:"components"`
}

// OpenAPIInfo is the document's info object.
type OpenAPIInfo struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description"`
}

// OpenAPIServer is one base URL.
type OpenAPIServer struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
}

// OpenAPIComponents holds the shared schemas and the security scheme.
type OpenAPIComponents struct {
	Schemas         map[string]Schema         `json:"schemas"`
	SecuritySchemes map[string]SecurityScheme `json:"securitySchemes"`
}

// SecurityScheme is how callers authenticate.
type SecurityScheme struct {
	Type        string `json:"type"`
	In          string `json:"in"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Operation is one method on one path.
type Operation struct {
	OperationID string              `json:"operationId"`
	Summary     string              `json:"summary"`
	Description string              `json:"description,omitempty"`
	Tags        []string            `json:"tags"`
	Parameters  []Parameter         `json:"parameters,omitempty"`
	RequestBody *RequestBody        `json:"requestBody,omitempty"`
	Responses   map[string]Response `json:"responses"`
}

// Parameter is a path or query parameter.
type Parameter struct {
	Name        string `json:"name"`
	In          string `json:"in"`
	Required    bool   `json:"required,omitempty"`
	Description string `json:"description,omitempty"`
	Schema      Schema `json:"schema"`
}

// RequestBody is a JSON body.
type RequestBody struct {
	Required bool                 `json:"required"`
	Content  map[string]MediaType `json:"content"`
}

// Response is one documented answer.
type Response struct {
	Description string               `json:"description"`
	Headers     map[string]Header    `json:"headers,omitempty"`
	Content     map[string]MediaType `json:"content,omitempty"`
}

// Header is a documented response header.
type Header struct {
	Description string `json:"description"`
	Schema      Schema `json:"schema"`
}

// MediaType holds a schema.
type MediaType struct {
	Schema Schema `json:"schema"`
}

// Schema is the subset of JSON Schema the document uses.
type Schema struct {
	Ref                  string            `json:"$ref,omitempty"`
	Type                 string            `json:"type,omitempty"`
	Enum                 []string          `json:"enum,omitempty"`
	Pattern              string            `json:"pattern,omitempty"`
	Minimum              *float64          `json:"minimum,omitempty"`
	Maximum              *float64          `json:"maximum,omitempty"`
	Items                *Schema           `json:"items,omitempty"`
	Properties           map[string]Schema `json:"properties,omitempty"`
	Required             []string          `json:"required,omitempty"`
	AdditionalProperties *bool             `json:"additionalProperties,omitempty"`
}

// Operations of a path in the order a reader expects them.
var openAPIMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// OpenAPI describes the element's hub resources, as /hubs/{hub}/… serves
// them, from the element's definition: which resources, which methods on the
// collection and on one record, the where fields, the orderBy choices, the
// pass-through parameters and the upsert. Generated, never written by hand, so
// it cannot drift from what the hubs serve.
func (e *Element) OpenAPI() *OpenAPI {
	doc := &OpenAPI{
		OpenAPI: "3.0.3",
		Info: OpenAPIInfo{
			Title:   e.Name + " (" + e.Key + ") hub API",
			Version: "1",
			Description: fmt.Sprintf("The %s hub resources of connectord's %s element: normalised calls that connectord "+
				"turns into Keap REST calls for the instance whose token authenticates them. "+
				"Records are Keap's own JSON (see Keap's REST API reference for their fields). "+
				"Generated from the element definition.", e.Hub, e.Key),
		},
		Servers:  []OpenAPIServer{{URL: "/", Description: "connectord"}, {URL: "/elements/api-v2", Description: "connectord, Open Connectors base path"}},
		Security: []map[string][]string{{"elementToken": {}}},
		Paths:    map[string]map[string]Operation{},
		Components: OpenAPIComponents{
			Schemas: map[string]Schema{
				"Record": {Type: "object", AdditionalProperties: ptrBool(true)},
				"Error": {Type: "object", Required: []string{"requestId", "message"}, Properties: map[string]Schema{
					"requestId": {Type: "string"}, "message": {Type: "string"}, "providerMessage": {Type: "string"},
				}},
			},
			SecuritySchemes: map[string]SecurityScheme{"elementToken": {
				Type: "apiKey", In: "header", Name: "Authorization",
				Description: "User <user secret>, Element <instance token>",
			}},
		},
	}
	base := "/hubs/" + e.Hub + "/"
	for _, r := range e.Resources {
		switch {
		case r.Parent == "" && strings.HasPrefix(r.Name, "lookups/"):
			doc.add(base+r.Name, http.MethodGet, Operation{Summary: "List Keap's " + r.Segment + strings.TrimPrefix(r.Name, "lookups/"), Tags: []string{"lookups"}}, list(false))
		case strings.HasPrefix(r.Parent, "lookups/"):
			p := base + r.Parent + "/{code}/" + r.Segment
			doc.add(p, http.MethodGet, Operation{Summary: "List Keap's " + r.Segment + " of a country", Tags: []string{"lookups"},
				Parameters: []Parameter{{Name: "code", In: "path", Required: true, Description: "ISO 3166-1 alpha-3 country code, e.g. USA", Schema: Schema{Type: "string"}}}}, list(false))
		default:
			e.addResource(doc, base, r)
		}
	}
	return doc
}

// addResource adds a resource's collection and record paths.
func (e *Element) addResource(doc *OpenAPI, base string, r Resource) {
	coll, item, tag := base+r.Name, base+r.Name+"/{id}", r.Name
	var pathParams []Parameter
	if r.Parent != "" {
		coll, item, tag = base+r.Parent+"/{id}/"+r.Segment, base+r.Parent+"/{id}/"+r.Segment+"/{subId}", r.Parent
		pathParams = []Parameter{idParam("id", "the "+r.Parent+" record's Keap id")}
	}
	recordParams := append(slices.Clone(pathParams), idParam(map[bool]string{true: "subId", false: "id"}[r.Parent != ""], "the record's Keap id"))
	what := r.Name
	if r.Parent != "" {
		what = r.Segment + " of one record of " + r.Parent
	}
	for _, m := range r.Methods {
		op := Operation{Tags: []string{tag}, Parameters: slices.Clone(pathParams)}
		switch m {
		case http.MethodGet:
			op.Summary, op.Description = "List "+what, listDescription(r)
			op.Parameters = append(op.Parameters, listParams(r)...)
			doc.add(coll, m, op, list(true))
			continue
		case http.MethodPost:
			op.Summary, op.RequestBody = "Create a record in "+what, jsonBody()
		case http.MethodPut:
			op.Summary, op.RequestBody = "Create or update a record in "+what+" (upsert)", jsonBody()
			if r.Upsert != nil {
				op.Description = "Keap matches an existing record by duplicateOption (default " + r.Upsert.DuplicateOption + ")."
				op.Parameters = append(op.Parameters, Parameter{Name: "duplicateOption", In: "query", Schema: Schema{Type: "string", Enum: r.Upsert.DuplicateOptions}})
			}
		case http.MethodDelete:
			op.Summary = "Delete " + what
		default:
			op.Summary = m + " " + what
		}
		op.Parameters = append(op.Parameters, methodParams(r.MethodParams[m])...)
		doc.add(coll, m, op, single(m))
	}
	for _, m := range r.ItemMethods {
		op := Operation{Tags: []string{tag}, Parameters: slices.Clone(recordParams)}
		switch m {
		case http.MethodGet:
			op.Summary = "Get one record of " + what
		case http.MethodPatch:
			op.Summary, op.RequestBody = "Update one record of "+what+" (the members sent)", jsonBody()
		case http.MethodPut:
			op.Summary, op.RequestBody = "Replace one record of "+what, jsonBody()
		case http.MethodDelete:
			op.Summary = "Delete one record of " + what
		}
		doc.add(item, m, op, single(m))
	}
}

func (doc *OpenAPI) add(path, method string, op Operation, responses map[string]Response) {
	if doc.Paths[path] == nil {
		doc.Paths[path] = map[string]Operation{}
	}
	op.OperationID = operationID(method, path)
	op.Responses = responses
	for code, text := range map[string]string{"400": "the call is not valid; the message says why", "401": "the Authorization header is missing or not valid",
		"404": "no such record, or the instance does not serve this hub", "502": "Keap could not be reached or failed"} {
		op.Responses[code] = Response{Description: text, Content: map[string]MediaType{"application/json": {Schema: Schema{Ref: "#/components/schemas/Error"}}}}
	}
	doc.Paths[path][strings.ToLower(method)] = op
}

// DocumentedCall is one documented call, in the order the console lists them.
type DocumentedCall struct {
	Path, Method string
	Operation    Operation
}

// Calls lists the document's operations by path, then in GET, POST, PUT,
// PATCH, DELETE order.
func (doc *OpenAPI) Calls() []DocumentedCall {
	var out []DocumentedCall
	for _, p := range slices.Sorted(maps.Keys(doc.Paths)) {
		for _, m := range openAPIMethods {
			if op, ok := doc.Paths[p][strings.ToLower(m)]; ok {
				out = append(out, DocumentedCall{Path: p, Method: m, Operation: op})
			}
		}
	}
	return out
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(path, "/") {
		seg = strings.Trim(seg, "{}")
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func idParam(name, text string) Parameter {
	return Parameter{Name: name, In: "path", Required: true, Description: text, Schema: Schema{Type: "string", Pattern: "^[1-9][0-9]*$"}}
}

func listDescription(r Resource) string {
	var parts []string
	if len(r.Filters) > 0 || len(r.DateFilters) > 0 {
		var f []string
		for _, k := range slices.Sorted(maps.Keys(r.Filters)) {
			f = append(f, k+" = '…'")
		}
		for _, k := range slices.Sorted(maps.Keys(r.DateFilters)) {
			d := r.DateFilters[k]
			if d.After != "" {
				f = append(f, k+" >= '2026-01-01T00:00:00Z'")
			}
			if d.Before != "" {
				f = append(f, k+" <= '…'")
			}
		}
		parts = append(parts, "where takes CEQL joined with and: "+strings.Join(f, ", ")+".")
	} else {
		parts = append(parts, "Keap offers no filters on this list.")
	}
	if len(r.OrderBy) > 0 {
		dir := ""
		if r.OrderDirection != "" {
			dir = ", optionally followed by asc or desc"
		}
		parts = append(parts, "orderBy takes one of "+strings.Join(slices.Sorted(maps.Keys(r.OrderBy)), ", ")+dir+".")
	}
	parts = append(parts, "The next page's cursor comes in the Elements-Next-Page-Token header; pass it as nextPage with the same where and orderBy.")
	return strings.Join(parts, " ")
}

func listParams(r Resource) []Parameter {
	one := 1.0
	ps := []Parameter{
		{Name: "where", In: "query", Description: "CEQL filter", Schema: Schema{Type: "string"}},
		{Name: "orderBy", In: "query", Description: "field to order by", Schema: Schema{Type: "string"}},
		{Name: "pageSize", In: "query", Description: "records per page (default 200, at most the instance's pagination.max)", Schema: Schema{Type: "integer", Minimum: &one}},
		{Name: "nextPage", In: "query", Description: "the previous page's Elements-Next-Page-Token", Schema: Schema{Type: "string"}},
	}
	if len(r.Filters) == 0 && len(r.DateFilters) == 0 {
		ps = slices.DeleteFunc(ps, func(p Parameter) bool { return p.Name == "where" })
	}
	if len(r.OrderBy) == 0 {
		ps = slices.DeleteFunc(ps, func(p Parameter) bool { return p.Name == "orderBy" })
	}
	return append(ps, methodParams(r.MethodParams[http.MethodGet])...)
}

func methodParams(params map[string]Param) []Parameter {
	var out []Parameter
	for _, name := range slices.Sorted(maps.Keys(params)) {
		p := params[name]
		s := Schema{Type: p.Type}
		if p.Type == "integerList" {
			s = Schema{Type: "string", Pattern: "^[0-9]+(,[0-9]+)*$"}
		}
		out = append(out, Parameter{Name: name, In: "query", Required: p.Required, Description: "passed to Keap as " + name, Schema: s})
	}
	return out
}

func jsonBody() *RequestBody {
	return &RequestBody{Required: true, Content: map[string]MediaType{"application/json": {Schema: Schema{Ref: "#/components/schemas/Record"}}}}
}

func list(paged bool) map[string]Response {
	r := Response{Description: "the records, in Keap's order", Content: map[string]MediaType{"application/json": {Schema: Schema{Type: "array", Items: &Schema{Ref: "#/components/schemas/Record"}}}}}
	if paged {
		r.Headers = map[string]Header{"Elements-Next-Page-Token": {Description: "the next page's cursor; absent on the last page", Schema: Schema{Type: "string"}}}
	}
	return map[string]Response{"200": r}
}

func single(method string) map[string]Response {
	rec := map[string]MediaType{"application/json": {Schema: Schema{Ref: "#/components/schemas/Record"}}}
	ok := Response{Description: "the record as Keap answered it", Content: rec}
	if method == http.MethodPut {
		ok.Headers = map[string]Header{"Elements-Upsert-Result": {Description: "created or updated, on an upsert", Schema: Schema{Type: "string", Enum: []string{"created", "updated"}}}}
	}
	// Keap answers 200, 201 or 204 depending on the resource; the hubs pass its status on.
	return map[string]Response{"200": ok, "201": {Description: "created", Content: rec}, "204": {Description: "done; no body"}}
}

func ptrBool(b bool) *bool { return &b }
