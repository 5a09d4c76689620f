package fakekeap

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The contacts' custom fields: their model (GET /contacts/model), as
// AddContactCustomField declares them, and filtering the contact list by
// them, as Keap's v2 document describes: by field_name, case-insensitive, a
// standard filter field taking precedence; == with an optional trailing * for
// text-like fields, == for yes/no and drilldown, ==, >, <, >= and <= for
// numbers and dates, and == matching one option of a multi-select.

// customField is one custom field of the contacts.
type customField struct {
	id                         int64
	fieldName, label, dataType string
}

// customFilterKinds says how a custom field of a type is filtered (see v2Filter).
var customFilterKinds = map[string]string{
	"CURRENCY": "number", "DECIMAL_NUMBER": "number", "PERCENT": "number", "WHOLE_NUMBER": "number", "YEAR": "number",
	"MONTH": "number", "DAY_OF_WEEK": "number", "USER": "number",
	"DATE": "time", "DATE_TIME": "time",
	"YES_NO": "text", "DRILLDOWN": "text",
	"LIST_BOX": "text", "USER_LIST_BOX": "text",
}

// customFieldTypes are the field types Keap's document lists.
var customFieldTypes = []string{"CURRENCY", "DATE", "DATE_TIME", "DAY_OF_WEEK", "DECIMAL_NUMBER", "DRILLDOWN", "DROPDOWN", "EMAIL",
	"LIST_BOX", "MONTH", "NAME", "PERCENT", "PHONE_NUMBER", "RADIO", "SOCIAL_SECURITY_NUMBER", "STATE", "TEXT", "TEXT_AREA", "USER",
	"USER_LIST_BOX", "WEBSITE", "WHOLE_NUMBER", "YEAR", "YES_NO"}

// AddContactCustomField declares a custom field of the contacts, as Keap's
// settings do, and returns its id. fieldType is one of Keap's v2 field types
// (TEXT, WHOLE_NUMBER, DATE, YES_NO, LIST_BOX, …); it panics on another, a
// mistake in the test that calls it.
func (s *Server) AddContactCustomField(fieldName, label, fieldType string) int64 {
	if !slices.Contains(customFieldTypes, fieldType) {
		panic("fakekeap: unknown custom field type " + fieldType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := customField{id: s.nextIDLocked("custom_field"), fieldName: fieldName, label: label, dataType: fieldType}
	s.contactCustom = append(s.contactCustom, f)
	return f.id
}

func (s *Server) v2ContactModel(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	fields := []any{}
	for _, f := range s.contactCustom {
		fields = append(fields, map[string]any{"id": idString(f.id), "field_name": f.fieldName, "label": f.label,
			"field_type": f.dataType, "record_type": "CONTACT", "options": []any{}})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"custom_fields": fields, "optional_properties": []string{"custom_fields", "fax_numbers",
		"social_accounts", "links", "notes", "origin", "utm_parameters", "referral_code", "score_value"}})
}

// contactListParamsLocked is contactListParams with the custom fields' filters.
func (s *Server) contactListParamsLocked() v2Params {
	if len(s.contactCustom) == 0 {
		return contactListParams
	}
	p := contactListParams
	p.filters = map[string]v2Filter{}
	for k, v := range contactListParams.filters {
		p.filters[k] = v
	}
	for _, f := range s.contactCustom {
		name := strings.ToLower(f.fieldName)
		if _, standard := p.filters[name]; standard {
			continue
		}
		kind := customFilterKinds[f.dataType]
		if kind == "" {
			kind = "prefix"
		}
		p.filters[name] = v2Filter{path: "_custom." + name, kind: kind}
	}
	return p
}

// customValuesLocked are c's custom values by lower-case field name, for
// filtering; a multi-select's options are a list, so == matches one of them.
func (s *Server) customValuesLocked(c *contact) map[string]any {
	out := map[string]any{}
	for _, f := range s.contactCustom {
		v, ok := c.custom[idString(f.id)]
		if !ok || v == nil {
			continue
		}
		if f.dataType == "LIST_BOX" || f.dataType == "USER_LIST_BOX" {
			var opts []any
			for _, o := range strings.Split(strings.Trim(strings.TrimSpace(anyString(v)), "[]"), ",") {
				opts = append(opts, strings.TrimSpace(o))
			}
			v = opts
		}
		out[strings.ToLower(f.fieldName)] = v
	}
	return out
}

func anyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = anyString(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}
