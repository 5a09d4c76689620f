package xmlrpcbridge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"golang.org/x/time/rate"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/upstream"
)

const testKey = "KeapAK-bridge-test-key"

// sent is one request the bridge sent Keap.
type sent struct {
	Method string
	Path   string // with the query
	Body   []byte
	Status int
}

// recorder is the bridge's Doer in tests: the real upstream client, with
// every request it sends kept.
type recorder struct {
	next *upstream.Client
	mu   sync.Mutex
	sent []sent
}

func (r *recorder) Do(ctx context.Context, t upstream.Target, req *http.Request, body []byte) (*http.Response, error) {
	resp, err := r.next.Do(ctx, t, req, body)
	s := sent{Method: req.Method, Path: req.URL.RequestURI(), Body: body}
	if resp != nil {
		s.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.sent = append(r.sent, s)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

// env is one fake Keap with a bridge over it.
type env struct {
	fake   *fakekeap.Server
	srv    *httptest.Server
	bridge *Bridge
	keap   *recorder
	inst   *instances.Instance
	el     *elements.Element
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvWrapped(tb, func(h http.Handler) http.Handler { return h })
}

// newEnvWrapped serves the fake Keap through wrap.
func newEnvWrapped(tb testing.TB, wrap func(http.Handler) http.Handler) *env {
	tb.Helper()
	fake := fakekeap.New(fakekeap.Options{})
	fake.AddServiceAccountKey(testKey)
	srv := httptest.NewServer(wrap(fake))
	tb.Cleanup(srv.Close)
	cat, err := elements.Load(map[string]elements.Endpoints{"infusionsoft": {APIURL: srv.URL}})
	if err != nil {
		tb.Fatal(err)
	}
	el, ok := cat.Lookup("infusionsoftcrm")
	if !ok {
		tb.Fatal("no element infusionsoftcrm")
	}
	rec := &recorder{next: upstream.New(nil, upstream.Options{KeyRate: rate.Inf, HTTP: srv.Client()})}
	b, err := New(rec, cat, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	inst := &instances.Instance{ID: 7, OrganizationID: 1, ElementKey: el.Key, AuthType: instances.AuthAPIKey, Valid: true,
		Config: map[string]*string{}, Secrets: map[string]string{instances.KeyAPIKey: testKey}}
	return &env{fake: fake, srv: srv, bridge: b, keap: rec, inst: inst, el: el}
}

// viaBridge makes one call through the bridge, the key first.
func (e *env) viaBridge(tb testing.TB, method string, params ...any) (any, error) {
	tb.Helper()
	body, err := keap.EncodeCall(method, append([]any{"cdbk_unused-here"}, params...)...)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := e.bridge.Call(context.Background(), e.inst, body)
	if err != nil {
		tb.Fatalf("%s: %v", method, err)
	}
	return keap.DecodeResponse(out)
}

// viaFake makes one call to the fake Keap's own XML-RPC.
func (e *env) viaFake(tb testing.TB, method string, params ...any) (any, error) {
	tb.Helper()
	body, err := keap.EncodeCall(method, append([]any{testKey}, params...)...)
	if err != nil {
		tb.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/crm/xmlrpc/v1", bytes.NewReader(body))
	req.Header.Set("X-Keap-API-Key", testKey)
	req.Header.Set("Content-Type", "text/xml")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s: the fake's XML-RPC answered %d: %s", method, resp.StatusCode, raw)
	}
	return keap.DecodeResponse(raw)
}

func TestBridge_ContactRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := e.viaBridge(t, "ContactService.add", map[string]any{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.test", "Phone1": "555-0100", "StreetAddress1": "1 Analytical St"})
	if err != nil {
		t.Fatalf("add: %v\n%v", err, e.keap.take())
	}
	got, err := e.viaBridge(t, "ContactService.load", id, []any{"Id", "FirstName", "Email", "Phone1", "StreetAddress1", "City", "DateCreated"})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("%#v", got)
	if _, err := e.viaBridge(t, "ContactService.update", id, map[string]any{"EmailAddress2": "ada2@example.test", "City": "London"}); err != nil {
		t.Fatalf("update: %v\n%v", err, e.keap.take())
	}
	rows, err := e.viaBridge(t, "DataService.query", "Contact", 10, 0, map[string]any{"FirstName": "A%"}, []any{"Id", "Email", "EmailAddress2", "City", "Groups"})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	t.Logf("%#v", rows)
	for _, s := range e.keap.take() {
		t.Logf("%s %s %d %s", s.Method, s.Path, s.Status, s.Body)
	}
}
