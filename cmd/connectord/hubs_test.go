package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// hubUser calls the hubs as one instance: User secret plus Element token.
type hubUser struct {
	t     *testing.T
	s     *server
	o     org
	id    string // the instance id
	token string // the instance token
}

func (s *server) hubUser(t *testing.T, o org, element string) hubUser {
	t.Helper()
	inst := s.provisionOAuth(o, element, element+" hubs")
	return hubUser{t: t, s: s, o: o, id: fmt.Sprint(inst["id"]), token: inst["token"].(string)}
}

func (h hubUser) auth() string { return "User " + h.o.User.Secret + ", Element " + h.token }

func (h hubUser) do(method, path string, body any) response {
	h.t.Helper()
	return h.s.do(method, path, h.auth(), body)
}

// want checks a status and returns the JSON object answered.
func (h hubUser) want(status int, method, path string, body any) map[string]any {
	h.t.Helper()
	r := h.do(method, path, body)
	if r.Status != status {
		h.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(h.t)
}

// list checks a 200 list and returns its records.
func (h hubUser) list(path string) ([]any, response) {
	h.t.Helper()
	r := h.do("GET", path, nil)
	if r.Status != 200 {
		h.t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	return r.Array(h.t), r
}

// wantError checks an error status and that the message names every part in want.
func (h hubUser) wantError(status int, method, path string, body any, want ...string) map[string]any {
	h.t.Helper()
	r := h.do(method, path, body)
	if r.Status != status {
		h.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	m := r.JSON(h.t)
	for _, w := range want {
		if !strings.Contains(m["message"].(string), w) {
			h.t.Errorf("%s %s: message %q lacks %q", method, path, m["message"], w)
		}
	}
	return m
}

func q(where string) string { return url.QueryEscape(where) }

func newContact(email, given string) map[string]any {
	return map[string]any{"given_name": given, "email_addresses": []any{map[string]any{"email": email, "field": "EMAIL1"}}}
}

func TestHubs_EveryResourceFamily(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Hubs", "hubs@acme.test")
	crm := s.hubUser(t, o, "infusionsoftcrm")
	mkt := s.hubUser(t, o, "infusionsoftmarketing")
	ec := s.hubUser(t, o, "infusionsoftecommerce")

	t.Run("crm contacts", func(t *testing.T) {
		c := crm.want(201, "POST", "/hubs/crm/contacts", newContact("ann@example.com", "Ann"))
		id := fmt.Sprint(c["id"])
		if got := crm.want(200, "GET", "/hubs/crm/contacts/"+id, nil); got["given_name"] != "Ann" {
			t.Fatalf("GET contact: %v", got)
		}
		if got := crm.want(200, "PATCH", "/hubs/crm/contacts/"+id, map[string]any{"family_name": "Lee"}); got["family_name"] != "Lee" {
			t.Fatalf("PATCH contact: %v", got)
		}
		// The same call under Open Connectors' prefix.
		if got, _ := crm.list("/elements/api-v2/hubs/crm/contacts?where=" + q("email = 'ann@example.com'")); len(got) != 1 {
			t.Fatalf("list by email under the prefix: %v", got)
		}
		if r := crm.do("DELETE", "/hubs/crm/contacts/"+id, nil); r.Status != 204 || len(r.Body) != 0 {
			t.Fatalf("DELETE contact: %d %s", r.Status, r.Body)
		}
		crm.wantError(404, "GET", "/hubs/crm/contacts/"+id, nil, "Keap found nothing for GET contacts/"+id)
	})

	t.Run("crm contact tags", func(t *testing.T) {
		c := crm.want(201, "POST", "/hubs/crm/contacts", newContact("tagged@example.com", "Tag"))
		id := fmt.Sprint(c["id"])
		var tags []string
		var tagIDs []any
		for _, name := range []string{"Lead", "Customer", "VIP"} {
			tagID := crm.want(200, "POST", "/hubs/crm/tags", map[string]any{"name": name})["id"]
			tags, tagIDs = append(tags, fmt.Sprint(tagID)), append(tagIDs, tagID)
		}
		applied := crm.want(200, "POST", "/hubs/crm/contacts/"+id+"/tags", map[string]any{"tagIds": tagIDs})
		if applied[tags[0]] != "SUCCESS" {
			t.Fatalf("apply tags: %v", applied)
		}
		got, _ := crm.list("/hubs/crm/contacts/" + id + "/tags")
		if len(got) != 3 {
			t.Fatalf("contact tags: %v", got)
		}
		if r := crm.do("DELETE", "/hubs/crm/contacts/"+id+"/tags?ids="+tags[0]+","+tags[1], nil); r.Status != 204 {
			t.Fatalf("remove tags: %d %s", r.Status, r.Body)
		}
		if r := crm.do("DELETE", "/hubs/crm/contacts/"+id+"/tags/"+tags[2], nil); r.Status != 204 {
			t.Fatalf("remove one tag: %d %s", r.Status, r.Body)
		}
		if got, _ := crm.list("/hubs/crm/contacts/" + id + "/tags"); len(got) != 0 {
			t.Fatalf("tags left: %v", got)
		}
		crm.wantError(400, "DELETE", "/hubs/crm/contacts/"+id+"/tags", nil, "needs the query parameter ids")
		crm.wantError(400, "DELETE", "/hubs/crm/contacts/"+id+"/tags?ids=a,b", nil, "comma-separated whole numbers")
		crm.wantError(405, "PATCH", "/hubs/crm/contacts/"+id+"/tags", map[string]any{}, "allows GET, POST, DELETE")
		if got, _ := crm.list("/hubs/crm/tags?where=" + q("name = 'VIP'")); len(got) != 1 {
			t.Fatalf("tags by name: %v", got)
		}
		if got := crm.want(200, "GET", "/hubs/crm/tags/"+tags[2], nil); got["name"] != "VIP" {
			t.Fatalf("GET tag: %v", got)
		}
	})

	t.Run("crm companies", func(t *testing.T) {
		c := crm.want(201, "POST", "/hubs/crm/companies", map[string]any{"company_name": "Acme",
			"address": map[string]any{"line1": "1 Main St", "country_code": "USA", "region": "US-AZ"}})
		id := fmt.Sprint(c["id"])
		crm.want(200, "PATCH", "/hubs/crm/companies/"+id, map[string]any{"website": "https://acme.test"})
		if got, _ := crm.list("/hubs/crm/companies?orderBy=" + q("name desc") + "&where=" + q("companyName = 'Acme'")); len(got) != 1 {
			t.Fatalf("companies: %v", got)
		}
		crm.wantError(405, "DELETE", "/hubs/crm/companies/"+id, nil, "companies/{id} allows GET, PATCH, not DELETE")
	})

	t.Run("crm opportunities", func(t *testing.T) {
		o := crm.want(200, "POST", "/hubs/crm/opportunities", map[string]any{"opportunity_title": "Big deal",
			"contact": map[string]any{"id": 1}, "stage": map[string]any{"id": 4}})
		id := fmt.Sprint(o["id"])
		crm.want(200, "PATCH", "/hubs/crm/opportunities/"+id, map[string]any{"projected_revenue_high": 5000})
		got, _ := crm.list("/hubs/crm/opportunities?where=" + q("stageId = 4") + "&orderBy=name")
		if len(got) != 1 || got[0].(map[string]any)["projected_revenue_high"] != float64(5000) {
			t.Fatalf("opportunities: %v", got)
		}
		// Keap's own refusal keeps its status and words.
		m := crm.wantError(400, "POST", "/hubs/crm/opportunities", map[string]any{"opportunity_title": "No contact"}, "Keap refused POST opportunities (400)")
		if m["providerMessage"] != "contact is required" {
			t.Fatalf("providerMessage: %v", m)
		}
	})

	t.Run("crm notes and tasks", func(t *testing.T) {
		n := crm.want(201, "POST", "/hubs/crm/notes", map[string]any{"contact_id": 7, "title": "Call", "body": "Called"})
		id := fmt.Sprint(n["id"])
		crm.want(200, "PUT", "/hubs/crm/notes/"+id, map[string]any{"contact_id": 7, "title": "Call back"})
		crm.want(200, "PATCH", "/hubs/crm/notes/"+id, map[string]any{"body": "Called back"})
		if got, _ := crm.list("/hubs/crm/notes?where=" + q("contactId = 7")); len(got) != 1 || got[0].(map[string]any)["title"] != "Call back" {
			t.Fatalf("notes: %v", got)
		}
		crm.want(204, "DELETE", "/hubs/crm/notes/"+id, nil)

		tk := crm.want(200, "POST", "/hubs/crm/tasks", map[string]any{"title": "Follow up", "completed": false, "contact": map[string]any{"id": 7}})
		crm.want(200, "GET", fmt.Sprint("/hubs/crm/tasks/", tk["id"]), nil)
		crm.want(200, "POST", "/hubs/crm/tasks", map[string]any{"title": "Done already", "completed": true})
		if got, _ := crm.list("/hubs/crm/tasks?where=" + q("completed = false and contactId = 7")); len(got) != 1 {
			t.Fatalf("open tasks of contact 7: %v", got)
		}
	})

	t.Run("marketing", func(t *testing.T) {
		s.keap.SeedContacts(3)
		if got, _ := mkt.list("/hubs/marketing/contacts?pageSize=2"); len(got) != 2 {
			t.Fatalf("marketing contacts: %v", got)
		}
		mkt.want(200, "POST", "/hubs/marketing/tags", map[string]any{"name": "Newsletter"})
		if got, _ := mkt.list("/hubs/marketing/tags"); len(got) == 0 {
			t.Fatal("no tags")
		}
		welcome := s.keap.AddRecord("campaigns", map[string]any{"name": "Welcome series", "date_created": "2024-01-01T00:00:00.000Z"})
		s.keap.AddRecord("campaigns", map[string]any{"name": "Win back", "date_created": "2024-02-01T00:00:00.000Z"})
		got, _ := mkt.list("/hubs/marketing/campaigns?orderBy=" + q("createdDate desc"))
		if len(got) != 2 || got[0].(map[string]any)["name"] != "Win back" {
			t.Fatalf("campaigns newest first: %v", got)
		}
		if got, _ := mkt.list("/hubs/marketing/campaigns?where=" + q("searchText = 'welcome'")); len(got) != 1 {
			t.Fatalf("campaign search: %v", got)
		}
		mkt.want(200, "GET", fmt.Sprint("/hubs/marketing/campaigns/", welcome), nil)
		mkt.wantError(405, "POST", "/hubs/marketing/campaigns", map[string]any{"name": "x"}, "campaigns allows GET, not POST")

		e := mkt.want(201, "POST", "/hubs/marketing/emails", map[string]any{"sent_to_address": "ann@example.com", "subject": "Hello", "contact_id": 9})
		if got, _ := mkt.list("/hubs/marketing/emails?where=" + q("contactId = 9 and email = 'ann@example.com'")); len(got) != 1 {
			t.Fatalf("emails: %v", got)
		}
		mkt.want(204, "DELETE", fmt.Sprint("/hubs/marketing/emails/", e["id"]), nil)
	})

	t.Run("ecommerce", func(t *testing.T) {
		p := ec.want(201, "POST", "/hubs/ecommerce/products", map[string]any{"product_name": "Widget", "product_price": 9.5, "active": true})
		pid := fmt.Sprint(p["id"])
		ec.want(200, "PATCH", "/hubs/ecommerce/products/"+pid, map[string]any{"product_name": "Widget", "sku": "W-1"})
		if got, _ := ec.list("/hubs/ecommerce/products?where=" + q("active = true")); len(got) != 1 {
			t.Fatalf("active products: %v", got)
		}
		order := ec.want(201, "POST", "/hubs/ecommerce/orders", map[string]any{"contact_id": 3, "order_date": "2024-03-01T10:00:00.000Z",
			"order_title": "First order", "order_type": "Online", "order_items": []any{map[string]any{"product_id": p["id"], "quantity": 2}}})
		ec.want(200, "GET", fmt.Sprint("/hubs/ecommerce/orders/", order["id"]), nil)
		if got, _ := ec.list("/hubs/ecommerce/orders?where=" + q("contactId = 3 and productId = "+pid+" and orderDate >= '2024-03-01'") + "&orderBy=orderDate"); len(got) != 1 {
			t.Fatalf("orders: %v", got)
		}
		if got, _ := ec.list("/hubs/ecommerce/orders?where=" + q("orderDate < '2024-03-01'")); len(got) != 0 {
			t.Fatalf("orders before March: %v", got)
		}
		tx := s.keap.AddRecord("transactions", map[string]any{"contact_id": 3, "amount": 19, "transaction_date": "2024-03-01T10:05:00.000Z"})
		if got, _ := ec.list("/hubs/ecommerce/transactions?where=" + q("contactId = 3 and transactionDate >= '2024-03-01T10:00:00Z'")); len(got) != 1 {
			t.Fatalf("transactions: %v", got)
		}
		ec.want(200, "GET", fmt.Sprint("/hubs/ecommerce/transactions/", tx), nil)
		sub := ec.want(201, "POST", "/hubs/ecommerce/subscriptions", map[string]any{"contact_id": 3, "subscription_plan_id": 1})
		if got, _ := ec.list("/hubs/ecommerce/subscriptions?where=" + q("contactId = 3")); len(got) != 1 {
			t.Fatalf("subscriptions: %v", got)
		}
		ec.wantError(405, "GET", fmt.Sprint("/hubs/ecommerce/subscriptions/", sub["id"]), nil, "serves no method on subscriptions/{id}")
		ec.want(204, "DELETE", fmt.Sprint("/hubs/ecommerce/orders/", order["id"]), nil)
	})
}

func TestHubs_PagingToTheEndOfAMultiPageList(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.keap.SeedContacts(45)
	o := s.createOrg("Paging", "paging@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")

	seen := map[string]bool{}
	next, pages := "", 0
	for {
		path := "/hubs/crm/contacts?pageSize=20&orderBy=" + q("id desc")
		if next != "" {
			path += "&nextPage=" + url.QueryEscape(next)
		}
		got, r := h.list(path)
		pages++
		for _, c := range got {
			id := fmt.Sprint(c.(map[string]any)["id"])
			if seen[id] {
				t.Fatalf("contact %s twice", id)
			}
			seen[id] = true
		}
		next = r.Header.Get("Elements-Next-Page-Token")
		if want := []int{20, 20, 5}[pages-1]; len(got) != want {
			t.Fatalf("page %d has %d contacts, want %d", pages, len(got), want)
		}
		if next == "" {
			break
		}
		if pages == 3 {
			t.Fatal("the last page carries a next page token")
		}
	}
	if len(seen) != 45 || pages != 3 || !seen["45"] {
		t.Fatalf("saw %d contacts in %d pages", len(seen), pages)
	}

	// The default page is 200; pagination.max caps it.
	if got, _ := h.list("/hubs/crm/contacts"); len(got) != 45 {
		t.Fatalf("default page: %d", len(got))
	}
	if r := s.do("PATCH", "/instances/"+h.id, o.auth(), map[string]any{"configuration": map[string]any{"pagination.max": 10}}); r.Status != 200 {
		t.Fatalf("PATCH pagination.max: %d %s", r.Status, r.Body)
	}
	got, r := h.list("/hubs/crm/contacts?pageSize=50")
	if len(got) != 10 || r.Header.Get("Elements-Next-Page-Token") == "" {
		t.Fatalf("capped page: %d contacts, next %q", len(got), r.Header.Get("Elements-Next-Page-Token"))
	}
	token := r.Header.Get("Elements-Next-Page-Token")

	calls := s.keap.Stats().APICalls
	for _, bad := range []string{"0", "-3", "ten", "2.5"} {
		h.wantError(400, "GET", "/hubs/crm/contacts?pageSize="+bad, nil, "pageSize must be a whole number from 1 to 10")
	}
	h.wantError(400, "GET", "/hubs/crm/contacts?nextPage="+token[:len(token)-3]+"abc", nil, "nextPage is not a cursor of this query")
	h.wantError(400, "GET", "/hubs/crm/contacts?nextPage=not-a-cursor", nil, "nextPage")
	h.wantError(400, "GET", "/hubs/crm/contacts?nextPage="+url.QueryEscape(token)+"&where="+q("email = 'contact1@example.com'"), nil, "same where and orderBy")
	h.wantError(400, "GET", "/hubs/crm/contacts?page=2", nil, "unknown query parameters for GET contacts: page", "where, orderBy, pageSize, nextPage")
	if got := s.keap.Stats().APICalls; got != calls {
		t.Fatalf("refused requests reached Keap: %d calls", got-calls)
	}
}

func TestHubs_CEQLWhereAndOrderBy(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("CEQL", "ceql@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")
	s.keap.SeedContacts(10) // contact1..10@example.com, Seed1..Seed10 Contact, updated a second apart
	h.want(201, "POST", "/hubs/crm/contacts", map[string]any{"given_name": "Seamus", "family_name": "O'Brien",
		"email_addresses": []any{map[string]any{"email": "seamus@example.com", "field": "EMAIL1"}}})
	third := h.want(200, "GET", "/hubs/crm/contacts/3", nil)["last_updated"].(string)
	seventh := h.want(200, "GET", "/hubs/crm/contacts/7", nil)["last_updated"].(string)

	ids := func(list []any) []string {
		var out []string
		for _, c := range list {
			out = append(out, fmt.Sprint(c.(map[string]any)["id"]))
		}
		return out
	}
	for _, tt := range []struct {
		where, orderBy string
		want           []string
	}{
		{"email = 'contact4@example.com'", "", []string{"4"}},
		{"firstName = 'Seed5'", "", []string{"5"}},
		{"given_name = 'Seed6' and lastName = 'Contact'", "", []string{"6"}},
		{"lastName = 'O''Brien'", "", []string{"11"}},
		{"family_name = 'Contact' and lastUpdated >= '" + third + "' and lastUpdated <= '" + seventh + "'", "", []string{"3", "4", "5", "6", "7"}},
		{"lastName = 'Contact' and lastUpdated > '" + third + "' and lastUpdated < '" + seventh + "'", "", []string{"4", "5", "6"}},
		{"lastName = 'Contact'", "lastUpdated desc", []string{"10", "9", "8", "7", "6", "5", "4", "3", "2", "1"}},
		{"lastName = 'Contact' AND lastUpdated <= '" + third + "'", "id DESC", []string{"3", "2", "1"}},
		{"", "email asc", []string{"10", "1", "2", "3", "4", "5", "6", "7", "8", "9", "11"}}, // contact10@ sorts before contact1@
	} {
		t.Run(tt.where+" "+tt.orderBy, func(t *testing.T) {
			got, _ := h.list("/hubs/crm/contacts?where=" + q(tt.where) + "&orderBy=" + q(tt.orderBy))
			if !slices.Equal(ids(got), tt.want) {
				t.Fatalf("got %v, want %v", ids(got), tt.want)
			}
		})
	}

	calls := s.keap.Stats().APICalls
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"where=" + q("phone = '555'"), []string{"contacts cannot filter on phone", "email =, family_name =, firstName =, given_name =, lastName =, lastUpdated > >= < <="}},
		{"where=" + q("email != 'a@b.c'"), []string{"operator != is not supported on email, only ="}},
		{"where=" + q("email like 'a%'"), []string{"operator like is not supported"}},
		{"where=" + q("lastUpdated = '2024-01-01'"), []string{"operator = is not supported on lastUpdated"}},
		{"where=" + q("email = 'a' or email = 'b'"), []string{"or is not supported", "supported for contacts"}},
		{"where=" + q("email = 'unterminated"), []string{"unterminated string"}},
		{"where=" + q("lastUpdated >= 'last week'"), []string{"lastUpdated takes a date"}},
		{"where=" + q("email = 'a' and email = 'b'"), []string{"give one"}},
		{"orderBy=" + q("shoeSize"), []string{"orderBy takes one of createdDate, email, id, lastUpdated, name [asc|desc]"}},
		{"orderBy=" + q("email, id"), []string{"one field"}},
		{"orderBy=" + q("email upward"), []string{"asc or desc"}},
	} {
		h.wantError(400, "GET", "/hubs/crm/contacts?"+tt.query, nil, tt.want...)
	}
	h.wantError(400, "GET", "/hubs/crm/tasks?where="+q("contactId = 'x'"), nil, "contactId takes a whole number")
	h.wantError(400, "GET", "/hubs/crm/notes?orderBy=id", nil, "Keap cannot order notes")
	if got := s.keap.Stats().APICalls; got != calls {
		t.Fatalf("refused queries reached Keap: %d calls", got-calls)
	}
}

func TestHubs_UpsertContactsByEmail(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Upsert", "upsert@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")

	body := newContact("upsert@example.com", "Una")
	r := h.do("PUT", "/hubs/crm/contacts", body)
	if r.Status != 201 || r.Header.Get("Elements-Upsert-Result") != "created" {
		t.Fatalf("first upsert: %d %q %s", r.Status, r.Header.Get("Elements-Upsert-Result"), r.Body)
	}
	id := r.JSON(t)["id"]

	body["family_name"] = "Updated"
	r = h.do("PUT", "/hubs/crm/contacts", body)
	if r.Status != 200 || r.Header.Get("Elements-Upsert-Result") != "updated" || r.JSON(t)["id"] != id || r.JSON(t)["family_name"] != "Updated" {
		t.Fatalf("second upsert: %d %q %s", r.Status, r.Header.Get("Elements-Upsert-Result"), r.Body)
	}

	// EmailAndName: the same email with another name is another contact.
	other := newContact("upsert@example.com", "Otto")
	r = h.do("PUT", "/hubs/crm/contacts?duplicateOption=EmailAndName", other)
	if r.Status != 201 || r.Header.Get("Elements-Upsert-Result") != "created" || r.JSON(t)["id"] == id {
		t.Fatalf("EmailAndName upsert: %d %s", r.Status, r.Body)
	}
	other["duplicate_option"] = "EmailAndName"
	if r := h.do("PUT", "/hubs/crm/contacts", other); r.Status != 200 || r.Header.Get("Elements-Upsert-Result") != "updated" {
		t.Fatalf("duplicate_option in the body: %d %s", r.Status, r.Body)
	}
	h.wantError(400, "PUT", "/hubs/crm/contacts?duplicateOption=Email", other, "disagree")
	h.wantError(400, "PUT", "/hubs/crm/contacts?duplicateOption=Name", body, "duplicateOption must be one of Email, EmailAndName")
	h.wantError(400, "PUT", "/hubs/crm/contacts", "[1]", "must be a JSON object")
	h.wantError(400, "PUT", "/hubs/crm/contacts", "{", "malformed JSON")
	h.wantError(405, "PUT", "/hubs/crm/companies", map[string]any{"company_name": "x"}, "companies allows GET, POST, not PUT")
	if got, _ := h.list("/hubs/crm/contacts?where=" + q("email = 'upsert@example.com'")); len(got) != 2 {
		t.Fatalf("contacts with the email: %d", len(got))
	}
}

func TestHubs_NullFilteringOnAndOff(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Nulls", "nulls@acme.test")
	h := s.hubUser(t, o, "infusionsoftmarketing")
	s.keap.SeedContacts(1)
	s.keap.AddRecord("campaigns", map[string]any{"name": "Spring", "published_date": nil, "goals": []any{map[string]any{"id": 1, "name": nil}}})

	c := h.want(200, "GET", "/hubs/marketing/contacts/1", nil)
	if _, ok := c["middle_name"]; ok {
		t.Fatalf("nulls not removed by default: %v", c)
	}
	camps, _ := h.list("/hubs/marketing/campaigns")
	camp := camps[0].(map[string]any)
	if _, ok := camp["published_date"]; ok || len(camp["goals"].([]any)[0].(map[string]any)) != 1 {
		t.Fatalf("nulls not removed at every depth: %v", camp)
	}

	if r := s.do("PATCH", "/instances/"+h.id+"/configuration/filter.response.nulls", o.auth(), map[string]any{"propertyValue": false}); r.Status != 200 {
		t.Fatalf("PATCH filter.response.nulls: %d %s", r.Status, r.Body)
	}
	c = h.want(200, "GET", "/hubs/marketing/contacts/1", nil)
	if v, ok := c["middle_name"]; !ok || v != nil {
		t.Fatalf("nulls removed although filter.response.nulls is false: %v", c)
	}
	camps, _ = h.list("/hubs/marketing/campaigns")
	if v, ok := camps[0].(map[string]any)["published_date"]; !ok || v != nil {
		t.Fatalf("list nulls removed although filter.response.nulls is false: %v", camps)
	}
}

func TestHubs_WrongHubUnknownResourceAndMethod(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Routing", "routing@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")

	h.wantError(404, "GET", "/hubs/marketing/contacts", nil, "serves hub crm, not marketing", "/hubs/crm/")
	h.wantError(404, "GET", "/elements/api-v2/hubs/ecommerce/orders", nil, "serves hub crm, not ecommerce")
	h.wantError(404, "GET", "/hubs/crm/orders", nil, "infusionsoftcrm (hub crm) has no resource \"orders\"",
		"contacts, contacts/{id}/tags, companies, tags, opportunities, notes, tasks, lookups/countries, lookups/countries/{code}/provinces")
	h.wantError(404, "GET", "/hubs/crm/contacts/1/notes", nil, "has no resource contacts/{id}/notes")
	h.wantError(405, "DELETE", "/hubs/crm/tags/1", nil, "tags/{id} allows GET, not DELETE")
	h.wantError(405, "PUT", "/hubs/crm/contacts/1", map[string]any{}, "contacts/{id} allows GET, PATCH, DELETE, not PUT")
	h.wantError(400, "GET", "/hubs/crm/contacts/abc", nil, "not a Keap id")
	h.wantError(400, "GET", "/hubs/crm/contacts/01", nil, "not a Keap id")
	h.wantError(400, "GET", "/hubs/crm/contacts/1?where="+q("email = 'a'"), nil, "GET contacts/{id} takes no query parameters")
	h.wantError(400, "POST", "/hubs/crm/contacts", nil, "request body is empty")
	h.wantError(400, "POST", "/hubs/crm/contacts", "true", "must be a JSON object")

	// Authentication: the Element part is needed, and an organization's own
	// credentials are not an instance.
	if r := s.do("GET", "/hubs/crm/contacts", o.auth(), nil); r.Status != 401 {
		t.Fatalf("without Element: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/hubs/crm/contacts", "User "+o.User.Secret+", Element nope", nil); r.Status != 401 {
		t.Fatalf("wrong Element token: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/hubs/crm/contacts", h.auth()+", Organization "+o.Organization.Secret, nil); r.Status != 200 {
		t.Fatalf("with Organization too: %d %s", r.Status, r.Body)
	}

	// A disabled instance is refused.
	s.do("PATCH", "/instances/"+h.id, o.auth(), map[string]any{"disabled": true})
	h.wantError(403, "GET", "/hubs/crm/contacts", nil, "disabled")
}

func TestHubs_LookupsAndAddressChecks(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Locales", "locales@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")

	// A region without a country is refused before any Keap call at all.
	calls := s.keap.Stats().APICalls
	noCountry := newContact("r@example.com", "Rae")
	noCountry["addresses"] = []any{map[string]any{"field": "BILLING", "region": "US-AZ"}}
	h.wantError(400, "POST", "/hubs/crm/contacts", noCountry, "addresses[0].region \"US-AZ\" needs addresses[0].country_code", "/hubs/crm/lookups/countries")
	if got := s.keap.Stats().APICalls; got != calls {
		t.Fatalf("a region without a country reached Keap: %d calls", got-calls)
	}

	countries, _ := h.list("/hubs/crm/lookups/countries")
	if len(countries) < 5 || !slices.ContainsFunc(countries, func(c any) bool {
		m := c.(map[string]any)
		return m["code"] == "USA" && m["name"] == "United States"
	}) {
		t.Fatalf("countries: %v", countries)
	}
	provinces, _ := h.list("/hubs/crm/lookups/countries/USA/provinces")
	if len(provinces) != 51 || provinces[0].(map[string]any)["code"] != "US-AK" {
		t.Fatalf("US provinces: %d %v", len(provinces), provinces[:1])
	}
	h.wantError(404, "GET", "/hubs/crm/lookups/countries/XYZ/provinces", nil, "Keap knows no country \"XYZ\"")
	h.wantError(404, "GET", "/hubs/marketing/lookups/countries", nil, "serves hub crm")

	// Cached: the lists are fetched once, then checks cost Keap nothing.
	calls = s.keap.Stats().APICalls
	h.list("/hubs/crm/lookups/countries")
	h.list("/hubs/crm/lookups/countries/USA/provinces")
	for _, tt := range []struct {
		addr map[string]any
		want []string
	}{
		{map[string]any{"field": "BILLING", "country_code": "US"}, []string{"addresses[0].country_code \"US\" is not a country code Keap accepts", "ISO 3166-1 alpha-3", "GET /hubs/crm/lookups/countries"}},
		{map[string]any{"field": "BILLING", "country_code": "USA", "region": "AZ"}, []string{"addresses[0].region \"AZ\" is not a region of USA", "GET /hubs/crm/lookups/countries/USA/provinces"}},
		{map[string]any{"field": "BILLING", "country_code": "USA", "region": "CA-ON"}, []string{"not a region of USA"}},
		{map[string]any{"field": "BILLING", "country_code": 840}, []string{"addresses[0].country_code must be text"}},
	} {
		c := newContact("bad@example.com", "Bad")
		c["addresses"] = []any{tt.addr}
		h.wantError(400, "POST", "/hubs/crm/contacts", c, tt.want...)
		h.wantError(400, "PUT", "/hubs/crm/contacts", c, tt.want...)
	}
	h.wantError(400, "POST", "/hubs/crm/companies", map[string]any{"company_name": "Bad", "address": map[string]any{"country_code": "XXX"}}, "address.country_code \"XXX\"")
	if got := s.keap.Stats().APICalls; got != calls {
		t.Fatalf("lookups or refused writes reached Keap: %d calls", got-calls)
	}

	// Valid codes pass, including a region of a country Keap lists no regions for.
	good := newContact("good@example.com", "Good")
	good["addresses"] = []any{map[string]any{"field": "BILLING", "country_code": "USA", "region": "US-AZ"},
		map[string]any{"field": "SHIPPING", "country_code": "GBR", "region": "GB-LND"}}
	c := h.want(201, "POST", "/hubs/crm/contacts", good)
	h.want(200, "PATCH", fmt.Sprint("/hubs/crm/contacts/", c["id"]), map[string]any{"addresses": []any{map[string]any{"field": "BILLING", "country_code": "CAN", "region": "CA-ON"}}})
}

func TestHubs_KeapErrorsKeepTheirMeaningAndNoCredentialLeaks(t *testing.T) {
	t.Parallel()
	// unreachable makes Keap's REST API drop connections, as a host that is down.
	var unreachable atomic.Bool
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if unreachable.Load() && strings.HasPrefix(r.URL.Path, "/crm/rest/") {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, nil)
	o := s.createOrg("Errors", "errors@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("service account instance: %d %s", r.Status, r.Body)
	}
	sak := hubUser{t: t, s: s, o: o, token: r.JSON(t)["token"].(string)}
	s.keap.SeedContacts(2)

	var bodies []string
	keep := func(m map[string]any) { bodies = append(bodies, fmt.Sprint(m)) }

	m := h.wantError(404, "GET", "/hubs/crm/contacts/999", nil, "Keap found nothing for GET contacts/999")
	if m["providerMessage"] != "Contact with id 999 not found" {
		t.Fatalf("404: %v", m)
	}
	keep(m)
	keep(h.wantError(400, "POST", "/hubs/crm/contacts", map[string]any{"given_name": "Nobody"}, "Keap refused POST contacts (400)"))

	s.keap.FailNext(4, 429, "0")
	m = h.wantError(429, "GET", "/hubs/crm/contacts", nil, "rate limit")
	if !strings.Contains(m["providerMessage"].(string), "Rate limit quota violation") {
		t.Fatalf("429: %v", m)
	}
	keep(m)

	s.keap.SetDown(true)
	keep(h.wantError(502, "POST", "/hubs/crm/tags", map[string]any{"name": "x"}, "Keap failed (503)"))
	keep(sak.wantError(502, "POST", "/hubs/crm/tags", map[string]any{"name": "x"}, "Keap failed (503)"))
	s.keap.SetDown(false)
	unreachable.Store(true)
	keep(h.wantError(502, "POST", "/hubs/crm/tags", map[string]any{"name": "x"}, "Keap could not be reached"))
	unreachable.Store(false)

	// A 401 that renewal heals is invisible to the caller.
	s.keap.ExpireAccessTokens()
	if got, _ := h.list("/hubs/crm/contacts"); len(got) != 2 {
		t.Fatalf("after expiry: %v", got)
	}
	got, _ := sak.list("/hubs/crm/contacts")
	if len(got) != 2 {
		t.Fatalf("service account key: %v", got)
	}

	secretsNow := s.instanceSecrets(h.id)
	for _, secret := range []string{secretsNow["oauth.user.token"], secretsNow["oauth.user.refresh_token"], testClientSecret, testServiceKey, h.token, sak.token} {
		if secret == "" {
			t.Fatal("a secret to look for is empty")
		}
		for _, b := range bodies {
			if strings.Contains(b, secret) {
				t.Fatalf("an answer leaks a credential: %s", b)
			}
		}
		for _, line := range s.logs.Lines() {
			if strings.Contains(line, secret) {
				t.Fatalf("a log line leaks a credential: %s", line)
			}
		}
	}
}

// The README's hub commands run, as written, against `connectord serve --sandbox`.
func TestREADMEHubs_RunsAgainstSandbox(t *testing.T) {
	t.Parallel()
	script := strings.Join(readmeBlocks(t, "hubs", "sh"), "")
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	o := s.createOrg("dev", "dev@localhost")
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "BASE=" + s.URL, "USER_SECRET=" + o.User.Secret, "ORG_SECRET=" + o.Organization.Secret}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hubs complete") {
		t.Fatalf("README hubs block failed: %v\n%s\nserver logs:\n%s", err, out, s.logs)
	}
	for _, want := range []string{"contacts cannot filter on phone", "Elements-Upsert-Result: created", "Elements-Upsert-Result: updated",
		`addresses[0].country_code "US" is not a country code Keap accepts`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README hubs output lacks %q:\n%s", want, out)
		}
	}
	if k.Stats().APICalls != 0 {
		t.Fatal("the sandbox hubs block reached the test's fake Keap instead of the in-process one")
	}
}
