package fakekeap

import (
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

// pageParams reads limit (default 50, at most 1000) and offset.
func pageParams(w http.ResponseWriter, q url.Values) (limit, offset int, ok bool) {
	limit, offset = 50, 0
	for name, into := range map[string]*int{"limit": &limit, "offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeMessage(w, http.StatusBadRequest, "Invalid "+name+" "+v+": use a non-negative integer")
				return 0, 0, false
			}
			*into = n
		}
	}
	if limit == 0 {
		limit = 50
	}
	return min(limit, 1000), offset, true
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Invalid id "+chi.URLParam(r, "id")+": ids are integers")
		return 0, false
	}
	return id, true
}

// listEnvelope is Keap's v1 list body. Like Keap it always carries next,
// even past the last page, so clients must stop on a short or empty page.
func listEnvelope(r *http.Request, plural string, items []any, total, limit, offset int) map[string]any {
	page := func(offset int) string {
		q := r.URL.Query()
		q.Set("limit", strconv.Itoa(limit))
		q.Set("offset", strconv.Itoa(offset))
		return requestBase(r) + r.URL.Path + "?" + q.Encode()
	}
	return map[string]any{plural: items, "count": total, "next": page(offset + limit), "previous": page(max(offset-limit, 0))}
}

func (s *Server) handleAccountProfile(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name":                     "Sandbox Company (" + AppName + ")",
		"email":                    "owner@" + AppName + ".example.com",
		"phone":                    "555-0100",
		"phone_ext":                nil,
		"website":                  "https://" + AppName + ".example.com",
		"time_zone":                "America/New_York",
		"currency_code":            "USD",
		"language_tag":             "en-US",
		"business_type":            "Other",
		"business_goals":           []string{},
		"business_primary_color":   nil,
		"business_secondary_color": nil,
		"logo_url":                 nil,
		"address": address{Field: "BILLING", Line1: "1 Sandbox Way", Locality: "Phoenix", Region: "US-AZ",
			PostalCode: "85001", CountryCode: "USA"}.render(),
	})
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"sub":             "1001",
		"global_user_id":  1001,
		"infusionsoft_id": "owner@" + AppName + ".example.com",
		"email":           "owner@" + AppName + ".example.com",
		"given_name":      "Sandbox",
		"family_name":     "Owner",
		"middle_name":     nil,
		"preferred_name":  "Sandbox",
		"is_admin":        true,
	})
}

type tag struct {
	id                int64
	name, description string
	categoryID        int64
	created, updated  time.Time
}

func (t *tag) render() map[string]any {
	m := map[string]any{"id": t.id, "name": t.name, "description": nullable(t.description), "category": nil}
	if t.categoryID != 0 {
		m["category"] = map[string]any{"id": t.categoryID, "name": fmt.Sprintf("Category %d", t.categoryID), "description": nil}
	}
	return m
}

// AddTag creates a tag and returns its id.
func (s *Server) AddTag(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &tag{id: s.nextIDLocked("tag"), name: name, created: s.stamp(), updated: s.stamp()}
	s.tags[t.id] = t
	return t.id
}

func (s *Server) handleListTags(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, ok := pageParams(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	ids := make([]int64, 0, len(s.tags))
	for id, t := range s.tags {
		if q.Get("name") == "" || strings.EqualFold(q.Get("name"), t.name) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	page := []any{}
	for _, id := range ids[min(offset, len(ids)):min(offset+limit, len(ids))] {
		page = append(page, s.tags[id].render())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, listEnvelope(r, "tags", page, len(ids), limit, offset))
}

func (s *Server) handleCreateTag(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Category    *struct {
			ID int64 `json:"id"`
		} `json:"category"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		writeMessage(w, http.StatusBadRequest, "name is required")
		return
	}
	s.mu.Lock()
	t := &tag{id: s.nextIDLocked("tag"), name: body.Name, description: body.Description, created: s.stamp(), updated: s.stamp()}
	if body.Category != nil {
		t.categoryID = body.Category.ID
	}
	s.tags[t.id] = t
	out := t.render()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out) // the v1 schema documents 200, not 201, for this create
}

func (s *Server) handleGetTag(w http.ResponseWriter, r *http.Request) {
	serveOne(s, w, r, s.tags, "Tag", (*tag).render)
}

// serveOne answers GET /{resource}/{id} from records, as Keap does: the record,
// or 404 with Keap's message.
func serveOne[T any, R any](s *Server, w http.ResponseWriter, r *http.Request, records map[int64]*T, noun string, render func(*T) R) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := records[id]
	if rec == nil {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("%s with id %d not found", noun, id))
		return
	}
	writeJSON(w, http.StatusOK, render(rec))
}

type company struct {
	id      int64
	fields  map[string]any
	optedIn bool
	created time.Time
	updated time.Time // zero until a REST v2 change
}

var companyFields = []string{"company_name", "email_address", "website", "notes", "phone_number", "fax_number", "address", "custom_fields"}

func (c *company) render() map[string]any {
	m := map[string]any{"id": c.id, "email_opted_in": c.optedIn, "email_status": nil}
	for _, k := range companyFields {
		m[k] = c.fields[k]
	}
	if m["custom_fields"] == nil {
		m["custom_fields"] = []any{}
	}
	if m["email_address"] != nil {
		m["email_status"] = map[bool]string{true: "SingleOptIn", false: "UnengagedNonMarketable"}[c.optedIn]
	}
	return m
}

// decodeCompany reads a create or patch body: the known properties present, and whether it opts in.
func decodeCompany(w http.ResponseWriter, r *http.Request, creating bool) (map[string]any, bool, bool) {
	var raw map[string]json.RawMessage
	if !readJSON(w, r, &raw) {
		return nil, false, false
	}
	fields := map[string]any{}
	for _, k := range companyFields {
		if v, ok := raw[k]; ok {
			var x any
			_ = json.Unmarshal(v, &x) // raw is valid JSON
			fields[k] = x
		}
	}
	name, isString := fields["company_name"].(string)
	_, present := fields["company_name"]
	if (creating || present) && (!isString || strings.TrimSpace(name) == "") {
		writeMessage(w, http.StatusBadRequest, "company_name is required")
		return nil, false, false
	}
	if v, ok := raw["address"]; ok {
		var a address
		if err := json.Unmarshal(v, &a); err != nil {
			writeMessage(w, http.StatusBadRequest, "Input could not be converted to a valid request: "+err.Error())
			return nil, false, false
		}
		if msg := validateAddress("Company", a); msg != "" {
			writeMessage(w, http.StatusBadRequest, msg)
			return nil, false, false
		}
	}
	var reason string
	_ = json.Unmarshal(raw["opt_in_reason"], &reason)
	return fields, reason != "", true
}

func (s *Server) handleListCompanies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, ok := pageParams(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	ids := make([]int64, 0, len(s.companies))
	for id, c := range s.companies {
		if name, _ := c.fields["company_name"].(string); q.Get("company_name") == "" || strings.EqualFold(q.Get("company_name"), name) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if q.Get("order_direction") == "DESCENDING" {
		slices.Reverse(ids)
	}
	page := []any{}
	for _, id := range ids[min(offset, len(ids)):min(offset+limit, len(ids))] {
		page = append(page, s.companies[id].render())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, listEnvelope(r, "companies", page, len(ids), limit, offset))
}

func (s *Server) handleCreateCompany(w http.ResponseWriter, r *http.Request) {
	fields, optIn, ok := decodeCompany(w, r, true)
	if !ok {
		return
	}
	s.mu.Lock()
	c := &company{id: s.nextIDLocked("company"), fields: fields, optedIn: optIn, created: s.stamp()}
	s.companies[c.id] = c
	out := c.render()
	s.mu.Unlock()
	s.notify("company.add", c.id)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleGetCompany(w http.ResponseWriter, r *http.Request) {
	serveOne(s, w, r, s.companies, "Company", (*company).render)
}

func (s *Server) handlePatchCompany(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	fields, optIn, ok := decodeCompany(w, r, false)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.companies[id]
	if c == nil {
		s.mu.Unlock()
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Company with id %d not found", id))
		return
	}
	for k, v := range fields {
		c.fields[k] = v
	}
	c.optedIn = c.optedIn || optIn
	out := c.render()
	s.mu.Unlock()
	s.notify("company.edit", id)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCountries(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for code, c := range countries {
		out[code] = c.name
	}
	writeJSON(w, http.StatusOK, map[string]any{"countries": out})
}

func (s *Server) handleProvinces(w http.ResponseWriter, r *http.Request) {
	c, ok := countries[chi.URLParam(r, "cc")]
	if !ok {
		writeMessage(w, http.StatusNotFound, "Country code "+chi.URLParam(r, "cc")+" not found: use an ISO 3166-1 alpha-3 code from /locales/countries")
		return
	}
	provinces := c.provinces
	if provinces == nil {
		provinces = map[string]string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"provinces": provinces})
}
