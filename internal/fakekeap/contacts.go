package fakekeap

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type emailAddress struct {
	Email string `json:"email"`
	Field string `json:"field"`
}

type phoneNumber struct {
	Number    string `json:"number"`
	Field     string `json:"field"`
	Type      string `json:"type"`
	Extension string `json:"extension"`
}

type address struct {
	Field       string `json:"field"`
	Line1       string `json:"line1"`
	Line2       string `json:"line2"`
	Locality    string `json:"locality"`
	Region      string `json:"region"`
	PostalCode  string `json:"postal_code"`
	ZipCode     string `json:"zip_code"`
	ZipFour     string `json:"zip_four"`
	CountryCode string `json:"country_code"`
}

func (a address) empty() bool { return a == address{Field: a.Field} }

func (a address) render() map[string]any {
	m := map[string]any{}
	for k, v := range map[string]string{"field": a.Field, "line1": a.Line1, "line2": a.Line2, "locality": a.Locality,
		"region": a.Region, "postal_code": a.PostalCode, "zip_code": a.ZipCode, "zip_four": a.ZipFour, "country_code": a.CountryCode} {
		m[k] = nullable(v)
	}
	return m
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type contact struct {
	id               int64
	scalars          map[string]any // the simple REST properties, as decoded from JSON
	emails           []emailAddress
	phones           []phoneNumber
	addresses        []address
	companyID        int64
	tags             map[int64]time.Time // tag id -> date applied
	optedIn          bool
	created, updated time.Time
	custom           map[string]any // REST v2 custom field values by field id
	v2Lists          map[string]any // REST v2 list members v1 does not carry (fax_numbers, social_accounts), as given
}

// contactScalars are the simple REST properties kept as given.
var contactScalars = []string{"given_name", "family_name", "middle_name", "preferred_name", "prefix", "suffix",
	"job_title", "website", "contact_type", "spouse_name", "time_zone", "preferred_locale", "birthday",
	"anniversary", "source_type", "owner_id", "lead_source_id"}

// fullOnly are the properties list responses leave out unless asked for in optional_properties.
var fullOnly = []string{"tag_ids", "custom_fields", "origin", "relationships"}

func (c *contact) str(key string) string { v, _ := c.scalars[key].(string); return v }

func (c *contact) email(field string) string {
	for _, e := range c.emails {
		if e.Field == field {
			return e.Email
		}
	}
	return ""
}

func (c *contact) hasEmail(email string) bool {
	return slices.ContainsFunc(c.emails, func(e emailAddress) bool { return strings.EqualFold(e.Email, email) })
}

// putField replaces the entry of list with item's field; empty removes it.
func putField[T any](list []T, item T, field func(T) string, empty bool) []T {
	list = slices.DeleteFunc(slices.Clone(list), func(x T) bool { return field(x) == field(item) })
	if !empty {
		list = append(list, item)
	}
	slices.SortFunc(list, func(a, b T) int { return strings.Compare(field(a), field(b)) })
	return list
}

// contactInput is a create, patch or upsert body; nil members were absent.
type contactInput struct {
	scalars         map[string]any
	emails          *[]emailAddress
	phones          *[]phoneNumber
	addresses       *[]address
	companyID       *int64
	optInReason     string
	duplicateOption string
}

func decodeContactInput(w http.ResponseWriter, r *http.Request) (contactInput, bool) {
	var raw map[string]json.RawMessage
	if !readJSON(w, r, &raw) {
		return contactInput{}, false
	}
	in := contactInput{scalars: map[string]any{}}
	var err error
	for _, k := range contactScalars {
		if v, ok := raw[k]; ok {
			var x any
			err = errors.Join(err, json.Unmarshal(v, &x))
			in.scalars[k] = x
		}
	}
	decode := func(key string, into any) bool {
		v, ok := raw[key]
		if ok {
			err = errors.Join(err, json.Unmarshal(v, into))
		}
		return ok
	}
	if e := new([]emailAddress); decode("email_addresses", e) {
		in.emails = e
	}
	if p := new([]phoneNumber); decode("phone_numbers", p) {
		in.phones = p
	}
	if a := new([]address); decode("addresses", a) {
		in.addresses = a
	}
	var company struct {
		ID int64 `json:"id"`
	}
	if decode("company", &company) {
		in.companyID = &company.ID
	}
	decode("opt_in_reason", &in.optInReason)
	decode("duplicate_option", &in.duplicateOption)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Input could not be converted to a valid request: "+err.Error())
		return contactInput{}, false
	}
	return in, true
}

// validateContactLocked returns what is wrong with in, or "".
func (s *Server) validateContactLocked(in contactInput, creating bool) string {
	for k, v := range in.scalars {
		_, isNumber := v.(float64)
		_, isString := v.(string)
		numeric := k == "owner_id" || k == "lead_source_id"
		if v != nil && (numeric && !isNumber || !numeric && !isString) {
			return "Invalid value for " + k
		}
	}
	reachable := false
	if in.emails != nil {
		for _, e := range *in.emails {
			if !slices.Contains([]string{"EMAIL1", "EMAIL2", "EMAIL3"}, e.Field) {
				return fmt.Sprintf("Invalid email address field %q: use EMAIL1, EMAIL2 or EMAIL3", e.Field)
			}
			if e.Email != "" && !validEmail(e.Email) {
				return "Invalid email address: " + e.Email
			}
			reachable = reachable || e.Email != ""
		}
	}
	if in.phones != nil {
		for _, p := range *in.phones {
			if !slices.Contains([]string{"PHONE1", "PHONE2", "PHONE3", "PHONE4", "PHONE5"}, p.Field) {
				return fmt.Sprintf("Invalid phone number field %q: use PHONE1 to PHONE5", p.Field)
			}
			reachable = reachable || p.Number != ""
		}
	}
	if in.addresses != nil {
		for _, a := range *in.addresses {
			if !slices.Contains([]string{"BILLING", "SHIPPING", "OTHER"}, a.Field) {
				return fmt.Sprintf("Invalid address field %q: use BILLING, SHIPPING or OTHER", a.Field)
			}
			if msg := validateAddress(a.Field, a); msg != "" {
				return msg
			}
		}
	}
	if in.companyID != nil && *in.companyID != 0 && s.companies[*in.companyID] == nil {
		return fmt.Sprintf("Company %d not found", *in.companyID)
	}
	if in.duplicateOption != "" && in.duplicateOption != "Email" && in.duplicateOption != "EmailAndName" {
		return fmt.Sprintf("Invalid duplicate_option %q: use Email or EmailAndName", in.duplicateOption)
	}
	if creating && !reachable {
		return "Contact must contain at least one email address or phone number"
	}
	return ""
}

func validEmail(e string) bool {
	local, domain, ok := strings.Cut(e, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(local+domain, " \t@<>,;")
}

// validateAddress checks ISO 3166-1 alpha-3 country and ISO 3166-2 region codes; label names the address in the message.
func validateAddress(label string, a address) string {
	if a.CountryCode == "" {
		if a.Region != "" {
			return label + " Country Code is required when Region is specified"
		}
		return ""
	}
	c, ok := countries[a.CountryCode]
	switch {
	case !ok:
		return label + " Country Code is invalid"
	case a.Region == "":
		return ""
	case c.provinces != nil:
		if _, ok := c.provinces[a.Region]; !ok {
			return label + " Region is invalid"
		}
	case !strings.HasPrefix(a.Region, c.alpha2+"-") || len(a.Region) < len(c.alpha2)+2:
		return label + " Region is invalid"
	}
	return ""
}

func (s *Server) newContactLocked(in contactInput) *contact {
	now := s.stamp()
	c := &contact{id: s.nextIDLocked("contact"), scalars: map[string]any{"source_type": "API"},
		tags: map[int64]time.Time{}, created: now}
	s.applyContactLocked(c, in)
	s.contacts[c.id] = c
	return c
}

// applyContactLocked updates c with the members present in in; lists merge by their field.
func (s *Server) applyContactLocked(c *contact, in contactInput) {
	for k, v := range in.scalars {
		c.scalars[k] = v
	}
	if in.emails != nil {
		for _, e := range *in.emails {
			c.emails = putField(c.emails, e, func(e emailAddress) string { return e.Field }, e.Email == "")
		}
	}
	if in.phones != nil {
		for _, p := range *in.phones {
			c.phones = putField(c.phones, p, func(p phoneNumber) string { return p.Field }, p.Number == "")
		}
	}
	if in.addresses != nil {
		for _, a := range *in.addresses {
			c.addresses = putField(c.addresses, a, func(a address) string { return a.Field }, a.empty())
		}
	}
	if in.companyID != nil {
		c.companyID = *in.companyID
	}
	if in.optInReason != "" {
		c.optedIn = true
	}
	c.updated = s.stamp()
}

func (s *Server) renderContactLocked(c *contact) map[string]any {
	m := map[string]any{}
	for _, k := range contactScalars {
		m[k] = c.scalars[k]
	}
	emails, phones, addresses := []any{}, []any{}, []any{}
	for _, e := range c.emails {
		emails = append(emails, map[string]any{"email": e.Email, "field": e.Field})
	}
	for _, p := range c.phones {
		phones = append(phones, map[string]any{"number": p.Number, "field": p.Field, "type": nullable(p.Type), "extension": nullable(p.Extension)})
	}
	for _, a := range c.addresses {
		addresses = append(addresses, a.render())
	}
	tagIDs := []int64{}
	for id := range c.tags {
		tagIDs = append(tagIDs, id)
	}
	slices.Sort(tagIDs)
	m["id"] = c.id
	m["email_addresses"], m["phone_numbers"], m["addresses"] = emails, phones, addresses
	m["fax_numbers"], m["social_accounts"], m["custom_fields"], m["relationships"] = []any{}, []any{}, []any{}, []any{}
	m["tag_ids"] = tagIDs
	m["company"], m["company_name"], m["origin"], m["ScoreValue"] = nil, nil, nil, nil
	if co := s.companies[c.companyID]; co != nil {
		m["company"] = map[string]any{"id": co.id, "company_name": co.fields["company_name"]}
		m["company_name"] = co.fields["company_name"]
	}
	m["email_opted_in"] = c.optedIn
	m["email_status"] = nil
	if len(c.emails) > 0 {
		m["email_status"] = map[bool]string{true: "SingleOptIn", false: "UnengagedNonMarketable"}[c.optedIn]
	}
	m["date_created"], m["last_updated"] = formatTime(c.created), formatTime(c.updated)
	return m
}

// Contact returns contact id as GET /contacts/{id} would, decoded from JSON (numbers are float64).
func (s *Server) Contact(id int64) (map[string]any, bool) {
	s.mu.Lock()
	c, ok := s.contacts[id]
	var out map[string]any
	if ok {
		out = s.renderContactLocked(c)
	}
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, _ := json.Marshal(out)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m, true
}

// SeedContacts adds n contacts with distinct emails, created and updated one
// second apart and ending a second before now; they trigger no hooks.
func (s *Server) SeedContacts(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.stamp().Add(-time.Duration(n) * time.Second)
	for i := range n {
		id := s.nextIDLocked("contact")
		at := start.Add(time.Duration(i) * time.Second)
		s.contacts[id] = &contact{
			id:      id,
			scalars: map[string]any{"given_name": fmt.Sprintf("Seed%d", id), "family_name": "Contact", "source_type": "API"},
			emails:  []emailAddress{{Email: fmt.Sprintf("contact%d@example.com", id), Field: "EMAIL1"}},
			tags:    map[int64]time.Time{},
			created: at, updated: at,
		}
	}
}

// sortedContactsLocked returns the contacts by id.
func (s *Server) sortedContactsLocked() []*contact {
	out := make([]*contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *contact) int { return cmp.Compare(a.id, b.id) })
	return out
}

var contactOrders = map[string]func(a, b *contact) int{
	"id":           func(a, b *contact) int { return cmp.Compare(a.id, b.id) },
	"date_created": func(a, b *contact) int { return a.created.Compare(b.created) },
	"last_updated": func(a, b *contact) int { return a.updated.Compare(b.updated) },
	"name": func(a, b *contact) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.str("family_name")), strings.ToLower(b.str("family_name"))),
			strings.Compare(strings.ToLower(a.str("given_name")), strings.ToLower(b.str("given_name"))))
	},
	"email": func(a, b *contact) int {
		return strings.Compare(strings.ToLower(a.email("EMAIL1")), strings.ToLower(b.email("EMAIL1")))
	},
}

func (s *Server) handleListContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, ok := pageParams(w, q)
	if !ok {
		return
	}
	order := cmp.Or(q.Get("order"), "id")
	less, ok := contactOrders[order]
	if order == "firstName" {
		less, ok = contactOrders["name"], true
	}
	if !ok {
		writeMessage(w, http.StatusBadRequest, "Invalid order "+order+": use id, date_created, last_updated, name or email")
		return
	}
	dir := cmp.Or(q.Get("order_direction"), "ASCENDING")
	if dir != "ASCENDING" && dir != "DESCENDING" {
		writeMessage(w, http.StatusBadRequest, "Invalid order_direction "+dir+": use ASCENDING or DESCENDING")
		return
	}
	var since, until time.Time
	for name, into := range map[string]*time.Time{"since": &since, "until": &until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeMessage(w, http.StatusBadRequest, "Invalid "+name+" "+v+": use an ISO 8601 date-time such as 2017-01-01T22:17:59.039Z")
				return
			}
			*into = t
		}
	}
	email, given, family := q.Get("email"), q.Get("given_name"), q.Get("family_name")
	optional := strings.Split(strings.Join(q["optional_properties"], ","), ",")

	s.mu.Lock()
	var matches []*contact
	for _, c := range s.sortedContactsLocked() {
		if email != "" && !c.hasEmail(email) ||
			given != "" && !strings.EqualFold(c.str("given_name"), given) ||
			family != "" && !strings.EqualFold(c.str("family_name"), family) ||
			!since.IsZero() && c.updated.Before(since) ||
			!until.IsZero() && c.updated.After(until) {
			continue
		}
		matches = append(matches, c)
	}
	slices.SortStableFunc(matches, less)
	if dir == "DESCENDING" {
		slices.Reverse(matches)
	}
	page := []any{}
	for _, c := range matches[min(offset, len(matches)):min(offset+limit, len(matches))] {
		m := s.renderContactLocked(c)
		for _, k := range fullOnly {
			if !slices.Contains(optional, k) {
				delete(m, k)
			}
		}
		page = append(page, m)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, listEnvelope(r, "contacts", page, len(matches), limit, offset))
}

func (s *Server) handleGetContact(w http.ResponseWriter, r *http.Request) {
	serveOne(s, w, r, s.contacts, "Contact", s.renderContactLocked)
}

func (s *Server) handleCreateContact(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeContactInput(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	if msg := s.validateContactLocked(in, true); msg != "" {
		s.mu.Unlock()
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	c := s.newContactLocked(in)
	out := s.renderContactLocked(c)
	s.mu.Unlock()
	s.notify("contact.add", c.id)
	writeJSON(w, http.StatusCreated, out)
}

// handleUpsertContact is PUT /contacts: update the duplicate found by
// duplicate_option (Email when absent), else create.
func (s *Server) handleUpsertContact(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeContactInput(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	existing := s.findDuplicateLocked(in)
	if msg := s.validateContactLocked(in, existing == nil); msg != "" {
		s.mu.Unlock()
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	status, event, c := http.StatusOK, "contact.edit", existing
	if c == nil {
		status, event, c = http.StatusCreated, "contact.add", s.newContactLocked(in)
	} else {
		s.applyContactLocked(c, in)
	}
	out := s.renderContactLocked(c)
	s.mu.Unlock()
	s.notify(event, c.id)
	writeJSON(w, status, out)
}

func (s *Server) findDuplicateLocked(in contactInput) *contact {
	if in.emails == nil {
		return nil
	}
	email := ""
	for _, e := range *in.emails {
		if e.Email != "" && (email == "" || e.Field == "EMAIL1") {
			email = e.Email
		}
	}
	if email == "" {
		return nil
	}
	given, _ := in.scalars["given_name"].(string)
	family, _ := in.scalars["family_name"].(string)
	for _, c := range s.sortedContactsLocked() {
		if c.hasEmail(email) && (in.duplicateOption != "EmailAndName" ||
			strings.EqualFold(c.str("given_name"), given) && strings.EqualFold(c.str("family_name"), family)) {
			return c
		}
	}
	return nil
}

func (s *Server) handlePatchContact(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	in, ok := decodeContactInput(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.contacts[id]
	msg := s.validateContactLocked(in, false)
	if c == nil || msg != "" {
		s.mu.Unlock()
		if c == nil {
			writeMessage(w, http.StatusNotFound, fmt.Sprintf("Contact with id %d not found", id))
		} else {
			writeMessage(w, http.StatusBadRequest, msg)
		}
		return
	}
	s.applyContactLocked(c, in)
	out := s.renderContactLocked(c)
	s.mu.Unlock()
	s.notify("contact.edit", id)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteContact(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	_, found := s.contacts[id]
	delete(s.contacts, id)
	s.mu.Unlock()
	if !found {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Contact with id %d not found", id))
		return
	}
	s.notify("contact.delete", id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListContactTags(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	limit, offset, ok := pageParams(w, r.URL.Query())
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.contacts[id]
	if c == nil {
		s.mu.Unlock()
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Contact with id %d not found", id))
		return
	}
	ids := make([]int64, 0, len(c.tags))
	for tid := range c.tags {
		ids = append(ids, tid)
	}
	slices.Sort(ids)
	page := []any{}
	for _, tid := range ids[min(offset, len(ids)):min(offset+limit, len(ids))] {
		t := s.tags[tid]
		page = append(page, map[string]any{"date_applied": formatTime(c.tags[tid]),
			"tag": map[string]any{"id": tid, "name": t.name, "category": nil}})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, listEnvelope(r, "tags", page, len(ids), limit, offset))
}

func (s *Server) handleApplyTags(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var body struct {
		TagIDs []int64 `json:"tagIds"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if len(body.TagIDs) == 0 {
		writeMessage(w, http.StatusBadRequest, "tagIds is required: pass the ids of the tags to apply")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[id]
	if c == nil {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Contact with id %d not found", id))
		return
	}
	result := map[string]string{}
	for _, tid := range body.TagIDs {
		result[strconv.FormatInt(tid, 10)] = s.applyTagLocked(c, tid)
	}
	writeJSON(w, http.StatusOK, result)
}

// applyTagLocked applies tag tid to c and returns Keap's outcome word.
func (s *Server) applyTagLocked(c *contact, tid int64) string {
	switch _, applied := c.tags[tid]; {
	case s.tags[tid] == nil:
		return "TAG_ID_NOT_FOUND"
	case applied:
		return "DUPLICATE"
	}
	c.tags[tid] = s.stamp()
	return "SUCCESS"
}

func (s *Server) handleRemoveTags(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var ids []int64
	for _, part := range strings.Split(r.URL.Query().Get("ids"), ",") {
		tid, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil {
			writeMessage(w, http.StatusBadRequest, "ids must be a comma-separated list of tag ids, such as ids=1,2")
			return
		}
		ids = append(ids, tid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[id]
	if c == nil {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Contact with id %d not found", id))
		return
	}
	for _, tid := range ids {
		delete(c.tags, tid)
	}
	w.WriteHeader(http.StatusNoContent)
}

type country struct {
	alpha2, name string
	provinces    map[string]string // nil: a region only has to carry the country's prefix
}

func provinceList(alpha2, list string) map[string]string {
	m := map[string]string{}
	for _, p := range strings.Split(list, ",") {
		code, name, _ := strings.Cut(p, ":")
		m[alpha2+"-"+code] = name
	}
	return m
}

// countries is the fake's small slice of Keap's locale data.
var countries = map[string]country{
	"USA": {"US", "United States", provinceList("US", "AL:Alabama,AK:Alaska,AZ:Arizona,AR:Arkansas,CA:California,"+
		"CO:Colorado,CT:Connecticut,DE:Delaware,DC:District of Columbia,FL:Florida,GA:Georgia,HI:Hawaii,ID:Idaho,"+
		"IL:Illinois,IN:Indiana,IA:Iowa,KS:Kansas,KY:Kentucky,LA:Louisiana,ME:Maine,MD:Maryland,MA:Massachusetts,"+
		"MI:Michigan,MN:Minnesota,MS:Mississippi,MO:Missouri,MT:Montana,NE:Nebraska,NV:Nevada,NH:New Hampshire,"+
		"NJ:New Jersey,NM:New Mexico,NY:New York,NC:North Carolina,ND:North Dakota,OH:Ohio,OK:Oklahoma,OR:Oregon,"+
		"PA:Pennsylvania,RI:Rhode Island,SC:South Carolina,SD:South Dakota,TN:Tennessee,TX:Texas,UT:Utah,"+
		"VT:Vermont,VA:Virginia,WA:Washington,WV:West Virginia,WI:Wisconsin,WY:Wyoming")},
	"CAN": {"CA", "Canada", provinceList("CA", "AB:Alberta,BC:British Columbia,MB:Manitoba,NB:New Brunswick,"+
		"NL:Newfoundland and Labrador,NS:Nova Scotia,NT:Northwest Territories,NU:Nunavut,ON:Ontario,"+
		"PE:Prince Edward Island,QC:Quebec,SK:Saskatchewan,YT:Yukon")},
	"GBR": {"GB", "United Kingdom", nil},
	"BRA": {"BR", "Brazil", nil},
	"MEX": {"MX", "Mexico", nil},
	"ESP": {"ES", "Spain", nil},
	"PRT": {"PT", "Portugal", nil},
	"DEU": {"DE", "Germany", nil},
	"FRA": {"FR", "France", nil},
	"AUS": {"AU", "Australia", nil},
}
