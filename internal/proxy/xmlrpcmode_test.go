package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/upstream"
)

// modeInstance resolves every caller to one service-account-key instance
// with the given xmlrpc.mode ("" for an instance stored before the entry).
type modeInstance struct {
	apiURL, mode string
}

func (m modeInstance) Resolve(context.Context, tenants.Principal) (*instances.Instance, *elements.Element, error) {
	el := &elements.Element{Key: "infusionsoftcrm"}
	el.Endpoints = elements.Endpoints{APIURL: m.apiURL, RESTPath: "/crm/rest/v1", XMLRPCPath: "/crm/xmlrpc/v1"}
	inst := &instances.Instance{ID: 7, OrganizationID: 1, AuthType: instances.AuthAPIKey,
		Secrets: map[string]string{instances.KeyAPIKey: sak}, Config: map[string]*string{}}
	if m.mode != "" {
		inst.Config[instances.KeyXMLRPCMode] = &m.mode
	}
	return inst, el, nil
}

// recordingBridge answers every call with a fixed methodResponse and counts the calls.
type recordingBridge struct{ calls atomic.Int32 }

func (b *recordingBridge) Call(_ context.Context, inst *instances.Instance, body []byte) ([]byte, error) {
	b.calls.Add(1)
	return []byte("<methodResponse><params><param><value><string>bridged " + string(rune('0'+inst.ID)) + "</string></value></param></params></methodResponse>"), nil
}

func TestProxy_XMLRPCFollowsTheInstanceMode(t *testing.T) {
	t.Parallel()
	var keapCalls atomic.Int32
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keapCalls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, "<methodResponse><params><param><value><string>from keap</string></value></param></params></methodResponse>")
	}))
	t.Cleanup(keap.Close)
	before := time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)
	after := time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC)
	call := `<?xml version="1.0"?><methodCall><methodName>DataService.echo</methodName><params><param><value>hi</value></param></params></methodCall>`
	for _, tc := range []struct {
		name      string
		mode      string
		bridge    bool
		now       time.Time
		status    int
		body      string
		keapCalls int32
	}{
		{"bridge mode goes to the bridge", "bridge", true, before, 200, "bridged 7", 0},
		{"bridge mode without a bridge is 501 naming the mode", "bridge", false, before, 599, "not_implemented", 0},
		{"passthrough goes to Keap before the sunset", "passthrough", true, before, 200, "from keap", 1},
		{"passthrough after the sunset is refused", "passthrough", true, after, 599, "gone", 0},
		{"an instance stored before the entry is passthrough", "", true, before, 200, "from keap", 1},
		{"and is refused after the sunset too", "", true, after, 599, "gone", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keapCalls.Store(0)
			x := XMLRPC{Now: func() time.Time { return tc.now }}
			b := &recordingBridge{}
			if tc.bridge {
				x.Bridge = b
			}
			p := New(modeInstance{keap.URL, tc.mode}, upstream.New(nil, upstream.Options{}), zerolog.Nop(), x)
			var failed error
			fail := func(w http.ResponseWriter, r *http.Request, err error) {
				failed = err
				w.WriteHeader(599)
				_, _ = io.WriteString(w, string(apperr.CodeOf(err)))
			}
			r := chi.NewRouter()
			r.Handle("/proxy/*", p.Handler(func(*http.Request) tenants.Principal { return tenants.Principal{OrganizationID: 1, InstanceID: 7} }, fail))
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("POST", "/proxy/crm/xmlrpc/v1", strings.NewReader(call)))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.status, tc.body)
			}
			if keapCalls.Load() != tc.keapCalls {
				t.Fatalf("Keap got %d calls, want %d", keapCalls.Load(), tc.keapCalls)
			}
			if tc.status == 200 && tc.keapCalls == 0 && b.calls.Load() != 1 {
				t.Fatalf("the bridge got %d calls, want 1", b.calls.Load())
			}
			if failed != nil {
				msg := failed.Error()
				if !strings.Contains(msg, "xmlrpc.mode") || !strings.Contains(msg, "PATCH /instances/7") {
					t.Fatalf("the refusal %q does not name xmlrpc.mode and how to change it", msg)
				}
				if tc.body == "gone" && !strings.Contains(msg, "set xmlrpc.mode to bridge") {
					t.Fatalf("after the sunset the refusal %q does not say to use the bridge", msg)
				}
			}
		})
	}
	// REST through the proxy is the same in every mode.
	p := New(modeInstance{keap.URL, "bridge"}, upstream.New(nil, upstream.Options{}), zerolog.Nop(), XMLRPC{Now: func() time.Time { return after }})
	r := chi.NewRouter()
	r.Handle("/proxy/*", p.Handler(func(*http.Request) tenants.Principal { return tenants.Principal{} }, func(w http.ResponseWriter, _ *http.Request, err error) { w.WriteHeader(599) }))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/proxy/crm/rest/v2/contacts", nil))
	if rec.Code != 200 {
		t.Fatalf("REST in bridge mode after the sunset: %d", rec.Code)
	}
}
