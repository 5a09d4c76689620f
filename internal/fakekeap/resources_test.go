package fakekeap

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestParams_RefusedWhereKeapsDocumentDoesNotListThem(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	fk.SeedContacts(3)
	for _, tc := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/contacts?limit=2&offset=1&order=firstName&order_direction=DESCENDING&email=a@b.c&since=2024-01-01T00:00:00.000Z", 200, ""},
		{"GET", "/contacts/?limit=1", 200, ""},
		{"GET", "/contacts?pageSize=2", 400, "Unknown query parameter pageSize for GET /contacts"},
		{"GET", "/contacts?order_direction=DESC", 400, "use one of ASCENDING, DESCENDING"},
		{"GET", "/contacts?since=yesterday", 400, "ISO 8601"},
		{"GET", "/contacts?limit=ten", 400, "use an integer"},
		{"GET", "/contacts/1?where=x", 400, "Unknown query parameter where for GET /contacts/{id}"},
		{"DELETE", "/contacts/1/tags", 400, "Required query parameter ids"},
		{"GET", "/tags?category=abc", 400, "Invalid category"},
		{"GET", "/companies?order=datecreated", 400, "use one of id, date_created, name, email"},
		{"GET", "/orders?paid=yes", 400, "use true or false"},
		{"GET", "/opportunities?order_direction=ASCENDING", 400, "Unknown query parameter"},
		{"POST", "/notes?contact_id=1", 400, "Unknown query parameter"},
	} {
		r := rest(t, srv, tc.method, tc.path, nil)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.msg) {
			t.Errorf("%s %s: %d %s; want %d %q", tc.method, tc.path, r.status, r.body, tc.status, tc.msg)
		}
	}
}

func TestGenericResources_CRUDAndPaging(t *testing.T) {
	t.Parallel()
	fk, srv := newTestFake(t, Options{})
	for i := range 5 {
		r := rest(t, srv, "POST", "/notes", map[string]any{"contact_id": 10 + i%2, "title": fmt.Sprint("note ", i)})
		if r.status != 201 {
			t.Fatalf("create note: %d %s", r.status, r.body)
		}
	}
	m := rest(t, srv, "GET", "/notes?contact_id=10&limit=2&offset=2", nil).json(t)
	if m["count"] != float64(3) || len(m["notes"].([]any)) != 1 || !strings.Contains(m["next"].(string), "offset=4") {
		t.Fatalf("page: %v", m)
	}
	note := m["notes"].([]any)[0].(map[string]any)
	id := fmt.Sprint(note["id"])
	if note["title"] != "note 4" || note["date_created"] == nil {
		t.Fatalf("note: %v", note)
	}
	if r := rest(t, srv, "PATCH", "/notes/"+id, map[string]any{"body": "text"}); r.status != 200 || r.json(t)["title"] != "note 4" {
		t.Fatalf("PATCH keeps the rest: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, "PUT", "/notes/"+id, map[string]any{"title": "replaced"}); r.status != 400 || !strings.Contains(string(r.body), "contact_id is required") {
		t.Fatalf("PUT without a required member: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, "PUT", "/notes/"+id, map[string]any{"contact_id": 10, "title": "replaced"}); r.status != 200 || r.json(t)["body"] != nil {
		t.Fatalf("PUT replaces: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, "POST", "/notes", map[string]any{"contact_id": 1, "colour": "red"}); r.status != 400 || !strings.Contains(string(r.body), "colour") {
		t.Fatalf("unknown member: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, "DELETE", "/notes/"+id, nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if r := rest(t, srv, "GET", "/notes/"+id, nil); r.status != 404 || !strings.Contains(string(r.body), "Note with id") {
		t.Fatalf("deleted: %d %s", r.status, r.body)
	}
	if r := rest(t, srv, "DELETE", "/campaigns/1", nil); r.status != 405 {
		t.Fatalf("DELETE campaign: %d", r.status)
	}

	fk.AddRecord("transactions", map[string]any{"contact_id": 1, "transaction_date": "2024-01-01T00:00:00.000Z"})
	fk.AddRecord("transactions", map[string]any{"contact_id": 1, "transaction_date": "2024-02-01T00:00:00.000Z"})
	if m := rest(t, srv, "GET", "/transactions?since=2024-01-15T00:00:00.000Z", nil).json(t); m["count"] != float64(1) {
		t.Fatalf("since: %v", m)
	}
	if fk.Records("transactions") != 2 {
		t.Fatalf("Records: %d", fk.Records("transactions"))
	}
	if r := rest(t, srv, http.MethodPost, "/opportunities", map[string]any{"opportunity_title": "x", "stage": map[string]any{"id": 1}}); r.status != 400 {
		t.Fatalf("opportunity without contact: %d %s", r.status, r.body)
	}
}
