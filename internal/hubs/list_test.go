package hubs

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
)

func resourceOf(t *testing.T, element, name string) elements.Resource {
	t.Helper()
	c, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	el, ok := c.Lookup(element)
	if !ok {
		t.Fatalf("no element %s", element)
	}
	r, ok := el.Resource(name)
	if !ok {
		t.Fatalf("%s serves no %s", element, name)
	}
	return r
}

func TestMapWhere_ContactsOntoKeapParameters(t *testing.T) {
	t.Parallel()
	contacts := resourceOf(t, "infusionsoftcrm", "contacts")
	tests := []struct {
		where   string
		want    url.Values
		wantErr []string // parts of the 400's message
	}{
		{"", url.Values{}, nil},
		{"email = 'a@b.c'", url.Values{"email": {"a@b.c"}}, nil},
		{"firstName = 'Ann' and lastName = 'O''Brien'", url.Values{"given_name": {"Ann"}, "family_name": {"O'Brien"}}, nil},
		{"given_name = 'Ann' and family_name = 'Lee'", url.Values{"given_name": {"Ann"}, "family_name": {"Lee"}}, nil},
		{"lastUpdated >= '2024-01-31T10:00:00Z' and lastUpdated <= '2024-02-01'",
			url.Values{"since": {"2024-01-31T10:00:00.000Z"}, "until": {"2024-02-01T00:00:00.000Z"}}, nil},
		{"lastUpdated > '2024-01-31T10:00:00.5+01:00' and lastUpdated < '2024-02-01T00:00:00Z'",
			url.Values{"since": {"2024-01-31T09:00:00.501Z"}, "until": {"2024-01-31T23:59:59.999Z"}}, nil},

		{"phone = '555'", nil, []string{"cannot filter on phone", "email =", "firstName =", "lastUpdated > >= < <="}},
		{"email != 'a'", nil, []string{"operator != is not supported on email, only ="}},
		{"email like 'a%'", nil, []string{"operator like"}},
		{"email in ('a', 'b')", nil, []string{"operator in"}},
		{"lastUpdated = '2024-01-01'", nil, []string{"operator = is not supported on lastUpdated"}},
		{"email = 42", nil, []string{"email takes text in single quotes"}},
		{"email = null", nil, []string{"email takes text"}},
		{"lastUpdated >= 'yesterday'", nil, []string{"lastUpdated takes a date"}},
		{"email = 'a' and email = 'b'", nil, []string{"both set Keap's email"}},
		{"firstName = 'a' and given_name = 'b'", nil, []string{"both set Keap's given_name"}},
		{"lastUpdated > '2024-01-01' and lastUpdated >= '2024-01-02'", nil, []string{"both set Keap's since"}},
		{"email = 'a' or email = 'b'", nil, []string{"or is not supported", "supported for contacts"}},
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			got := url.Values{}
			err := mapWhere(contacts, tt.where, got)
			if tt.wantErr != nil {
				if apperr.CodeOf(err) != apperr.Invalid {
					t.Fatalf("mapWhere(%q) = %v, want an invalid error", tt.where, err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("mapWhere(%q) = %v, %v; want %v", tt.where, got, err, tt.want)
			}
		})
	}
}

func TestMapWhere_TypedParameters(t *testing.T) {
	t.Parallel()
	tasks := resourceOf(t, "infusionsoftcrm", "tasks")
	got := url.Values{}
	if err := mapWhere(tasks, "contactId = 7 and completed = false and userId = '3'", got); err != nil {
		t.Fatal(err)
	}
	if want := (url.Values{"contact_id": {"7"}, "completed": {"false"}, "user_id": {"3"}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for where, msg := range map[string]string{
		"contactId = 'seven'": "contactId takes a whole number",
		"contactId = 1.5":     "contactId takes a whole number",
		"completed = 'yes'":   "completed takes true or false",
	} {
		if err := mapWhere(tasks, where, url.Values{}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("mapWhere(%q) = %v, want %q", where, err, msg)
		}
	}
	if err := mapWhere(resourceOf(t, "infusionsoftecommerce", "subscriptions"), "contactId = 1 and status = 'x'", url.Values{}); err == nil ||
		!strings.Contains(err.Error(), "supported for subscriptions: contactId =") {
		t.Errorf("subscriptions: %v", err)
	}
}

func TestMapOrderBy(t *testing.T) {
	t.Parallel()
	contacts := resourceOf(t, "infusionsoftcrm", "contacts")
	orders := resourceOf(t, "infusionsoftecommerce", "orders")
	products := resourceOf(t, "infusionsoftecommerce", "products")
	tests := []struct {
		res     elements.Resource
		in      string
		want    url.Values
		wantErr string
	}{
		{contacts, "", url.Values{}, ""},
		{contacts, "email", url.Values{"order": {"email"}}, ""},
		{contacts, "lastUpdated desc", url.Values{"order": {"last_updated"}, "order_direction": {"DESCENDING"}}, ""},
		{contacts, "createdDate ASC", url.Values{"order": {"date_created"}, "order_direction": {"ASCENDING"}}, ""},
		{orders, "orderDate", url.Values{"order": {"order_date"}}, ""},
		{contacts, "shoeSize", nil, "orderBy takes one of createdDate, email, id, lastUpdated, name [asc|desc]"},
		{contacts, "email sideways", nil, "asc or desc"},
		{contacts, "email, id", nil, "one field"},
		{contacts, "email asc id", nil, "one field"},
		{orders, "orderDate desc", nil, "own direction"},
		{products, "id", nil, "Keap cannot order products"},
	}
	for _, tt := range tests {
		got := url.Values{}
		err := mapOrderBy(tt.res, tt.in, got)
		if tt.wantErr != "" {
			if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s orderBy %q = %v, want %q", tt.res.Name, tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s orderBy %q = %v, %v; want %v", tt.res.Name, tt.in, got, err, tt.want)
		}
	}
}

func TestCursor_RoundTripsAndRefusesForgeries(t *testing.T) {
	t.Parallel()
	key := cursorKey("contacts", "", "email = 'a'", "")
	c := encodeCursor(400, key)
	if got, err := decodeCursor(c, key); err != nil || got != 400 {
		t.Fatalf("decodeCursor = %d, %v", got, err)
	}
	for name, bad := range map[string]string{
		"garbled":       c[:len(c)-2] + "zz",
		"not base64":    "***",
		"empty payload": "",
		"other query":   encodeCursor(400, cursorKey("contacts", "", "email = 'b'", "")),
		"forged offset": "bzEwLjAwMDAwMDAwMDAwMA", // base64url of o10.000000000000
		"negative":      encodeCursor(-5, key),
	} {
		if _, err := decodeCursor(bad, key); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("%s cursor %q: %v, want invalid", name, bad, err)
		}
	}
}

func TestPageSize_DefaultCapAndRefusals(t *testing.T) {
	t.Parallel()
	c, _ := elements.Load(nil)
	el, _ := c.Lookup("infusionsoftcrm")
	max50 := "50"
	small := &instances.Instance{Config: map[string]*string{KeyPageMax: &max50}}
	plain := &instances.Instance{Config: map[string]*string{}}
	for _, tt := range []struct {
		in   string
		inst *instances.Instance
		want int
	}{
		{"", plain, 200}, {"20", plain, 20}, {"1000", plain, 200}, {"", small, 50}, {"70", small, 50}, {"7", small, 7},
	} {
		if got, err := pageSize(tt.in, el, tt.inst); err != nil || got != tt.want {
			t.Errorf("pageSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"0", "-1", "ten", "1.5"} {
		if _, err := pageSize(bad, el, plain); apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), "from 1 to 200") {
			t.Errorf("pageSize(%q): %v", bad, err)
		}
	}
}

func TestRecode_RemovesNullMembersAtAnyDepth(t *testing.T) {
	t.Parallel()
	got, err := recode([]byte(`{"a":null,"b":{"c":null,"d":[{"e":null,"f":1},null]},"g":12345678901234567890}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"b":{"d":[{"f":1},null]},"g":12345678901234567890}` + "\n"; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// Every resource an element serves is reachable: top-level ones by name,
// children under their parent, which the element serves too.
func TestDefinitions_EveryResourceIsServable(t *testing.T) {
	t.Parallel()
	c, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, el := range c.All() {
		for _, r := range el.Resources {
			if r.Parent != "" {
				if _, ok := el.Resource(r.Parent); !ok {
					t.Errorf("%s serves %s but not its parent %s", el.Key, r.Name, r.Parent)
				}
			}
			if r.ListKey == "" && !strings.HasPrefix(r.Name, "lookups/") {
				t.Errorf("%s: %s has no listKey", el.Key, r.Name)
			}
			for field, param := range r.Filters {
				if _, dup := r.DateFilters[field]; dup || param == "" {
					t.Errorf("%s: %s filter %s is ambiguous or empty", el.Key, r.Name, field)
				}
			}
		}
	}
}
