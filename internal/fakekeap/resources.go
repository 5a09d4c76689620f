package fakekeap

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// The REST v1 resources beyond contacts, tags and companies, as data: each is
// generic in-memory CRUD with Keap's list envelope and limit/offset paging,
// its documented filters and orders, and the body members Keap's REST v1
// OpenAPI document allows. Like the rest of the fake it is strict: a query
// parameter or body member the document does not list is refused, so a
// client mistake fails a test instead of passing unnoticed.

// kind is one generic resource.
type kind struct {
	path       string   // under /crm/rest/v1, e.g. /opportunities; also the list key without the slash
	singular   string   // for messages
	collection []string // methods on the collection
	item       []string // methods on /{id}
	created    int      // the status of a create: Keap documents 200 for some, 201 for others
	required   []string // members a create needs
	fields     []string // members a body may carry
	params     map[string]string
	match      map[string]string // filter parameter -> record member (dotted) it compares, equal or contained
	dated      string            // the member since and until bound
	orders     map[string]string // order value -> record member
	stamps     [2]string         // members set on create and on every change, or ""
}

// Parameter types: int, bool, date, string, or enum:a|b|c.
var kinds = []kind{
	{path: "/opportunities", singular: "Opportunity", collection: []string{"GET", "POST"}, item: []string{"GET", "PATCH"}, created: 200,
		required: []string{"contact", "opportunity_title", "stage"},
		fields: []string{"affiliate_id", "contact", "custom_fields", "estimated_close_date", "include_in_forecast", "next_action_date",
			"next_action_notes", "opportunity_notes", "opportunity_title", "projected_revenue_high", "projected_revenue_low", "stage", "user"},
		params: map[string]string{"order": "enum:next_action|opportunity_name|contact_name|date_created", "search_term": "string", "stage_id": "int", "user_id": "int"},
		match:  map[string]string{"search_term": "opportunity_title", "stage_id": "stage.id", "user_id": "user.id"},
		orders: map[string]string{"next_action": "next_action_date", "opportunity_name": "opportunity_title", "contact_name": "contact.first_name", "date_created": "date_created"},
		stamps: [2]string{"date_created", "last_updated"}},
	{path: "/notes", singular: "Note", collection: []string{"GET", "POST"}, item: []string{"GET", "PUT", "PATCH", "DELETE"}, created: 201,
		required: []string{"contact_id"}, fields: []string{"body", "contact_id", "title", "type", "user_id"},
		params: map[string]string{"contact_id": "int", "user_id": "int"},
		match:  map[string]string{"contact_id": "contact_id", "user_id": "user_id"},
		stamps: [2]string{"date_created", "last_updated"}},
	{path: "/tasks", singular: "Task", collection: []string{"GET", "POST"}, item: []string{"GET", "PUT", "PATCH", "DELETE"}, created: 200,
		fields: []string{"completed", "completion_date", "contact", "creation_date", "description", "due_date", "funnel_id", "jgraph_id",
			"modification_date", "priority", "remind_time", "title", "type", "url", "user_id"},
		params: map[string]string{"completed": "bool", "contact_id": "int", "has_due_date": "bool", "order": "string", "since": "date", "until": "date", "user_id": "int"},
		match:  map[string]string{"completed": "completed", "contact_id": "contact.id", "user_id": "user_id"},
		dated:  "creation_date", stamps: [2]string{"creation_date", "modification_date"}},
	{path: "/campaigns", singular: "Campaign", collection: []string{"GET"}, item: []string{"GET"},
		params: map[string]string{"order": "enum:id|name|published_date|completed_contact_count|active_contact_count|date_created|last_updated|category|status",
			"order_direction": "enum:ASCENDING|DESCENDING", "search_text": "string"},
		match:  map[string]string{"search_text": "name"},
		orders: map[string]string{"id": "id", "name": "name", "published_date": "published_date", "date_created": "date_created", "last_updated": "last_updated"}},
	{path: "/emails", singular: "Email", collection: []string{"GET", "POST"}, item: []string{"GET", "DELETE"}, created: 201,
		required: []string{"sent_to_address"},
		fields: []string{"clicked_date", "contact_id", "headers", "html_content", "opened_date", "original_provider", "original_provider_id",
			"plain_content", "provider_source_id", "received_date", "sent_date", "sent_from_address", "sent_from_reply_address",
			"sent_to_address", "sent_to_bcc_addresses", "sent_to_cc_addresses", "subject"},
		params: map[string]string{"contact_id": "int", "email": "string", "ordered": "bool", "since_sent_date": "date", "until_sent_date": "date"},
		match:  map[string]string{"contact_id": "contact_id", "email": "sent_to_address"}},
	{path: "/orders", singular: "Order", collection: []string{"GET", "POST"}, item: []string{"GET", "DELETE"}, created: 201,
		required: []string{"contact_id", "order_date", "order_items", "order_title", "order_type"},
		fields: []string{"contact_id", "lead_affiliate_id", "order_date", "order_items", "order_title", "order_type", "promo_codes",
			"sales_affiliate_id", "shipping_address"},
		params: map[string]string{"contact_id": "int", "order": "enum:order_date|update_date", "paid": "bool", "product_id": "int", "since": "date", "until": "date"},
		match:  map[string]string{"contact_id": "contact_id", "paid": "paid", "product_id": "order_items.product_id"},
		dated:  "order_date", orders: map[string]string{"order_date": "order_date", "update_date": "modification_date"},
		stamps: [2]string{"creation_date", "modification_date"}},
	{path: "/products", singular: "Product", collection: []string{"GET", "POST"}, item: []string{"GET", "PATCH", "DELETE"}, created: 201,
		required: []string{"product_name"},
		fields:   []string{"active", "product_desc", "product_name", "product_price", "product_short_desc", "sku", "subscription_only"},
		params:   map[string]string{"active": "bool"},
		match:    map[string]string{"active": "active"}},
	{path: "/transactions", singular: "Transaction", collection: []string{"GET"}, item: []string{"GET"},
		params: map[string]string{"contact_id": "int", "since": "date", "until": "date"},
		match:  map[string]string{"contact_id": "contact_id"}, dated: "transaction_date"},
	{path: "/subscriptions", singular: "Subscription", collection: []string{"GET", "POST"}, created: 201,
		required: []string{"contact_id"},
		fields: []string{"allow_duplicate", "allow_tax", "auto_charge", "billing_amount", "contact_id", "credit_card_id", "first_bill_date",
			"payment_gateway_id", "quantity", "sale_affiliate_id", "subscription_plan_id"},
		params: map[string]string{"contact_id": "int"},
		match:  map[string]string{"contact_id": "contact_id"}},
}

// paramRule lists the query parameters one REST v1 operation takes.
type paramRule struct {
	method, path string            // path under /crm/rest/v1, {x} for a path parameter
	params       map[string]string // name -> type
	required     []string
}

// paramRules are the query parameters of every REST v1 operation the fake
// serves, as Keap's OpenAPI document lists them (the hooks take none).
var paramRules = buildParamRules()

func buildParamRules() []paramRule {
	page := map[string]string{"limit": "int", "offset": "int"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"limit": "int", "offset": "int"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	dir := "enum:ASCENDING|DESCENDING"
	rules := []paramRule{
		{method: "GET", path: "/account/profile"},
		{method: "GET", path: "/oauth/connect/userinfo"},
		{method: "GET", path: "/contacts", params: with(map[string]string{"email": "string", "family_name": "string", "given_name": "string",
			"optional_properties": "string", "order": "enum:id|date_created|last_updated|name|firstName|email", "order_direction": dir,
			"since": "date", "until": "date"})},
		{method: "POST", path: "/contacts"},
		{method: "PUT", path: "/contacts"},
		{method: "GET", path: "/contacts/{id}", params: map[string]string{"optional_properties": "string"}},
		{method: "PATCH", path: "/contacts/{id}", params: map[string]string{"update_mask": "string"}},
		{method: "DELETE", path: "/contacts/{id}"},
		{method: "GET", path: "/contacts/{id}/tags", params: page},
		{method: "POST", path: "/contacts/{id}/tags"},
		{method: "DELETE", path: "/contacts/{id}/tags", params: map[string]string{"ids": "string"}, required: []string{"ids"}},
		{method: "DELETE", path: "/contacts/{id}/tags/{tagId}"},
		{method: "GET", path: "/tags", params: with(map[string]string{"category": "int", "name": "string"})},
		{method: "POST", path: "/tags"},
		{method: "GET", path: "/tags/{id}"},
		{method: "GET", path: "/companies", params: with(map[string]string{"company_name": "string", "optional_properties": "string",
			"order": "enum:id|date_created|name|email", "order_direction": dir})},
		{method: "POST", path: "/companies"},
		{method: "GET", path: "/companies/{id}", params: map[string]string{"optional_properties": "string"}},
		{method: "PATCH", path: "/companies/{id}"},
		{method: "GET", path: "/locales/countries"},
		{method: "GET", path: "/locales/countries/{cc}/provinces"},
		{method: "GET", path: "/hooks"},
		{method: "POST", path: "/hooks"},
		{method: "GET", path: "/hooks/event_keys"},
		{method: "GET", path: "/hooks/{key}"},
		{method: "PUT", path: "/hooks/{key}"},
		{method: "DELETE", path: "/hooks/{key}"},
		{method: "POST", path: "/hooks/{key}/verify"},
		{method: "POST", path: "/hooks/{key}/delayedVerify"},
	}
	for _, k := range kinds {
		for _, m := range k.collection {
			r := paramRule{method: m, path: k.path}
			if m == "GET" {
				r.params = with(k.params)
			}
			rules = append(rules, r)
		}
		for _, m := range k.item {
			rules = append(rules, paramRule{method: m, path: k.path + "/{id}"})
		}
	}
	return rules
}

// matches reports whether path fits the rule's path template.
func (p paramRule) matches(method, path string) bool {
	if method != p.method {
		return false
	}
	want, got := strings.Split(p.path, "/"), strings.Split(path, "/")
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if want[i] != got[i] && !(strings.HasPrefix(want[i], "{") && got[i] != "") {
			return false
		}
	}
	return true
}

// checkParams refuses a REST v1 call whose query parameters the operation
// does not take, or whose values do not fit their documented types.
func checkParams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
			path = rctx.RoutePath
		}
		path = strings.TrimSuffix(path, "/")
		i := slices.IndexFunc(paramRules, func(p paramRule) bool { return p.matches(r.Method, path) })
		if i < 0 {
			next.ServeHTTP(w, r)
			return
		}
		rule, q := paramRules[i], r.URL.Query()
		for name, values := range q {
			typ, ok := rule.params[name]
			if !ok {
				writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Unknown query parameter %s for %s %s", name, r.Method, rule.path))
				return
			}
			for _, v := range values {
				if msg := checkValue(typ, v); msg != "" {
					writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Invalid %s %s: %s", name, v, msg))
					return
				}
			}
		}
		for _, name := range rule.required {
			if q.Get(name) == "" {
				writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Required query parameter %s is missing", name))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func checkValue(typ, v string) string {
	switch {
	case typ == "int":
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return "use an integer"
		}
	case typ == "bool":
		if v != "true" && v != "false" {
			return "use true or false"
		}
	case typ == "date":
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return "use an ISO 8601 date-time such as 2017-01-01T22:17:59.039Z"
		}
	case strings.HasPrefix(typ, "enum:"):
		if !slices.Contains(strings.Split(typ[5:], "|"), v) {
			return "use one of " + strings.ReplaceAll(typ[5:], "|", ", ")
		}
	}
	return ""
}

// record is one stored generic resource, as JSON decoded with numbers kept.
type record map[string]any

// resourceRoutes serves the generic kinds and the few contact calls the
// hand-written handlers lack.
func (s *Server) resourceRoutes(r chi.Router) {
	s.records = map[string]map[int64]record{}
	for _, k := range kinds {
		s.records[k.path] = map[int64]record{}
		for _, m := range k.collection {
			switch m {
			case "GET":
				r.Get(k.path, s.listRecords(k))
			case "POST":
				r.Post(k.path, s.writeRecord(k, false))
			}
		}
		for _, m := range k.item {
			switch m {
			case "GET":
				r.Get(k.path+"/{id}", s.getRecord(k))
			case "PUT":
				r.Put(k.path+"/{id}", s.writeRecord(k, true))
			case "PATCH":
				r.Patch(k.path+"/{id}", s.writeRecord(k, true))
			case "DELETE":
				r.Delete(k.path+"/{id}", s.deleteRecord(k))
			}
		}
	}
	r.Delete("/contacts/{id}/tags/{tagId}", s.handleRemoveTag)
}

// AddRecord stores a record of a generic resource (e.g. "campaigns",
// "transactions", which Keap's REST API cannot create) and returns its id.
func (s *Server) AddRecord(resource string, fields map[string]any) int64 {
	b, _ := json.Marshal(fields)
	rec := record{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextIDLocked(resource)
	rec["id"] = json.Number(strconv.FormatInt(id, 10))
	s.records["/"+resource][id] = rec
	return id
}

// Records returns how many records a generic resource holds.
func (s *Server) Records(resource string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records["/"+resource])
}

func (s *Server) listRecords(k kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, offset, ok := pageParams(w, q)
		if !ok {
			return
		}
		var since, until time.Time
		for name, into := range map[string]*time.Time{"since": &since, "until": &until} {
			if v := q.Get(name); v != "" {
				*into, _ = time.Parse(time.RFC3339Nano, v) // checkParams checked it
			}
		}
		s.mu.Lock()
		var matches []record
		for _, rec := range s.records[k.path] {
			if k.accepts(rec, q, since, until) {
				matches = append(matches, rec)
			}
		}
		by := k.orders[q.Get("order")]
		slices.SortFunc(matches, func(a, b record) int {
			return cmp.Or(compareMembers(lookup(a, by), lookup(b, by)), compareMembers(a["id"], b["id"]))
		})
		if q.Get("order_direction") == "DESCENDING" {
			slices.Reverse(matches)
		}
		page := []any{}
		for _, rec := range matches[min(offset, len(matches)):min(offset+limit, len(matches))] {
			page = append(page, rec)
		}
		out := listEnvelope(r, strings.TrimPrefix(k.path, "/"), page, len(matches), limit, offset)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	}
}

// accepts reports whether rec passes the list's filters.
func (k kind) accepts(rec record, q url.Values, since, until time.Time) bool {
	for param, member := range k.match {
		want := q.Get(param)
		if want == "" {
			continue
		}
		if !slices.ContainsFunc(values(rec, member), func(v any) bool {
			s := fmt.Sprint(v)
			return strings.EqualFold(s, want) || k.params[param] == "string" && strings.Contains(strings.ToLower(s), strings.ToLower(want))
		}) {
			return false
		}
	}
	if k.dated != "" && (!since.IsZero() || !until.IsZero()) {
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec[k.dated]))
		if err != nil || !since.IsZero() && at.Before(since) || !until.IsZero() && at.After(until) {
			return false
		}
	}
	return true
}

// values returns what a dotted member path holds in rec, looking into arrays.
func values(v any, path string) []any {
	if path == "" {
		return []any{v}
	}
	head, rest, _ := strings.Cut(path, ".")
	switch x := v.(type) {
	case record:
		return values(map[string]any(x), path)
	case map[string]any:
		if e, ok := x[head]; ok && e != nil {
			return values(e, rest)
		}
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, values(e, path)...)
		}
		return out
	}
	return nil
}

func lookup(rec record, path string) any {
	if path == "" {
		return nil
	}
	if vs := values(rec, path); len(vs) > 0 {
		return vs[0]
	}
	return nil
}

// compareMembers orders numbers as numbers and anything else as text.
func compareMembers(a, b any) int {
	x, errA := strconv.ParseFloat(fmt.Sprint(a), 64)
	y, errB := strconv.ParseFloat(fmt.Sprint(b), 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// readRecord decodes a JSON object body, numbers kept as written.
func readRecord(w http.ResponseWriter, r *http.Request) (record, bool) {
	var rec record
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.UseNumber()
	err := dec.Decode(&rec)
	if err == nil && rec != nil {
		if p := firstNull(map[string]any(rec), ""); p != "" {
			err = fmt.Errorf("%s may not be null", p)
		}
	}
	if err != nil || rec == nil {
		msg := "a JSON object is required"
		if err != nil {
			msg = err.Error()
		}
		writeMessage(w, http.StatusBadRequest, "Input could not be converted to a valid request: "+msg)
		return nil, false
	}
	return rec, true
}

func (s *Server) getRecord(k kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		rec, found := s.records[k.path][id]
		s.mu.Unlock()
		if !found {
			writeMessage(w, http.StatusNotFound, fmt.Sprintf("%s with id %d not found", k.singular, id))
			return
		}
		writeJSON(w, http.StatusOK, rec)
	}
}

func (s *Server) deleteRecord(k kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		_, found := s.records[k.path][id]
		delete(s.records[k.path], id)
		s.mu.Unlock()
		if !found {
			writeMessage(w, http.StatusNotFound, fmt.Sprintf("%s with id %d not found", k.singular, id))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// writeRecord creates (POST) or changes (PUT replaces, PATCH merges) a record.
func (s *Server) writeRecord(k kind, existing bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var id int64
		if existing {
			var ok bool
			if id, ok = pathID(w, r); !ok {
				return
			}
		}
		kept, ok := readRecord(w, r)
		if !ok {
			return
		}
		var unknown []string
		for name := range kept {
			if !slices.Contains(k.fields, name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Unrecognized field(s) %s for %s", strings.Join(unknown, ", "), k.singular))
			return
		}
		if !existing || r.Method == http.MethodPut {
			for _, name := range k.required {
				if v, ok := kept[name]; !ok || v == nil || v == "" {
					writeMessage(w, http.StatusBadRequest, fmt.Sprintf("%s is required", name))
					return
				}
			}
		}
		now := formatTime(s.stamp())
		s.mu.Lock()
		defer s.mu.Unlock()
		status := k.created
		rec := record{}
		if existing {
			old, found := s.records[k.path][id]
			if !found {
				writeMessage(w, http.StatusNotFound, fmt.Sprintf("%s with id %d not found", k.singular, id))
				return
			}
			status = http.StatusOK
			if r.Method == http.MethodPatch {
				rec = old
			} else if k.stamps[0] != "" {
				rec[k.stamps[0]] = old[k.stamps[0]]
			}
		} else {
			id = s.nextIDLocked(strings.TrimPrefix(k.path, "/"))
			if k.stamps[0] != "" {
				rec[k.stamps[0]] = now
			}
		}
		for name, v := range kept {
			rec[name] = v
		}
		rec["id"] = json.Number(strconv.FormatInt(id, 10))
		if k.stamps[1] != "" {
			rec[k.stamps[1]] = now
		}
		s.records[k.path][id] = rec
		writeJSON(w, status, rec)
	}
}

// handleRemoveTag is DELETE /contacts/{id}/tags/{tagId}.
func (s *Server) handleRemoveTag(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	tid, err := strconv.ParseInt(chi.URLParam(r, "tagId"), 10, 64)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Invalid tag id "+chi.URLParam(r, "tagId")+": ids are integers")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[id]
	if c == nil {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Contact with id %d not found", id))
		return
	}
	delete(c.tags, tid)
	w.WriteHeader(http.StatusNoContent)
}
