package hubs

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/upstream"
)

// oneInstance resolves every principal to the same instance of an element.
type oneInstance struct {
	inst *instances.Instance
	el   *elements.Element
}

func (o oneInstance) Resolve(context.Context, tenants.Principal) (*instances.Instance, *elements.Element, error) {
	return o.inst, o.el, nil
}

// cannedKeap answers every request with the same status and body, and keeps
// the last request it was sent. length is the answer's ContentLength: -1 for
// an answer of unknown length, as Keap's chunked answers are.
type cannedKeap struct {
	status int
	body   []byte
	length int64
	last   *http.Request
}

func (k *cannedKeap) Do(_ context.Context, _ upstream.Target, req *http.Request, _ []byte) (*http.Response, error) {
	k.last = req
	return &http.Response{
		StatusCode:    k.status,
		Header:        http.Header{"Content-Type": {"application/json;charset=UTF-8"}},
		Body:          io.NopCloser(bytes.NewReader(k.body)),
		ContentLength: k.length,
	}, nil
}

// newCannedService returns a Service whose one instance is an
// infusionsoftcrm instance with a service account key, answered by keap.
func newCannedService(tb testing.TB, keap *cannedKeap, config map[string]*string) *Service {
	tb.Helper()
	c, err := elements.Load(nil)
	if err != nil {
		tb.Fatal(err)
	}
	el, ok := c.Lookup("infusionsoftcrm")
	if !ok {
		tb.Fatal("no element infusionsoftcrm")
	}
	if config == nil {
		config = map[string]*string{}
	}
	inst := &instances.Instance{
		ID: 7, OrganizationID: 1, ElementKey: el.Key, AuthType: instances.AuthAPIKey, Valid: true,
		Config:  config,
		Secrets: map[string]string{instances.KeyAPIKey: "KeapAK-test"},
	}
	return New(oneInstance{inst: inst, el: el}, keap, Options{})
}

// contactsPage is a Keap contacts page of n contacts, as Keap writes it.
func contactsPage(n, count int) []byte {
	items := make([]string, n)
	for i := range items {
		id := strconv.Itoa(i + 1)
		items[i] = `{"id":` + id + `,"given_name":"Bench","family_name":"Contact ` + id + `","email_addresses":[{"email":"bench` + id + `@example.test","field":"EMAIL1"}],"phone_numbers":[],"addresses":[],"tag_ids":[],"date_created":"2026-01-01T00:00:00.000Z","last_updated":"2026-01-02T00:00:00.000Z","email_status":"SingleOptIn","email_opted_in":true,"middle_name":null,"company":null}`
	}
	return []byte(`{"contacts":[` + strings.Join(items, ",") + `],"count":` + strconv.Itoa(count) + `,"next":"https://api.infusionsoft.com/crm/rest/v1/contacts/?limit=10&offset=10","previous":null}`)
}

func listContacts(s *Service, query url.Values) (*Result, error) {
	return s.Call(context.Background(), tenants.Principal{OrganizationID: 1, InstanceID: 7},
		Request{Hub: "crm", Resource: "contacts", Method: http.MethodGet, Query: query})
}

// The request list sends Keap: the REST base, the resource's path, and the
// mapped parameters in encoded (sorted) order.
func TestList_SendsKeapItsParameters(t *testing.T) {
	t.Parallel()
	keap := &cannedKeap{status: http.StatusOK, body: contactsPage(2, 2), length: -1}
	s := newCannedService(t, keap, nil)
	q := url.Values{"pageSize": {"10"}, "where": {"email = 'a+b@c.d' and lastUpdated > '2024-01-31'"}, "orderBy": {"email desc"}}
	r, err := listContacts(s, q)
	if err != nil {
		t.Fatal(err)
	}
	want := "https://api.infusionsoft.com/crm/rest/v1/contacts?email=a%2Bb%40c.d&limit=10&offset=0&order=email&order_direction=DESCENDING&since=2024-01-31T00%3A00%3A00.001Z"
	if got := keap.last.URL.String(); got != want {
		t.Errorf("URL %s\nwant %s", got, want)
	}
	if keap.last.Method != http.MethodGet || keap.last.Header.Get("Accept") != "application/json" || keap.last.Body != nil {
		t.Errorf("request %s %v, body %v", keap.last.Method, keap.last.Header, keap.last.Body)
	}
	if keap.last.Host != "api.infusionsoft.com" || keap.last.URL.RawQuery == "" || keap.last.URL.Path != "/crm/rest/v1/contacts" {
		t.Errorf("host %q, path %q, query %q", keap.last.Host, keap.last.URL.Path, keap.last.URL.RawQuery)
	}
	if r.Status != http.StatusOK || r.NextPage != "" || !bytes.HasPrefix(r.Body, []byte(`[{"id":1,"given_name":"Bench","family_name":"Contact 1",`)) {
		t.Errorf("result %d %q %s", r.Status, r.NextPage, r.Body)
	}
}

// BenchmarkList_ContactsPage is the hub list endpoint without HTTP: a
// 10-contact Keap page, answered at once, read, checked and re-encoded.
func BenchmarkList_ContactsPage(b *testing.B) {
	page := contactsPage(10, 25)
	for _, tt := range []struct {
		name   string
		length int64
	}{{"chunked", -1}, {"length", int64(len(page))}} {
		b.Run(tt.name, func(b *testing.B) {
			s := newCannedService(b, &cannedKeap{status: http.StatusOK, body: page, length: tt.length}, nil)
			q := url.Values{"pageSize": {"10"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := listContacts(s, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestReadBody_WholeAnswerInOneBuffer(t *testing.T) {
	t.Parallel()
	page := contactsPage(10, 10)
	big := bytes.Repeat([]byte("x"), 100<<10)
	tests := []struct {
		name   string
		body   io.Reader
		length int64
		want   []byte
	}{
		{"length given", bytes.NewReader(page), int64(len(page)), page},
		{"no length", bytes.NewReader(page), -1, page},
		{"empty", bytes.NewReader(nil), 0, []byte{}},
		{"a byte at a time", iotest.OneByteReader(bytes.NewReader(page)), int64(len(page)), page},
		{"longer than 8 KB, no length", iotest.HalfReader(bytes.NewReader(big)), -1, big},
		{"longer than its length", bytes.NewReader(page), 10, page},
		{"shorter than its length", bytes.NewReader(page), int64(len(page)) + 500, page},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(page)), -1, page},
	}
	for _, tt := range tests {
		got, err := readBody(tt.body, tt.length)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", tt.name, len(got), err, len(tt.want))
		}
	}
	if _, err := readBody(iotest.TimeoutReader(bytes.NewReader(page)), -1); err != iotest.ErrTimeout {
		t.Errorf("a failing read: %v, want %v", err, iotest.ErrTimeout)
	}
}

// An answer of the length Keap announced is read without the buffer growing.
func TestReadBody_KnownLengthAllocatesOnce(t *testing.T) {
	page := contactsPage(10, 10)
	r := bytes.NewReader(page)
	if allocs := testing.AllocsPerRun(20, func() {
		r.Reset(page)
		_, _ = readBody(r, int64(len(page)))
	}); allocs > 2 { // the buffer, and the LimitReader
		t.Errorf("%v allocations reading an answer of known length", allocs)
	}
}

// An answer over maxKeapBody is read only one byte past the limit, so send
// can refuse it.
func TestReadBody_StopsPastTheLimit(t *testing.T) {
	t.Parallel()
	got, err := readBody(io.LimitReader(zeros{}, maxKeapBody+100), maxKeapBody+100)
	if err != nil || len(got) != maxKeapBody+1 {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
