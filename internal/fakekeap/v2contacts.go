package fakekeap

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The REST v2 contacts, tags, companies and email statuses, over the same
// records REST v1 and XML-RPC serve.

// v2ContactFields are the properties of a v2 Contact a caller may name in fields.
var v2ContactFields = []string{"addresses", "anniversary_date", "birth_date", "company", "contact_type", "create_time",
	"custom_fields", "email_addresses", "family_name", "fax_numbers", "given_name", "id", "job_title", "leadsource_id",
	"links", "middle_name", "notes", "origin", "owner_id", "phone_numbers", "preferred_locale", "preferred_name", "prefix",
	"referral_code", "score_value", "social_accounts", "source_type", "spouse_name", "suffix", "tag_ids", "time_zone",
	"update_time", "utm_parameters", "website", "account_id", "assistant_name", "assistant_phone",
	"billing_information", "created_by", "groups", "last_updated_by"}

// v2ContactBody are the members of CreateUpdateContactRequest.
var v2ContactBody = []string{"addresses", "company", "origin", "prefix", "suffix", "website", "anniversary_date", "birth_date",
	"contact_type", "custom_fields", "email_addresses", "family_name", "fax_numbers", "given_name", "job_title",
	"leadsource_id", "middle_name", "owner_id", "phone_numbers", "preferred_locale", "preferred_name", "referral_code",
	"social_accounts", "source_type", "spouse_name", "time_zone", "utm_parameters", "assistant_name", "assistant_phone",
	"billing_information"}

// v2ContactScalars maps v2 string properties to the shared contact's keys.
var v2ContactScalars = map[string]string{"given_name": "given_name", "family_name": "family_name", "middle_name": "middle_name",
	"preferred_name": "preferred_name", "prefix": "prefix", "suffix": "suffix", "job_title": "job_title", "website": "website",
	"contact_type": "contact_type", "spouse_name": "spouse_name", "time_zone": "time_zone", "preferred_locale": "preferred_locale",
	"source_type": "source_type", "birth_date": "birthday", "anniversary_date": "anniversary", "referral_code": "referral_code",
	"assistant_name": "assistant_name", "assistant_phone": "assistant_phone", "billing_information": "billing_information"}

// v2ContactIDs maps v2 id properties (strings) to the shared contact's numeric keys.
var v2ContactIDs = map[string]string{"owner_id": "owner_id", "leadsource_id": "lead_source_id"}

var contactListParams = v2Params{list: true, fields: v2ContactFields,
	filters: map[string]v2Filter{
		"email": {"email_addresses.email", "prefix"}, "given_name": {"given_name", "prefix"}, "family_name": {"family_name", "prefix"},
		"middle_name": {"middle_name", "prefix"}, "company_id": {"company.id", "exact"}, "contact_ids": {"id", "set"},
		"ids": {"id", "set"}, "start_update_time": {"update_time", "since"}, "end_update_time": {"update_time", "until"},
		"contact_id": {"id", "number"}, "website": {"website", "prefix"}, "city": {"addresses.locality", "prefix"},
		"state": {"addresses.region", "prefix"}, "phone_number": {"phone_numbers.number", "text"},
	},
	orders: map[string]string{"id": "id", "create_time": "create_time", "email": "email_addresses.email", "update_time": "update_time"}}

func (s *Server) renderContactV2Locked(c *contact) map[string]any {
	m := map[string]any{"id": idString(c.id)}
	for v2, key := range v2ContactScalars {
		if v, ok := c.scalars[key].(string); ok {
			m[v2] = v
		}
	}
	for v2, key := range v2ContactIDs {
		if v, ok := c.scalars[key].(float64); ok && v != 0 {
			m[v2] = strconv.FormatInt(int64(v), 10)
		}
	}
	emails, phones, addresses := []any{}, []any{}, []any{}
	for _, e := range c.emails {
		status, optedIn := s.emailStatusLocked(e.Email)
		emails = append(emails, map[string]any{"email": e.Email, "field": e.Field, "is_opt_in": optedIn, "email_opt_status": status})
	}
	for _, p := range c.phones {
		phones = append(phones, compact(map[string]any{"number": p.Number, "field": p.Field, "type": p.Type, "extension": p.Extension}))
	}
	for _, a := range c.addresses {
		addresses = append(addresses, renderAddressV2(a))
	}
	m["email_addresses"], m["phone_numbers"], m["addresses"] = emails, phones, addresses
	tagIDs := []string{}
	for _, id := range sortedTagIDs(c) {
		tagIDs = append(tagIDs, idString(id))
	}
	m["tag_ids"] = tagIDs
	custom := []any{}
	for _, id := range sortedKeys(c.custom) {
		custom = append(custom, map[string]any{"id": id, "content": c.custom[id]})
	}
	m["custom_fields"] = custom
	m["fax_numbers"], m["social_accounts"] = []any{}, []any{}
	for k, v := range c.v2Lists {
		m[k] = v
	}
	if co := s.companies[c.companyID]; co != nil {
		m["company"] = compact(map[string]any{"id": idString(co.id), "company_name": co.fields["company_name"]})
	}
	m["create_time"], m["update_time"] = formatTime(c.created), formatTime(c.updated)
	return compact(m)
}

func sortedTagIDs(c *contact) []int64 {
	ids := make([]int64, 0, len(c.tags))
	for id := range c.tags {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// renderAddressV2 writes a shared address as v2 does: region is the
// region's name and region_code its ISO 3166-2 code.
func renderAddressV2(a address) map[string]any {
	m := map[string]any{"field": a.Field, "line1": a.Line1, "line2": a.Line2, "locality": a.Locality,
		"postal_code": a.PostalCode, "zip_code": a.ZipCode, "zip_four": a.ZipFour, "country_code": a.CountryCode, "region": a.Region}
	if c, ok := countries[a.CountryCode]; ok {
		m["country"] = c.name
		if name, ok := c.provinces[a.Region]; ok {
			m["region"], m["region_code"] = name, a.Region
		} else if strings.HasPrefix(a.Region, c.alpha2+"-") {
			m["region_code"] = a.Region
		}
	}
	return compact(m)
}

// decodeContactV2 turns a v2 body into the shared contactInput, with the
// custom field values and v2-only lists beside it.
func decodeContactV2(body map[string]any) (contactInput, map[string]any, map[string]any, string) {
	in := contactInput{scalars: map[string]any{}}
	var custom, lists map[string]any
	for k, v := range body {
		if key, ok := v2ContactScalars[k]; ok {
			if _, isString := v.(string); v != nil && !isString {
				return in, nil, nil, "Invalid value for " + k + ": use a string"
			}
			in.scalars[key] = v
			continue
		}
		if key, ok := v2ContactIDs[k]; ok {
			id, ok := parseIDString(v)
			if v != nil && !ok {
				return in, nil, nil, "Invalid value for " + k + ": use an id such as \"12\""
			}
			in.scalars[key] = nil
			if v != nil {
				in.scalars[key] = float64(id)
			}
			continue
		}
		var err error
		switch k {
		case "email_addresses":
			var list []struct {
				Email       string `json:"email"`
				Field       string `json:"field"`
				OptInReason string `json:"opt_in_reason"`
			}
			err = remarshal(v, &list)
			emails := []emailAddress{}
			for _, e := range list {
				emails = append(emails, emailAddress{Email: e.Email, Field: e.Field})
				if e.OptInReason != "" {
					in.optInReason = e.OptInReason
				}
			}
			in.emails = &emails
		case "phone_numbers":
			phones := []phoneNumber{}
			err = remarshal(v, &phones)
			in.phones = &phones
		case "addresses":
			var list []struct {
				address
				RegionCode string `json:"region_code"`
			}
			err = remarshal(v, &list)
			addresses := []address{}
			for _, a := range list {
				addresses = append(addresses, v2AddressIn(a.address, a.RegionCode))
			}
			in.addresses = &addresses
		case "company":
			var co struct {
				ID any `json:"id"`
			}
			err = remarshal(v, &co)
			id, ok := parseIDString(co.ID)
			if err == nil && v != nil && !ok {
				return in, nil, nil, "Invalid company: use {\"id\": \"<company id>\"}"
			}
			in.companyID = &id
		case "custom_fields":
			var list []struct {
				ID      any `json:"id"`
				Content any `json:"content"`
			}
			err = remarshal(v, &list)
			custom = map[string]any{}
			for _, f := range list {
				custom[fmt.Sprint(f.ID)] = f.Content
			}
		case "fax_numbers", "social_accounts":
			if lists == nil {
				lists = map[string]any{}
			}
			lists[k] = v
		}
		if err != nil {
			return in, nil, nil, "Invalid value for " + k + ": " + err.Error()
		}
	}
	return in, custom, lists, ""
}

// v2AddressIn reads a v2 address into the shared one, whose region is the
// ISO 3166-2 code: region_code, or a region given by name.
func v2AddressIn(a address, code string) address {
	if code != "" {
		a.Region = code
	} else if c, ok := countries[a.CountryCode]; ok {
		for k, name := range c.provinces {
			if strings.EqualFold(name, a.Region) {
				a.Region = k
			}
		}
	}
	return a
}

// remarshal decodes v (decoded JSON) into into.
func remarshal(v, into any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func (s *Server) v2ListContacts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	params := s.contactListParamsLocked()
	s.mu.Unlock()
	q, ok := parseV2Query(w, r, params)
	if !ok {
		return
	}
	s.mu.Lock()
	var recs []map[string]any
	for _, c := range s.sortedContactsLocked() {
		rec := jsonCopy(s.renderContactV2Locked(c))
		rec["_custom"] = jsonCopy(s.customValuesLocked(c))
		recs = append(recs, rec)
	}
	s.mu.Unlock()
	page, next := q.page(recs, params)
	for i, rec := range page {
		page[i] = pick(public(rec.(map[string]any)), q.fields)
	}
	writeList(w, "contacts", page, next)
}

func (s *Server) v2GetContact(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "contact_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, v2Params{fields: v2ContactFields})
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.contacts[id]
	var out map[string]any
	if c != nil {
		out = s.renderContactV2Locked(c)
	}
	s.mu.Unlock()
	if c == nil {
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", id)
		return
	}
	writeJSON(w, http.StatusOK, pick(out, q.fields))
}

func (s *Server) v2CreateContact(w http.ResponseWriter, r *http.Request) {
	q, ok := parseV2Query(w, r, v2Params{fields: v2ContactFields, extra: map[string]string{"duplicate_option": "enum:Email|EmailAndName|EmailAndNameAndCompany"}})
	if !ok {
		return
	}
	body, ok := readV2Body(w, r, v2ContactBody)
	if !ok {
		return
	}
	in, custom, lists, msg := decodeContactV2(body)
	if msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	dup := r.URL.Query().Get("duplicate_option")
	s.mu.Lock()
	var existing *contact
	if dup != "" {
		existing = s.findDuplicateV2Locked(in, dup)
	}
	if msg := s.validateContactLocked(in, existing == nil); msg != "" {
		s.mu.Unlock()
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	status, event, c := http.StatusCreated, "contact.add", existing
	if c == nil {
		c = s.newContactLocked(in)
	} else {
		status, event = http.StatusOK, "contact.edit"
		s.applyContactLocked(c, in)
	}
	s.applyContactV2ExtrasLocked(c, in, custom, lists)
	out := s.renderContactV2Locked(c)
	s.mu.Unlock()
	s.notify(event, c.id)
	writeJSON(w, status, pick(out, q.fields))
}

// findDuplicateV2Locked finds the contact a create with duplicate_option updates.
func (s *Server) findDuplicateV2Locked(in contactInput, option string) *contact {
	if in.emails == nil {
		return nil
	}
	email := ""
	for _, e := range *in.emails {
		if e.Email != "" && (email == "" || e.Field == "EMAIL1") {
			email = e.Email
		}
	}
	given, _ := in.scalars["given_name"].(string)
	family, _ := in.scalars["family_name"].(string)
	for _, c := range s.sortedContactsLocked() {
		if email == "" || !c.hasEmail(email) {
			continue
		}
		if option != "Email" && !(strings.EqualFold(c.str("given_name"), given) && strings.EqualFold(c.str("family_name"), family)) {
			continue
		}
		if option == "EmailAndNameAndCompany" && (in.companyID == nil || *in.companyID != c.companyID) {
			continue
		}
		return c
	}
	return nil
}

// applyContactV2ExtrasLocked stores what only v2 carries and the opt-in of the emails given with a reason.
func (s *Server) applyContactV2ExtrasLocked(c *contact, in contactInput, custom, lists map[string]any) {
	if custom != nil {
		if c.custom == nil {
			c.custom = map[string]any{}
		}
		for k, v := range custom {
			c.custom[k] = v
		}
	}
	if lists != nil {
		if c.v2Lists == nil {
			c.v2Lists = map[string]any{}
		}
		for k, v := range lists {
			c.v2Lists[k] = v
		}
	}
	if in.optInReason != "" && in.emails != nil {
		for _, e := range *in.emails {
			if e.Email != "" {
				s.emailOpt[strings.ToLower(e.Email)] = "SINGLE_OPT_IN"
			}
		}
	}
}

func (s *Server) v2PatchContact(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "contact_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, v2Params{fields: v2ContactFields, mask: v2ContactFields})
	if !ok {
		return
	}
	body, ok := readV2Body(w, r, v2ContactBody)
	if !ok {
		return
	}
	in, custom, lists, msg := decodeContactV2(masked(body, q.mask))
	if msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	s.mu.Lock()
	c := s.contacts[id]
	if c == nil {
		s.mu.Unlock()
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", id)
		return
	}
	if msg := s.validateContactLocked(in, false); msg != "" {
		s.mu.Unlock()
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	// A v2 PATCH replaces a list property as a whole.
	if in.emails != nil {
		c.emails = nil
	}
	if in.phones != nil {
		c.phones = nil
	}
	if in.addresses != nil {
		c.addresses = nil
	}
	if custom != nil {
		c.custom = nil
	}
	s.applyContactLocked(c, in)
	s.applyContactV2ExtrasLocked(c, in, custom, lists)
	out := s.renderContactV2Locked(c)
	s.mu.Unlock()
	s.notify("contact.edit", id)
	writeJSON(w, http.StatusOK, pick(out, q.fields))
}

func (s *Server) v2DeleteContact(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "contact_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	_, found := s.contacts[id]
	delete(s.contacts, id)
	s.mu.Unlock()
	if !found {
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", id)
		return
	}
	s.notify("contact.delete", id)
	w.WriteHeader(http.StatusNoContent)
}

// v2MergeContacts merges duplicate_contact_id into contact_id: the kept
// contact's empty properties take the duplicate's, the tags and custom
// values join, the duplicate's notes, tasks, opportunities, orders and
// subscriptions move over, and the duplicate is deleted.
func (s *Server) v2MergeContacts(w http.ResponseWriter, r *http.Request) {
	q, ok := parseV2Query(w, r, v2Params{fields: v2ContactFields})
	if !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"contact_id", "duplicate_contact_id"})
	if !ok {
		return
	}
	keepID, ok1 := parseIDString(body["contact_id"])
	dupID, ok2 := parseIDString(body["duplicate_contact_id"])
	if !ok1 || !ok2 || keepID == dupID {
		writeV2Error(w, http.StatusBadRequest, "contact_id and duplicate_contact_id are required: the ids of two different contacts, as strings")
		return
	}
	s.mu.Lock()
	keep, dup := s.contacts[keepID], s.contacts[dupID]
	if keep == nil || dup == nil {
		s.mu.Unlock()
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", cmp.Or(map[bool]int64{true: keepID}[keep == nil], dupID))
		return
	}
	for k, v := range dup.scalars {
		if keep.scalars[k] == nil || keep.scalars[k] == "" {
			keep.scalars[k] = v
		}
	}
	for _, e := range dup.emails {
		if keep.email(e.Field) == "" {
			keep.emails = putField(keep.emails, e, func(e emailAddress) string { return e.Field }, false)
		}
	}
	for _, p := range dup.phones {
		if !slices.ContainsFunc(keep.phones, func(x phoneNumber) bool { return x.Field == p.Field }) {
			keep.phones = putField(keep.phones, p, func(p phoneNumber) string { return p.Field }, false)
		}
	}
	for _, a := range dup.addresses {
		if !slices.ContainsFunc(keep.addresses, func(x address) bool { return x.Field == a.Field }) {
			keep.addresses = putField(keep.addresses, a, func(a address) string { return a.Field }, false)
		}
	}
	for tid, at := range dup.tags {
		if _, ok := keep.tags[tid]; !ok {
			keep.tags[tid] = at
		}
	}
	for k, v := range dup.custom {
		if keep.custom == nil {
			keep.custom = map[string]any{}
		}
		if _, ok := keep.custom[k]; !ok {
			keep.custom[k] = v
		}
	}
	if keep.companyID == 0 {
		keep.companyID = dup.companyID
	}
	keep.optedIn = keep.optedIn || dup.optedIn
	keep.updated = s.stamp()
	s.moveContactRecordsLocked(dupID, keepID)
	delete(s.contacts, dupID)
	out := s.renderContactV2Locked(keep)
	s.mu.Unlock()
	s.notify("contact.edit", keepID)
	s.notify("contact.delete", dupID)
	writeJSON(w, http.StatusOK, pick(out, q.fields))
}

// tagFilters are the filters of GET /tags.
var tagListParams = v2Params{list: true,
	filters: map[string]v2Filter{"name": {"name", "prefix"}, "description": {"description", "prefix"}, "category_id": {"category.id", "exact"},
		"tag_ids": {"id", "set"}, "since_create_time": {"create_time", "since"}, "until_create_time": {"create_time", "until"},
		"since_update_time": {"update_time", "since"}, "until_update_time": {"update_time", "until"}},
	orders: map[string]string{"name": "name", "create_time": "create_time", "update_time": "update_time"}}

func renderTagV2(t *tag) map[string]any {
	m := map[string]any{"id": idString(t.id), "name": t.name, "description": t.description}
	if t.categoryID != 0 {
		m["category"] = map[string]any{"id": idString(t.categoryID)}
	}
	if !t.created.IsZero() {
		m["create_time"], m["update_time"] = formatTime(t.created), formatTime(cmp.Or(t.updated, t.created))
	}
	return compact(m)
}

func (s *Server) v2ListTags(w http.ResponseWriter, r *http.Request) {
	q, ok := parseV2Query(w, r, tagListParams)
	if !ok {
		return
	}
	s.mu.Lock()
	var recs []map[string]any
	for _, t := range s.tags {
		recs = append(recs, jsonCopy(renderTagV2(t)))
	}
	s.mu.Unlock()
	page, next := q.page(recs, tagListParams)
	writeList(w, "tags", page, next)
}

// decodeTagV2 reads a CreateUpdateTagRequest into t.
func decodeTagV2(body map[string]any, t *tag) string {
	for k, v := range body {
		switch k {
		case "name", "description":
			str, ok := v.(string)
			if v != nil && !ok {
				return "Invalid value for " + k + ": use a string"
			}
			if k == "name" {
				t.name = str
			} else {
				t.description = str
			}
		case "category":
			t.categoryID = 0
			if v == nil {
				continue
			}
			var ref struct {
				ID any `json:"id"`
			}
			_ = remarshal(v, &ref)
			id, ok := parseIDString(ref.ID)
			if !ok {
				return "Invalid category: use {\"id\": \"<tag category id>\"}"
			}
			t.categoryID = id
		}
	}
	if strings.TrimSpace(t.name) == "" {
		return "name is required"
	}
	return ""
}

func (s *Server) v2CreateTag(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"name", "description", "category"})
	if !ok {
		return
	}
	t := &tag{created: s.stamp(), updated: s.stamp()}
	if msg := decodeTagV2(body, t); msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	s.mu.Lock()
	t.id = s.nextIDLocked("tag")
	s.tags[t.id] = t
	out := renderTagV2(t)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// tagFor reads the tag_id path parameter and finds the tag, or writes the error.
func (s *Server) tagForLocked(w http.ResponseWriter, id int64) *tag {
	t := s.tags[id]
	if t == nil {
		writeV2Error(w, http.StatusNotFound, "Tag %d not found", id)
	}
	return t
}

func (s *Server) v2GetTag(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "tag_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tagForLocked(w, id); t != nil {
		writeJSON(w, http.StatusOK, renderTagV2(t))
	}
}

func (s *Server) v2PatchTag(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "tag_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, v2Params{mask: []string{"name", "description", "category"}})
	if !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"name", "description", "category"})
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tagForLocked(w, id)
	if t == nil {
		return
	}
	changed := *t
	if msg := decodeTagV2(masked(body, q.mask), &changed); msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	changed.updated = s.stamp()
	*t = changed
	writeJSON(w, http.StatusOK, renderTagV2(t))
}

func (s *Server) v2DeleteTag(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "tag_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tagForLocked(w, id) == nil {
		return
	}
	delete(s.tags, id)
	for _, c := range s.contacts {
		delete(c.tags, id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// tagContacts reads an ApplyRemoveTagRequest.
func tagContacts(w http.ResponseWriter, r *http.Request) ([]int64, bool) {
	body, ok := readV2Body(w, r, []string{"contact_ids"})
	if !ok {
		return nil, false
	}
	list, _ := body["contact_ids"].([]any)
	if len(list) == 0 {
		writeV2Error(w, http.StatusBadRequest, "contact_ids is required: the ids of the contacts, as strings")
		return nil, false
	}
	var ids []int64
	for _, v := range list {
		id, ok := parseIDString(v)
		if !ok {
			writeV2Error(w, http.StatusBadRequest, "Invalid contact id %v in contact_ids: use ids such as \"12\"", v)
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// v2ApplyTags applies a tag to contacts and answers each contact's outcome.
func (s *Server) v2ApplyTags(w http.ResponseWriter, r *http.Request) {
	tid, ok := v2ID(w, r, "tag_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	ids, ok := tagContacts(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.tagForLocked(w, tid) == nil {
		s.mu.Unlock()
		return
	}
	results := map[string]string{}
	for _, id := range ids {
		c := s.contacts[id]
		if c == nil {
			results[idString(id)] = "CONTACT_NOT_FOUND"
			continue
		}
		results[idString(id)] = s.applyTagLocked(c, tid)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}

func (s *Server) v2RemoveTags(w http.ResponseWriter, r *http.Request) {
	tid, ok := v2ID(w, r, "tag_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	ids, ok := tagContacts(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tagForLocked(w, tid) == nil {
		return
	}
	for _, id := range ids {
		if c := s.contacts[id]; c != nil {
			delete(c.tags, tid)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

var contactTagParams = v2Params{list: true,
	filters: map[string]v2Filter{"name": {"tag.name", "prefix"}, "description": {"tag.description", "prefix"}, "category_id": {"tag.category.id", "exact"},
		"since_applied_time": {"applied_time", "since"}, "until_applied_time": {"applied_time", "until"},
		"since_create_time": {"tag.create_time", "since"}, "until_create_time": {"tag.create_time", "until"}},
	orders: map[string]string{"name": "tag.name", "create_time": "tag.create_time", "update_time": "tag.update_time",
		"applied_time": "applied_time", "category_id": "tag.category.id"}}

func (s *Server) v2ListContactTags(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "contact_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, contactTagParams)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.contacts[id]
	var recs []map[string]any
	if c != nil {
		for _, tid := range sortedTagIDs(c) {
			if t := s.tags[tid]; t != nil {
				recs = append(recs, jsonCopy(map[string]any{"id": idString(tid), "tag": renderTagV2(t), "applied_time": formatTime(c.tags[tid])}))
			}
		}
	}
	s.mu.Unlock()
	if c == nil {
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", id)
		return
	}
	page, next := q.page(recs, contactTagParams)
	for _, rec := range page {
		delete(rec.(map[string]any), "id") // only for the stable order
	}
	writeList(w, "tags", page, next)
}

var taggedContactParams = v2Params{list: true,
	filters: map[string]v2Filter{"given_name": {"given_name", "prefix"}, "family_name": {"family_name", "prefix"}, "email": {"email", "prefix"},
		"since_applied_time": {"applied_time", "since"}, "until_applied_time": {"applied_time", "until"}},
	orders: map[string]string{"given_name": "given_name", "family_name": "family_name", "email": "email", "applied_time": "applied_time"}}

func (s *Server) v2ListTaggedContacts(w http.ResponseWriter, r *http.Request) {
	tid, ok := v2ID(w, r, "tag_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, taggedContactParams)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.tagForLocked(w, tid) == nil {
		s.mu.Unlock()
		return
	}
	var recs []map[string]any
	for _, c := range s.sortedContactsLocked() {
		if at, ok := c.tags[tid]; ok {
			recs = append(recs, jsonCopy(compact(map[string]any{"id": idString(c.id), "email": c.email("EMAIL1"),
				"given_name": c.str("given_name"), "family_name": c.str("family_name"), "applied_time": formatTime(at)})))
		}
	}
	s.mu.Unlock()
	page, next := q.page(recs, taggedContactParams)
	writeList(w, "contacts", page, next)
}

// The companies.

var v2CompanyBody = []string{"address", "notes", "website", "suffix", "title", "company_name", "custom_fields", "email_address",
	"fax_number", "phone_number", "anniversary_date", "assistant_name", "assistant_phone", "billing_information", "birth_date",
	"contact_type", "first_name", "job_title", "last_name", "middle_name", "preferred_name", "owner_id", "referral_code", "spouse_name"}

// v2CompanyOptional are the properties Keap leaves out of a company unless fields names them.
var v2CompanyOptional = []string{"notes", "fax_number", "address", "email_address", "phone_number", "update_time", "create_time", "custom_fields"}

var companyListParams = v2Params{list: true, fields: v2CompanyOptional,
	filters: map[string]v2Filter{"company_name": {"company_name", "text"}, "name": {"company_name", "prefix"}, "email": {"email_address.email", "text"},
		"city": {"address.locality", "prefix"}, "state": {"address.region", "prefix"}, "since_time": {"update_time", "since"},
		"until_time": {"update_time", "until"}, "company_id": {"id", "number"}},
	orders: map[string]string{"id": "id", "create_time": "create_time", "name": "company_name", "email": "email_address.email"}}

func (s *Server) renderCompanyV2Locked(c *company) map[string]any {
	m := map[string]any{"id": idString(c.id), "custom_fields": []any{}}
	for k, v := range c.fields {
		if !slices.Contains([]string{"email_address", "phone_number", "fax_number", "address", "custom_fields"}, k) {
			m[k] = v
		}
	}
	if e, _ := c.fields["email_address"].(string); e != "" {
		status, optedIn := s.emailStatusLocked(e)
		m["email_address"] = map[string]any{"email": e, "field": "EMAIL1", "is_opt_in": optedIn, "email_opt_status": status}
	}
	if p, ok := c.fields["phone_number"].(map[string]any); ok {
		m["phone_number"] = compact(map[string]any{"number": p["number"], "extension": p["extension"], "type": p["type"], "field": "PHONE1"})
	}
	if p, ok := c.fields["fax_number"].(map[string]any); ok {
		m["fax_number"] = compact(map[string]any{"number": p["number"], "type": p["type"], "field": "FAX1"})
	}
	if a, ok := c.fields["address"].(map[string]any); ok {
		var addr address
		_ = remarshal(a, &addr)
		m["address"] = renderAddressV2(addr)
	}
	if cf, ok := c.fields["custom_fields"].([]any); ok {
		m["custom_fields"] = cf
	}
	m["create_time"], m["update_time"] = formatTime(c.created), formatTime(cmp.Or(c.updated, c.created))
	return compact(m)
}

// decodeCompanyV2 turns a v2 company body into the shared (v1-shaped) fields.
func decodeCompanyV2(body map[string]any) (map[string]any, bool, string) {
	fields := map[string]any{}
	optIn := false
	for k, v := range body {
		switch k {
		case "email_address":
			var e struct {
				Email       string `json:"email"`
				OptInReason string `json:"opt_in_reason"`
			}
			if err := remarshal(v, &e); err != nil {
				return nil, false, "Invalid email_address: " + err.Error()
			}
			if e.Email != "" && !validEmail(e.Email) {
				return nil, false, "Invalid email address: " + e.Email
			}
			fields[k] = nullable(e.Email)
			optIn = e.OptInReason != ""
		case "phone_number", "fax_number":
			var p map[string]any
			if err := remarshal(v, &p); err != nil {
				return nil, false, "Invalid " + k + ": " + err.Error()
			}
			delete(p, "field")
			delete(p, "number_e164")
			fields[k] = p
		case "address":
			var a struct {
				address
				RegionCode string `json:"region_code"`
			}
			if err := remarshal(v, &a); err != nil {
				return nil, false, "Invalid address: " + err.Error()
			}
			addr := v2AddressIn(a.address, a.RegionCode)
			if msg := validateAddress("Company", addr); msg != "" {
				return nil, false, msg
			}
			fields[k] = compact(addr.render())
		default:
			fields[k] = v
		}
	}
	if name, present := fields["company_name"]; present {
		if str, ok := name.(string); !ok || strings.TrimSpace(str) == "" {
			return nil, false, "company_name must not be empty"
		}
	}
	return fields, optIn, ""
}

func (s *Server) v2ListCompanies(w http.ResponseWriter, r *http.Request) {
	q, ok := parseV2Query(w, r, companyListParams)
	if !ok {
		return
	}
	s.mu.Lock()
	var recs []map[string]any
	for _, c := range s.companies {
		recs = append(recs, jsonCopy(s.renderCompanyV2Locked(c)))
	}
	s.mu.Unlock()
	page, next := q.page(recs, companyListParams)
	for _, rec := range page {
		omit(rec.(map[string]any), v2CompanyOptional, q.fields)
	}
	writeList(w, "companies", page, next)
}

func (s *Server) v2CreateCompany(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	body, ok := readV2Body(w, r, v2CompanyBody)
	if !ok {
		return
	}
	fields, optIn, msg := decodeCompanyV2(body)
	if msg == "" && fields["company_name"] == nil {
		msg = "company_name is required"
	}
	if msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	s.mu.Lock()
	c := &company{id: s.nextIDLocked("company"), fields: fields, optedIn: optIn, created: s.stamp(), updated: s.stamp()}
	s.companies[c.id] = c
	if e, _ := fields["email_address"].(string); optIn && e != "" {
		s.emailOpt[strings.ToLower(e)] = "SINGLE_OPT_IN"
	}
	out := s.renderCompanyV2Locked(c)
	s.mu.Unlock()
	s.notify("company.add", c.id)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) v2GetCompany(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "company_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, v2Params{fields: []string{"address", "custom_fields", "email_address", "fax_number", "phone_number", "website", "notes"}})
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.companies[id]
	var out map[string]any
	if c != nil {
		out = s.renderCompanyV2Locked(c)
	}
	s.mu.Unlock()
	if c == nil {
		writeV2Error(w, http.StatusNotFound, "Company %d not found", id)
		return
	}
	writeJSON(w, http.StatusOK, omit(out, v2CompanyOptional, q.fields))
}

func (s *Server) v2PatchCompany(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "company_id")
	if !ok {
		return
	}
	q, ok := parseV2Query(w, r, v2Params{mask: append([]string{"id", "create_time", "update_time"}, v2CompanyBody...)})
	if !ok {
		return
	}
	body, ok := readV2Body(w, r, v2CompanyBody)
	if !ok {
		return
	}
	fields, optIn, msg := decodeCompanyV2(masked(body, q.mask))
	if msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	s.mu.Lock()
	c := s.companies[id]
	if c == nil {
		s.mu.Unlock()
		writeV2Error(w, http.StatusNotFound, "Company %d not found", id)
		return
	}
	for k, v := range fields {
		c.fields[k] = v
	}
	c.optedIn = c.optedIn || optIn
	c.updated = s.stamp()
	out := s.renderCompanyV2Locked(c)
	s.mu.Unlock()
	s.notify("company.edit", id)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) v2DeleteCompany(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "company_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	_, found := s.companies[id]
	delete(s.companies, id)
	for _, c := range s.contacts {
		if c.companyID == id {
			c.companyID = 0
		}
	}
	s.mu.Unlock()
	if !found {
		writeV2Error(w, http.StatusNotFound, "Company %d not found", id)
		return
	}
	s.notify("company.delete", id)
	w.WriteHeader(http.StatusNoContent)
}

// Email opt-in status, per address as at Keap.

// marketable are the statuses whose address may be sent marketing.
var marketable = []string{"UNENGAGED_MARKETABLE", "SINGLE_OPT_IN", "DOUBLE_OPT_IN", "CONFIRMED"}

// emailStatusLocked is an address's opt status: what REST v2 or XML-RPC set,
// else SINGLE_OPT_IN when a contact holding it opted in, else
// UNENGAGED_NON_MARKETABLE (as REST v1 reports such a contact).
func (s *Server) emailStatusLocked(email string) (status string, optedIn bool) {
	status, ok := s.emailOpt[strings.ToLower(email)]
	if !ok {
		status = "UNENGAGED_NON_MARKETABLE"
		for _, c := range s.contacts {
			if c.optedIn && c.hasEmail(email) {
				status = "SINGLE_OPT_IN"
				break
			}
		}
	}
	return status, slices.Contains(marketable, status)
}

// knownEmailLocked reports whether a contact or company holds email.
func (s *Server) knownEmailLocked(email string) bool {
	if _, ok := s.emailOpt[strings.ToLower(email)]; ok {
		return true
	}
	for _, c := range s.contacts {
		if c.hasEmail(email) {
			return true
		}
	}
	for _, c := range s.companies {
		if e, _ := c.fields["email_address"].(string); strings.EqualFold(e, email) {
			return true
		}
	}
	return false
}

// SetEmailOptIn opts an address in (with a reason) or out, as Keap's
// REST v2 PATCH /emailAddresses/{email}/status and XML-RPC
// APIEmailService.optIn/optOut do, and reports whether the status changed.
// Opting in only moves an address out of the statuses a person may leave by
// opting in again; an unsubscribed or bounced address stays as it is.
func (s *Server) SetEmailOptIn(email string, optIn bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setEmailOptLocked(email, optIn)
}

func (s *Server) setEmailOptLocked(email string, optIn bool) bool {
	old, _ := s.emailStatusLocked(email)
	next := "MANUAL"
	if optIn {
		if !slices.Contains([]string{"UNENGAGED_MARKETABLE", "UNENGAGED_NON_MARKETABLE", "NON_MARKETABLE", "MANUAL"}, old) {
			return false
		}
		next = "SINGLE_OPT_IN"
	}
	s.emailOpt[strings.ToLower(email)] = next
	for _, c := range s.contacts {
		if c.hasEmail(email) {
			c.optedIn = optIn
		}
	}
	return old != next
}

// EmailStatus returns an address's opt status as REST v2 reports it.
func (s *Server) EmailStatus(email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, _ := s.emailStatusLocked(email)
	return status
}

func (s *Server) renderEmailStatusLocked(email string) map[string]any {
	status, optedIn := s.emailStatusLocked(email)
	created := time.Time{}
	for _, c := range s.contacts {
		if c.hasEmail(email) && (created.IsZero() || c.created.Before(created)) {
			created = c.created
		}
	}
	if created.IsZero() {
		created = s.stamp()
	}
	return map[string]any{"email": strings.ToLower(email), "opted_in": optedIn, "status": status, "create_time": formatTime(created)}
}

var emailStatusParams = v2Params{list: true,
	filters: map[string]v2Filter{"emails": {"email", "set"}, "statuses": {"status", "set"}, "opted_in": {"opted_in", "bool"}},
	orders:  map[string]string{"email": "email", "status": "status", "create_time": "create_time"}}

func (s *Server) v2ListEmailStatuses(w http.ResponseWriter, r *http.Request) {
	q, ok := parseV2Query(w, r, emailStatusParams)
	if !ok {
		return
	}
	s.mu.Lock()
	seen := map[string]bool{}
	var recs []map[string]any
	add := func(e string) {
		if e != "" && !seen[strings.ToLower(e)] {
			seen[strings.ToLower(e)] = true
			rec := s.renderEmailStatusLocked(e)
			rec["id"] = rec["email"] // only for the stable order
			recs = append(recs, rec)
		}
	}
	for _, c := range s.sortedContactsLocked() {
		for _, e := range c.emails {
			add(e.Email)
		}
	}
	for _, e := range sortedKeys(s.emailOpt) {
		add(e)
	}
	s.mu.Unlock()
	page, next := q.page(recs, emailStatusParams)
	for _, rec := range page {
		delete(rec.(map[string]any), "id")
	}
	writeList(w, "email_addresses", page, next)
}

func (s *Server) v2GetEmailStatus(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	email := chiParam(r, "email")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownEmailLocked(email) {
		writeV2Error(w, http.StatusNotFound, "Email address %s not found", email)
		return
	}
	writeJSON(w, http.StatusOK, s.renderEmailStatusLocked(email))
}

func (s *Server) v2PatchEmailStatus(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	email := chiParam(r, "email")
	body, ok := readV2Body(w, r, []string{"opted_in", "reason"})
	if !ok {
		return
	}
	optIn, isBool := body["opted_in"].(bool)
	reason, _ := body["reason"].(string)
	if !isBool || strings.TrimSpace(reason) == "" {
		writeV2Error(w, http.StatusBadRequest, "opted_in (true or false) and reason (why the status changes) are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownEmailLocked(email) {
		writeV2Error(w, http.StatusNotFound, "Email address %s not found", email)
		return
	}
	s.setEmailOptLocked(email, optIn)
	writeJSON(w, http.StatusOK, s.renderEmailStatusLocked(email))
}
