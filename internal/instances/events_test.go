package instances

import (
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
)

func TestPollResources_ElementDataAndOverrides(t *testing.T) {
	catalog, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	el, _ := catalog.Lookup("infusionsoftrest")
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		config map[string]*string
		want   string // Object/path/id/created/updated, or the error's start
	}{
		{"the default object", map[string]*string{}, "contacts /contacts id date_created last_updated"},
		{"Open Connectors' override", map[string]*string{KeyPollerConfig: str(`{"contacts":{"url":"/hubs/crm/contacts?where=x","idField":"id","datesConfiguration":{"updatedDateField":"modified.at","createdDateField":""}}}`)},
			"contacts /contacts id date_created modified.at"},
		{"a Keap path", map[string]*string{KeyPollerConfig: str(`{"contacts":{"url":"/contacts/","idField":"uid"}}`)}, "contacts /contacts uid date_created last_updated"},
		{"not pollable", map[string]*string{KeyEventObjects: str("contacts,notes")}, "event.objects: element infusionsoftrest cannot poll notes; it can poll contacts"},
		{"unknown resource", map[string]*string{KeyEventObjects: str("deals")}, "event.objects: element infusionsoftrest cannot poll deals"},
		{"bad url", map[string]*string{KeyPollerConfig: str(`{"contacts":{"url":"/hubs/marketing/contacts"}}`)}, "event.poller.configuration.contacts.url"},
		{"unknown member", map[string]*string{KeyPollerConfig: str(`{"contacts":{"since":"x"}}`)}, `event.poller.configuration.contacts: unknown field "since"; it takes an object`},
		{"not an object", map[string]*string{KeyPollerConfig: str(`{"contacts":[]}`)}, "event.poller.configuration.contacts: it takes an object with url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prs, err := pollResources(el, tt.config)
			var got string
			if e, ok := apperr.As(err); ok {
				got = e.Message
			} else if err != nil {
				t.Fatal(err)
			} else {
				for _, pr := range prs {
					got += strings.Join([]string{pr.Object, pr.Resource.Path, pr.IDField, pr.CreatedField, pr.UpdatedField}, " ")
				}
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
