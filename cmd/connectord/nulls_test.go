package main

import (
	"fmt"
	"testing"
)

// Keap's REST v1 document marks no request member nullable, and the fake
// refuses nulls as Keap does: a hub create drops them (null means absent), an
// update or upsert with one is a 400 naming it, and Keap never sees a null.
func TestHubs_NullsOnlyWhereKeapsDocumentAllowsThem(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	crm := s.hubUser(t, o, "infusionsoftcrm")

	created := crm.want(201, "POST", "/hubs/crm/contacts", map[string]any{
		"given_name": "Ada", "middle_name": nil, "family_name": "Lovelace",
		"email_addresses": []any{map[string]any{"email": "ada@example.test", "field": "EMAIL1"}},
		"addresses":       []any{map[string]any{"field": "BILLING", "line1": "1 Main St", "line2": nil, "country_code": "USA"}},
	})
	id := fmt.Sprint(created["id"])
	if created["given_name"] != "Ada" || created["middle_name"] != nil {
		t.Fatalf("created %v", created)
	}

	crm.wantError(400, "PATCH", "/hubs/crm/contacts/"+id, map[string]any{"middle_name": nil}, `"middle_name"`, "null")
	crm.wantError(400, "PATCH", "/hubs/crm/contacts/"+id, map[string]any{"addresses": []any{map[string]any{"field": "BILLING", "line2": nil}}}, `"addresses.line2"`)
	crm.wantError(400, "PUT", "/hubs/crm/contacts", map[string]any{"given_name": "Ada", "middle_name": nil,
		"email_addresses": []any{map[string]any{"email": "ada@example.test", "field": "EMAIL1"}}}, `"middle_name"`)
	if got := crm.want(200, "GET", "/hubs/crm/contacts/"+id, nil); got["family_name"] != "Lovelace" {
		t.Fatalf("after the refused updates: %v", got)
	}
	crm.want(200, "PATCH", "/hubs/crm/contacts/"+id, map[string]any{"middle_name": "Augusta"})
}
