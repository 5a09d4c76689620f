package xmlrpcbridge

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// contactModel is Keap's GET /contacts/model answer (ObjectModel) for two
// custom fields; the fake Keap does not serve the model, so the test adds it.
const contactModel = `{"custom_fields":[` +
	`{"id":"12","label":"Shoe size","field_name":"ShoeSize","field_type":"WHOLE_NUMBER","record_type":"CONTACT"},` +
	`{"id":"13","label":"Favourite colour","field_name":"Colour","field_type":"TEXT","record_type":"CONTACT"}],"optional_properties":[]}`

// Keap's _Custom fields are the v2 custom fields of the same field_name,
// read from the model only when a call names one.
func TestBridge_CustomFieldsByTheirNames(t *testing.T) {
	t.Parallel()
	e := newEnvWrapped(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/crm/rest/v2/contacts/model" {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, contactModel)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	id, err := e.viaBridge(t, "ContactService.add", map[string]any{"FirstName": "Ada", "Email": "ada@example.test", "_ShoeSize": int64(38), "_Colour": "green"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.viaBridge(t, "ContactService.update", id, map[string]any{"_Colour": "blue"}); err != nil {
		t.Fatal(err)
	}
	got, err := e.viaBridge(t, "ContactService.load", id, []any{"FirstName", "_ShoeSize", "_Colour"})
	if err != nil || fmt.Sprint(got) != "map[FirstName:Ada _Colour:blue _ShoeSize:38]" {
		t.Fatalf("load: %v %v", got, err)
	}
	if _, err := e.viaBridge(t, "ContactService.load", id, []any{"_NoSuchField"}); err == nil || !strings.Contains(err.Error(), "[NoFieldFound]No field found: Contact._NoSuchField") {
		t.Fatalf("an unknown custom field: %v", err)
	}
	sent := e.keap.take()
	checkAgainstKeapsDocument(t, sent)
	var models int
	for _, s := range sent {
		if strings.HasSuffix(s.Path, "/contacts/model") {
			models++
		}
	}
	if models != 4 {
		t.Errorf("the model was read %d times, want once per call that names a custom field (4)", models)
	}
	if _, err := e.viaBridge(t, "ContactService.load", id, []any{"FirstName"}); err != nil {
		t.Fatal(err)
	}
	if sent := e.keap.take(); len(sent) != 1 {
		t.Errorf("a call without custom fields made %d REST calls, want 1", len(sent))
	}
}

// ContactAction rows with ObjectType Task are v2 tasks: made, read, found,
// changed and deleted through /tasks.
func TestBridge_ContactActionTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	contact, err := e.viaBridge(t, "ContactService.add", map[string]any{"FirstName": "Ada", "Email": "ada@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.viaBridge(t, "DataService.add", "ContactAction", map[string]any{"ObjectType": "Task", "ContactId": contact,
		"ActionDescription": "Call back", "CreationNotes": "about the engines", "Priority": "ESSENTIAL"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.viaBridge(t, "DataService.update", "ContactAction", id, map[string]any{"IsCompleted": int64(1)}); err != nil {
		t.Fatal(err)
	}
	got, err := e.viaBridge(t, "DataService.load", "ContactAction", id, []any{"Id", "ObjectType", "ContactId", "ActionDescription", "IsCompleted"})
	want := fmt.Sprintf("map[ActionDescription:Call back ContactId:%v Id:%v IsCompleted:1 ObjectType:Task]", contact, id)
	if err != nil || fmt.Sprint(got) != want {
		t.Fatalf("load: %v %v, want %s", got, err, want)
	}
	rows, err := e.viaBridge(t, "DataService.query", "ContactAction", int64(10), int64(0),
		map[string]any{"ObjectType": "Task", "ContactId": contact, "ActionDescription": "Call%"}, []any{"Id", "CreationNotes"})
	if err != nil || fmt.Sprint(rows) != fmt.Sprintf("[map[CreationNotes:about the engines Id:%v]]", id) {
		t.Fatalf("query: %v %v", rows, err)
	}
	if _, err := e.viaBridge(t, "DataService.delete", "ContactAction", id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.viaBridge(t, "DataService.load", "ContactAction", id, []any{"Id"}); err == nil || !strings.HasPrefix(err.Error(), "xml-rpc fault 2: [RecordNotFound]") {
		t.Fatalf("load after delete: %v", err)
	}
	checkAgainstKeapsDocument(t, e.keap.take())
}
