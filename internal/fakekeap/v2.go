package fakekeap

// Keap's REST v2 (/crm/rest/v2), as its OpenAPI document of August 2026
// describes it: ids are strings, lists page with page_size and an opaque
// page_token answered by next_page_token, filter takes `field==value`
// clauses joined by `;` (a trailing `*` matches a prefix where the document
// allows it), order_by takes `field` or `field asc|desc`, fields picks the
// properties of the answer, PATCH honours update_mask, and errors are
// {code, message, status, details}. The contacts, tags and companies are the
// same records REST v1 and XML-RPC serve; the other resources live beside
// them in memory. Like the rest of the fake it is strict: a query parameter,
// filter field, order or body member the document does not list is refused
// with a 400 naming what is accepted.

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// v2Error is Keap's REST v2 error body.
type v2Error struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Status  string           `json:"status"`
	Details []map[string]any `json:"details"`
}

// v2Statuses are the status words Keap's v2 errors carry, by HTTP status.
var v2Statuses = map[int]string{
	http.StatusBadRequest:          "INVALID_ARGUMENT",
	http.StatusUnauthorized:        "UNAUTHENTICATED",
	http.StatusForbidden:           "PERMISSION_DENIED",
	http.StatusNotFound:            "NOT_FOUND",
	http.StatusMethodNotAllowed:    "METHOD_NOT_ALLOWED",
	http.StatusConflict:            "ALREADY_EXISTS",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusNotImplemented:      "UNIMPLEMENTED",
}

// writeV2Error writes a REST v2 error.
func writeV2Error(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, v2Error{Code: status, Message: fmt.Sprintf(format, args...),
		Status: cmp.Or(v2Statuses[status], "UNKNOWN"), Details: []map[string]any{}})
}

// v2Routes serves /crm/rest/v2.
func (s *Server) v2Routes(r chi.Router) {
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeV2Error(w, http.StatusNotFound, "No resource found for %s %s", r.Method, r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeV2Error(w, http.StatusMethodNotAllowed, "Request method '%s' not supported", r.Method)
	})
	r.Use(s.gate(authAPIOrLegacyKey))

	r.Get("/contacts", s.v2ListContacts)
	r.Post("/contacts", s.v2CreateContact)
	r.Post("/contacts:merge", s.v2MergeContacts)
	r.Get("/contacts/model", s.v2ContactModel)
	r.Get("/contacts/{contact_id}", s.v2GetContact)
	r.Patch("/contacts/{contact_id}", s.v2PatchContact)
	r.Delete("/contacts/{contact_id}", s.v2DeleteContact)
	r.Get("/contacts/{contact_id}/tags", s.v2ListContactTags)

	r.Get("/tags", s.v2ListTags)
	r.Post("/tags", s.v2CreateTag)
	r.Get("/tags/{tag_id}", s.v2GetTag)
	r.Patch("/tags/{tag_id}", s.v2PatchTag)
	r.Delete("/tags/{tag_id}", s.v2DeleteTag)
	r.Post("/tags/{tag_id}/contacts:applyTags", s.v2ApplyTags)
	r.Post("/tags/{tag_id}/contacts:removeTags", s.v2RemoveTags)
	r.Get("/tags/{tag_id}/contacts", s.v2ListTaggedContacts)

	r.Get("/companies", s.v2ListCompanies)
	r.Post("/companies", s.v2CreateCompany)
	r.Get("/companies/{company_id}", s.v2GetCompany)
	r.Patch("/companies/{company_id}", s.v2PatchCompany)
	r.Delete("/companies/{company_id}", s.v2DeleteCompany)

	r.Get("/emailAddresses", s.v2ListEmailStatuses)
	r.Get("/emailAddresses/{email}/status", s.v2GetEmailStatus)
	r.Patch("/emailAddresses/{email}/status", s.v2PatchEmailStatus)

	r.Post("/automations/goals/achieve", s.v2AchieveGoal)
	r.Get("/settings/contactOptionTypes", s.v2ContactOptionTypes)
	r.Get("/settings/applications:isEnabled", s.v2ApplicationEnabled)
	r.Get("/settings/applications:getConfiguration", s.v2ApplicationConfiguration)

	s.v2RecordRoutes(r)
}

// v2Query is a list or read request's parsed query: the page, the filter
// clauses, the order and the properties asked for.
type v2Query struct {
	pageSize int
	offset   int
	filter   []v2Clause
	orderBy  string
	desc     bool
	fields   []string
	mask     []string
}

// v2Clause is one `field op value` of a filter.
type v2Clause struct{ field, op, value string }

// v2Params describes the query an operation takes; zero members are not taken.
type v2Params struct {
	list    bool                // page_size and page_token
	filters map[string]v2Filter // filter field -> how it matches
	orders  map[string]string   // order_by field -> member path of the answer
	fields  []string            // fields the caller may ask for; nil: fields not taken
	mask    []string            // update_mask values; nil: update_mask not taken
	extra   map[string]string   // other parameters: name -> "enum:a|b" or "string"
}

// v2Filter is how a filter field matches: the member path of the rendered
// record it reads and the kind of comparison.
type v2Filter struct {
	path string
	// kind: "text" equal ignoring case; "prefix" as text with a trailing *
	// wildcard; "contains" a substring, or a prefix with *; "exact" equal;
	// "number" ==, !=, <, <=, >, >= on numbers; "time" ==, <, <=, >, >= on
	// date-times; "set" one of a comma list; "since" / "until" a date-time
	// bound; "bool" true or false.
	kind string
}

// parseV2Query reads r's query against p, or writes a 400 and returns false.
func parseV2Query(w http.ResponseWriter, r *http.Request, p v2Params) (v2Query, bool) {
	q := v2Query{pageSize: 50}
	bad := func(format string, args ...any) (v2Query, bool) {
		writeV2Error(w, http.StatusBadRequest, format, args...)
		return v2Query{}, false
	}
	for name, values := range r.URL.Query() {
		v := strings.Join(values, ",")
		switch {
		case p.list && name == "page_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1000 {
				return bad("Invalid page_size %q: use an integer from 0 to 1000", v)
			}
			if n > 0 {
				q.pageSize = n
			}
		case p.list && name == "page_token":
			off, ok := decodePageToken(v)
			if !ok {
				return bad("Invalid page_token %q: pass the next_page_token of the previous page unchanged", v)
			}
			q.offset = off
		case p.filters != nil && name == "filter":
			clauses, msg := parseV2Filter(v, p.filters)
			if msg != "" {
				return bad("%s", msg)
			}
			q.filter = clauses
		case p.orders != nil && name == "order_by":
			parts := strings.Fields(strings.ReplaceAll(v, ",", " "))
			if len(parts) == 0 || len(parts) > 2 {
				return bad("Invalid order_by %q: use a field and an optional direction, such as %s desc", v, sortedKeys(p.orders)[0])
			}
			if _, ok := p.orders[parts[0]]; !ok {
				return bad("Invalid order_by field %q: use one of %s", parts[0], strings.Join(sortedKeys(p.orders), ", "))
			}
			q.orderBy = parts[0]
			if len(parts) == 2 {
				switch strings.ToLower(parts[1]) {
				case "asc":
				case "desc":
					q.desc = true
				default:
					return bad("Invalid order_by direction %q: use asc or desc", parts[1])
				}
			}
		case p.fields != nil && name == "fields":
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				if !slices.Contains(p.fields, f) {
					return bad("Invalid field %q in fields: use %s", f, strings.Join(p.fields, ", "))
				}
				q.fields = append(q.fields, f)
			}
		case p.mask != nil && name == "update_mask":
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				if !slices.Contains(p.mask, f) {
					return bad("Invalid update_mask entry %q: use %s", f, strings.Join(p.mask, ", "))
				}
				q.mask = append(q.mask, f)
			}
		case p.extra[name] != "":
			if msg := checkValue(p.extra[name], v); msg != "" {
				return bad("Invalid %s %q: %s", name, v, msg)
			}
		default:
			return bad("Unknown query parameter %s for %s %s", name, r.Method, r.URL.Path)
		}
	}
	return q, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// parseV2Filter splits `a==b;c>5` into clauses checked against allowed.
func parseV2Filter(s string, allowed map[string]v2Filter) ([]v2Clause, string) {
	var out []v2Clause
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		i := strings.IndexAny(part, "=!<>")
		if i <= 0 {
			return nil, fmt.Sprintf("Invalid filter %q: use field==value clauses joined by ;, with fields %s", part, strings.Join(sortedKeys(allowed), ", "))
		}
		c := v2Clause{field: strings.TrimSpace(part[:i])}
		rest := part[i:]
		for _, op := range []string{"==", "!=", ">=", "<=", ">", "<"} {
			if strings.HasPrefix(rest, op) {
				c.op, c.value = op, rest[len(op):]
				break
			}
		}
		f, ok := allowed[c.field]
		if !ok {
			f, ok = allowed[strings.ToLower(c.field)] // custom fields: case-insensitive
			c.field = strings.ToLower(c.field)
		}
		switch {
		case c.op == "":
			return nil, fmt.Sprintf("Invalid filter operator in %q: use ==", part)
		case !ok:
			return nil, fmt.Sprintf("Invalid filter field %q: use one of %s", c.field, strings.Join(sortedKeys(allowed), ", "))
		case f.kind == "time" && c.op == "!=" || f.kind != "number" && f.kind != "time" && c.op != "==":
			return nil, fmt.Sprintf("Invalid filter operator %s for %s: it supports %s", c.op, c.field, map[bool]string{true: "==, >, <, >= and <=", false: "== only"}[f.kind == "time"])
		case f.kind == "time":
			if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", c.value); err != nil {
				return nil, fmt.Sprintf("Invalid filter value %q for %s: use a full ISO 8601 date-time with milliseconds and a time zone, such as 2026-01-01T00:00:00.000Z", c.value, c.field)
			}
		case f.kind == "number":
			if _, err := strconv.ParseFloat(c.value, 64); err != nil {
				return nil, fmt.Sprintf("Invalid filter value %q for %s: use a number", c.value, c.field)
			}
		case f.kind == "since" || f.kind == "until":
			if _, err := time.Parse(time.RFC3339Nano, c.value); err != nil {
				return nil, fmt.Sprintf("Invalid filter value %q for %s: use an ISO 8601 date-time such as 2026-01-01T00:00:00.000Z", c.value, c.field)
			}
		case f.kind == "bool" && c.value != "true" && c.value != "false":
			return nil, fmt.Sprintf("Invalid filter value %q for %s: use true or false", c.value, c.field)
		case strings.Contains(strings.TrimSuffix(c.value, "*"), "*") || strings.HasSuffix(c.value, "*") && f.kind != "prefix" && f.kind != "contains":
			return nil, fmt.Sprintf("Invalid filter value %q for %s: a * wildcard is only allowed at the end of %s", c.value, c.field, strings.Join(wildcardFields(allowed), ", "))
		}
		out = append(out, c)
	}
	return out, ""
}

func wildcardFields(allowed map[string]v2Filter) []string {
	var out []string
	for _, name := range sortedKeys(allowed) {
		if k := allowed[name].kind; k == "prefix" || k == "contains" {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return []string{"no field of this list"}
	}
	return out
}

// matches reports whether rec passes every clause.
func (q v2Query) matches(rec map[string]any, filters map[string]v2Filter) bool {
	for _, c := range q.filter {
		f := filters[c.field]
		have := values(rec, f.path)
		if !slices.ContainsFunc(have, func(v any) bool { return clauseMatch(f.kind, c, v) }) {
			return false
		}
	}
	return true
}

func clauseMatch(kind string, c v2Clause, v any) bool {
	h := fmt.Sprint(v)
	switch kind {
	case "text":
		return strings.EqualFold(h, c.value)
	case "prefix", "contains":
		h, want := strings.ToLower(h), strings.ToLower(c.value)
		if p, ok := strings.CutSuffix(want, "*"); ok {
			return strings.HasPrefix(h, p)
		}
		if kind == "contains" {
			return strings.Contains(h, want)
		}
		return h == want
	case "exact":
		return h == c.value
	case "set":
		return slices.Contains(strings.Split(c.value, ","), h)
	case "bool":
		return h == c.value
	case "since", "until":
		at, err := time.Parse(time.RFC3339Nano, h)
		bound, _ := time.Parse(time.RFC3339Nano, c.value)
		return err == nil && (kind == "since" && !at.Before(bound) || kind == "until" && !at.After(bound))
	case "number", "time":
		var x, y float64
		if kind == "time" {
			at, err := time.Parse(time.RFC3339Nano, h)
			if err != nil {
				return false
			}
			bound, _ := time.Parse(time.RFC3339Nano, c.value)
			x, y = float64(at.UnixMilli()), float64(bound.UnixMilli())
		} else {
			var err error
			if x, err = strconv.ParseFloat(h, 64); err != nil {
				return false
			}
			y, _ = strconv.ParseFloat(c.value, 64)
		}
		switch c.op {
		case "==":
			return x == y
		case "!=":
			return x != y
		case ">":
			return x > y
		case ">=":
			return x >= y
		case "<":
			return x < y
		case "<=":
			return x <= y
		}
	}
	return false
}

// page sorts, filters and cuts recs into the answer of a list: the page
// and the token of the next one ("" on the last page).
func (q v2Query) page(recs []map[string]any, p v2Params) ([]any, string) {
	var kept []map[string]any
	for _, rec := range recs {
		if q.matches(rec, p.filters) {
			kept = append(kept, rec)
		}
	}
	by := p.orders[q.orderBy]
	slices.SortStableFunc(kept, func(a, b map[string]any) int {
		c := 0
		if by != "" {
			c = compareMembers(firstValue(a, by), firstValue(b, by))
		}
		c = cmp.Or(c, compareMembers(a["id"], b["id"]))
		if q.desc {
			c = -c
		}
		return c
	})
	end := min(q.offset+q.pageSize, len(kept))
	out := []any{}
	for _, rec := range kept[min(q.offset, len(kept)):end] {
		out = append(out, rec)
	}
	next := ""
	if end < len(kept) {
		next = encodePageToken(end)
	}
	return out, next
}

func firstValue(rec map[string]any, path string) any {
	if vs := values(rec, path); len(vs) > 0 {
		return vs[0]
	}
	return nil
}

// encodePageToken makes the opaque token of the page starting at offset.
func encodePageToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodePageToken(t string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	return n, err == nil && n >= 0 && strings.HasPrefix(string(b), "offset:")
}

// pick keeps only the named members of rec (and its id); none keeps all.
func pick(rec map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return rec
	}
	out := map[string]any{"id": rec["id"]}
	for _, f := range fields {
		if v, ok := rec[f]; ok {
			out[f] = v
		}
	}
	return out
}

// omit drops the named members of rec unless fields asks for them: the
// properties Keap leaves out of an answer by default.
func omit(rec map[string]any, optional, fields []string) map[string]any {
	for _, f := range optional {
		if !slices.Contains(fields, f) {
			delete(rec, f)
		}
	}
	return rec
}

// compact drops nil and empty-string members, as Keap's v2 JSON leaves out
// unset properties instead of writing null.
func compact(m map[string]any) map[string]any {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case string:
			if x == "" {
				delete(m, k)
			}
		case map[string]any:
			compact(x)
		}
	}
	return m
}

// v2ID reads the path parameter name as a Keap id, or writes a 400.
func v2ID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	v := chi.URLParam(r, name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		writeV2Error(w, http.StatusBadRequest, "Invalid %s %q: ids are positive integers written as strings", name, v)
		return 0, false
	}
	return id, true
}

// idString writes an id as REST v2 does.
func idString(id int64) string { return strconv.FormatInt(id, 10) }

// parseIDString reads an id of a request body, where v2 writes ids as strings
// (a number is accepted too, as Keap's services are lenient there).
func parseIDString(v any) (int64, bool) {
	switch x := v.(type) {
	case string:
		id, err := strconv.ParseInt(x, 10, 64)
		return id, err == nil && id > 0
	case json.Number:
		id, err := x.Int64()
		return id, err == nil && id > 0
	case float64:
		return int64(x), x > 0 && x == float64(int64(x))
	}
	return 0, false
}

// readV2Body decodes a JSON object body, numbers kept as written, refusing
// members the operation does not take.
func readV2Body(w http.ResponseWriter, r *http.Request, allowed []string) (map[string]any, bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		msg := ""
		if err != nil {
			msg = " (" + err.Error() + ")"
		}
		writeV2Error(w, http.StatusBadRequest, "Invalid request body: a JSON object is required%s", msg)
		return nil, false
	}
	var unknown []string
	for k := range body {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		writeV2Error(w, http.StatusBadRequest, "Unknown field(s) %s: this operation takes %s", strings.Join(unknown, ", "), strings.Join(allowed, ", "))
		return nil, false
	}
	return body, true
}

// masked returns the members of body an update applies: those named in
// mask when there is one, else all present.
func masked(body map[string]any, mask []string) map[string]any {
	if len(mask) == 0 {
		return body
	}
	out := map[string]any{}
	for _, f := range mask {
		if v, ok := body[f]; ok {
			out[f] = v
		} else {
			out[f] = nil // named but absent: cleared
		}
	}
	return out
}

// jsonCopy round-trips v through JSON, numbers kept as json.Number, so a
// rendered record and a stored one compare and serialise alike.
func jsonCopy(v any) map[string]any {
	b, _ := json.Marshal(v)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	_ = dec.Decode(&m)
	return m
}

func writeList(w http.ResponseWriter, key string, items []any, next string) {
	writeJSON(w, http.StatusOK, map[string]any{key: items, "next_page_token": next})
}
