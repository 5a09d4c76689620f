package events

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
)

func crm(t testing.TB) *elements.Element {
	t.Helper()
	catalog, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	el, ok := catalog.Lookup("infusionsoftcrm")
	if !ok {
		t.Fatal("no infusionsoftcrm")
	}
	return el
}

func TestWantedHooks_FollowEventConfiguration(t *testing.T) {
	t.Parallel()
	el := crm(t)
	tests := []struct {
		name    string
		config  map[string]string
		want    string // event keys, comma-separated
		problem string // a substring; empty: none
	}{
		{"events off", map[string]string{}, "", ""},
		{"webhook by default", map[string]string{"event.notification.enabled": "true"}, "contact.add,contact.delete,contact.edit", ""},
		{"polling", map[string]string{"event.notification.enabled": "true", "event.vendor.type": "polling"}, "", ""},
		{"several objects", map[string]string{"event.notification.enabled": "true", "event.objects": " companies, contacts ,companies"},
			"company.add,company.delete,company.edit,contact.add,contact.delete,contact.edit", ""},
		{"objects without hooks", map[string]string{"event.notification.enabled": "true", "event.objects": "contacts,tasks,nope"},
			"contact.add,contact.delete,contact.edit", "tasks, nope produce no Keap REST hooks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := &instances.Instance{Config: map[string]*string{}}
			for k, v := range tc.config {
				inst.Config[k] = &v
			}
			got, problem := wantedHooks(el, inst)
			var keys []string
			for _, w := range got {
				keys = append(keys, w.eventKey)
				if res, typ, ok := hookEvent(el, w.eventKey); !ok || res != w.resource || typ != w.eventType {
					t.Errorf("%s maps back to %s %s, want %s %s", w.eventKey, res, typ, w.resource, w.eventType)
				}
			}
			if strings.Join(keys, ",") != tc.want {
				t.Errorf("hooks %v, want %s", keys, tc.want)
			}
			if tc.problem == "" && problem != "" || !strings.Contains(problem, tc.problem) {
				t.Errorf("problem %q, want %q", problem, tc.problem)
			}
		})
	}
}

func TestParseDelivery_NamesEveryProblem(t *testing.T) {
	t.Parallel()
	el := crm(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct{ name, body, want string }{
		{"empty", "", "body is empty"},
		{"not JSON", "<xml/>", "malformed JSON"},
		{"array", `[]`, "JSON object"},
		{"no event_key", `{"object_keys":[{"id":1}]}`, "event_key is missing"},
		{"other event", `{"event_key":"contact.delete","object_keys":[{"id":1}]}`, `event_key "contact.delete" is not "contact.add"`},
		{"event_key a number", `{"event_key":5}`, "event_key has the wrong type"},
		{"no objects", `{"event_key":"contact.add"}`, "object_keys is missing or empty"},
		{"objects not a list", `{"event_key":"contact.add","object_keys":{}}`, "object_keys has the wrong type"},
		{"no id", `{"event_key":"contact.add","object_keys":[{"timestamp":"2026-11-30T12:00:00Z"}]}`, "object_keys[0].id is missing"},
		{"fractional id", `{"event_key":"contact.add","object_keys":[{"id":1},{"id":2.5}]}`, "object_keys[1].id 2.5 is not a whole number"},
		{"empty id", `{"event_key":"contact.add","object_keys":[{"id":""}]}`, "object_keys[0].id is not a non-empty string"},
		{"bad timestamp", `{"event_key":"contact.add","object_keys":[{"id":1,"timestamp":"30/11/2026"}]}`, `object_keys[0].timestamp "30/11/2026"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDelivery(el, "contact.add", []byte(tc.body), now)
			if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an invalid error naming %q", err, tc.want)
			}
		})
	}
	evs, err := ParseDelivery(el, "contact.add", []byte(`{"event_key":"contact.add","object_type":"contact","object_keys":[
		{"id":101,"apiUrl":"https://api.infusionsoft.com/crm/rest/v1/contacts/101","timestamp":"2026-11-30T12:00:00.250-05:00"},{"id":"102"}]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Date: time.Date(2026, 11, 30, 17, 0, 0, 250e6, time.UTC), ElementKey: "infusionsoftcrm", EventType: Created, ObjectID: "101", ObjectType: "contacts"},
		{Date: now, ElementKey: "infusionsoftcrm", EventType: Created, ObjectID: "102", ObjectType: "contacts"},
	}
	if len(evs) != 2 || evs[0] != want[0] || evs[1] != want[1] {
		t.Fatalf("events %+v, want %+v", evs, want)
	}
}

// FuzzParseDelivery: whatever Keap (or anyone with a receiver URL) sends, the
// parser returns events or an invalid error, never panics or another error.
func FuzzParseDelivery(f *testing.F) {
	el := crm(f)
	for _, s := range []string{
		`{"event_key":"contact.add","object_type":"contact","object_keys":[{"id":1,"apiUrl":"","timestamp":"2026-11-30T12:00:00.000Z"}]}`,
		`{"event_key":"contact.add","object_keys":[{"id":"x"},{"id":-3}]}`,
		`{"event_key":null,"object_keys":null}`, `[]`, `""`, `{"object_keys":[{"id":1e3}]}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseDelivery(el, "contact.add", body, now)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			if !utf8.ValidString(err.Error()) && utf8.Valid(body) {
				t.Fatalf("error message is not UTF-8: %q", err)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no error and no events")
		}
		for _, e := range evs {
			if e.EventType != Created || e.ObjectType != "contacts" || e.ObjectID == "" || e.Date.IsZero() {
				t.Fatalf("event %+v", e)
			}
		}
	})
}
