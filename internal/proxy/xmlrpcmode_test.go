package proxy

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
)

// modeInstance resolves every caller to one service-account-key instance
// with the given xmlrpc.mode ("" for an instance stored before the entry).
type modeInstance struct{ mode string }

func (m modeInstance) Resolve(context.Context, tenants.Principal) (*instances.Instance, *elements.Element, error) {
	el := &elements.Element{Key: "infusionsoftcrm"}
	el.Endpoints = elements.Endpoints{APIURL: "https://api.keap.test", RESTPath: "/crm/rest/v1", XMLRPCPath: "/crm/xmlrpc/v1"}
	inst := &instances.Instance{ID: 7, OrganizationID: 1, AuthType: instances.AuthAPIKey,
		Secrets: map[string]string{instances.KeyAPIKey: "KeapAK-unit"}, Config: map[string]*string{}}
	if m.mode != "" {
		inst.Config[instances.KeyXMLRPCMode] = &m.mode
	}
	return inst, el, nil
}

// recordingBridge answers every call with a fixed methodResponse and counts the calls.
type recordingBridge struct{ calls atomic.Int32 }

func (b *recordingBridge) Call(_ context.Context, inst *instances.Instance, body []byte) ([]byte, error) {
	b.calls.Add(1)
	return []byte("<methodResponse><params><param><value><string>bridged</string></value></param></params></methodResponse>"), nil
}

func TestPrepare_XMLRPCFollowsTheInstanceMode(t *testing.T) {
	t.Parallel()
	before := KeapXMLRPCSunset().Add(-time.Minute)
	after := KeapXMLRPCSunset().Add(time.Second)
	call := Request{Method: "POST", Path: "crm/xmlrpc/v1", Body: []byte(`<methodCall><methodName>DataService.echo</methodName><params><param><value>hi</value></param></params></methodCall>`)}
	for _, tc := range []struct {
		name    string
		mode    string
		bridge  bool
		now     time.Time
		bridged bool        // answered by the bridge
		code    apperr.Code // refused with
	}{
		{"bridge mode goes to the bridge", "bridge", true, before, true, ""},
		{"bridge mode goes to the bridge after the sunset too", "bridge", true, after, true, ""},
		{"bridge mode without a bridge is 501 naming the mode", "bridge", false, before, true, apperr.NotImplemented},
		{"passthrough goes to Keap before the sunset", "passthrough", true, before, false, ""},
		{"passthrough after the sunset is refused", "passthrough", true, after, false, apperr.Gone},
		{"an instance stored before the entry is passthrough", "", true, before, false, ""},
		{"and is refused after the sunset too", "", true, after, false, apperr.Gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := XMLRPC{Now: func() time.Time { return tc.now }}
			b := &recordingBridge{}
			if tc.bridge {
				x.Bridge = b
			}
			p := New(modeInstance{tc.mode}, nil, x)
			c, err := p.Prepare(context.Background(), tenants.Principal{InstanceID: 7}, call)
			if err == nil && c.Bridged {
				var answer []byte
				answer, err = p.Bridge(context.Background(), c)
				if err == nil && (!strings.Contains(string(answer), "bridged") || b.calls.Load() != 1) {
					t.Fatalf("the bridge answered %s after %d calls", answer, b.calls.Load())
				}
			}
			if tc.code != "" {
				if apperr.CodeOf(err) != tc.code {
					t.Fatalf("%v, want %s", err, tc.code)
				}
				msg := err.Error()
				if !strings.Contains(msg, "xmlrpc.mode") || !strings.Contains(msg, "PATCH /instances/7") {
					t.Fatalf("the refusal %q does not name xmlrpc.mode and how to change it", msg)
				}
				if tc.code == apperr.Gone && !strings.Contains(msg, "set xmlrpc.mode to bridge") {
					t.Fatalf("after the sunset the refusal %q does not say to use the bridge", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Bridged != tc.bridged {
				t.Fatalf("bridged %v, want %v", c.Bridged, tc.bridged)
			}
			if !tc.bridged && c.URL.String() != "https://api.keap.test/crm/xmlrpc/v1" {
				t.Fatalf("passthrough goes to %s", c.URL)
			}
		})
	}
	// REST through the proxy is the same in every mode, after the sunset too.
	p := New(modeInstance{"bridge"}, nil, XMLRPC{Now: func() time.Time { return after }})
	c, err := p.Prepare(context.Background(), tenants.Principal{InstanceID: 7}, Request{Method: "GET", Path: "crm/rest/v2/contacts"})
	if err != nil || c.Bridged || c.URL.String() != "https://api.keap.test/crm/rest/v2/contacts" {
		t.Fatalf("REST in bridge mode after the sunset: %v %v", c, err)
	}
}
