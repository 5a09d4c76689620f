package xmlrpcbridge

import (
	"fmt"
	"strings"
	"testing"
)

// Keap's _Custom fields are the v2 custom fields of the same field_name,
// read from the model only when a call names one.
func TestBridge_CustomFieldsByTheirNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fake.AddContactCustomField("ShoeSize", "Shoe size", "WHOLE_NUMBER")
	e.fake.AddContactCustomField("Colour", "Favourite colour", "TEXT")
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
	rows, err := e.viaBridge(t, "DataService.query", "Contact", int64(10), int64(0), map[string]any{"_Colour": "bl%"}, []any{"Id", "_ShoeSize"})
	if err != nil || fmt.Sprint(rows) != fmt.Sprintf("[map[Id:%v _ShoeSize:38]]", id) {
		t.Fatalf("query on a custom field: %v %v", rows, err)
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
	if models != 5 {
		t.Errorf("the model was read %d times, want once per call that names a custom field (5)", models)
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

// Paging through a query in order costs one REST call per page: the bridge
// remembers the v2 token that starts each page it has seen. A page too far
// to walk to is a fault saying how to page instead.
func TestBridge_PagingInOrderCostsOneCallPerPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		if _, err := e.viaBridge(t, "ContactService.add", map[string]any{"FirstName": fmt.Sprint("Ada", i), "Email": fmt.Sprintf("ada%d@example.test", i)}); err != nil {
			t.Fatal(err)
		}
	}
	e.keap.take()
	var all []string
	for page := int64(0); page < 3; page++ {
		rows, err := e.viaBridge(t, "DataService.query", "Contact", int64(2), page, map[string]any{"FirstName": "Ada%"}, []any{"FirstName"})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, fmt.Sprint(rows))
		if sent := e.keap.take(); len(sent) != 1 {
			t.Errorf("page %d took %d REST calls, want 1", page, len(sent))
		}
	}
	if got := strings.Join(all, " "); got != "[map[FirstName:Ada0] map[FirstName:Ada1]] [map[FirstName:Ada2] map[FirstName:Ada3]] [map[FirstName:Ada4]]" {
		t.Errorf("pages %s", got)
	}
	// Another query's pages are its own: page 1 of it walks from page 0.
	if _, err := e.viaBridge(t, "DataService.query", "Contact", int64(2), int64(1), map[string]any{"FirstName": "Ada1%"}, []any{"FirstName"}); err != nil {
		t.Fatal(err)
	}
	if sent := e.keap.take(); len(sent) != 1 {
		t.Errorf("page 1 of a one-record query took %d calls, want 1 (page 0 has no next token)", len(sent))
	}
	_, err := e.viaBridge(t, "DataService.query", "Contact", int64(1), int64(5000), map[string]any{}, []any{"Id"})
	if err == nil || !strings.Contains(err.Error(), "[InvalidParameter]page 5000 of 1 records needs 5001 REST v2 calls") {
		t.Fatalf("a page too far: %v", err)
	}
	if sent := e.keap.take(); len(sent) != 0 {
		t.Errorf("the refused page reached Keap %d times", len(sent))
	}
}
