package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/upstream"
)

// kinds resolves instance 1 to a service account key, 2 to a legacy key.
type kinds struct{}

func (kinds) Resolve(_ context.Context, p tenants.Principal) (*instances.Instance, *elements.Element, error) {
	el := &elements.Element{Key: "infusionsoftcrm"}
	el.Endpoints = elements.Endpoints{APIURL: "https://api.keap.test/base/", RESTPath: "/crm/rest/v1", XMLRPCPath: "/crm/xmlrpc/v1",
		LegacyXMLRPCURL: "https://{app}.keap.test/api/xmlrpc"}
	inst := &instances.Instance{ID: p.InstanceID, OrganizationID: 1, AuthType: instances.AuthAPIKey,
		Secrets: map[string]string{instances.KeyAPIKey: "KeapAK-unit"}, Config: map[string]*string{}}
	if p.InstanceID == 2 {
		app := "ab123"
		inst.Secrets[instances.KeyAPIKey], inst.Config[instances.KeyAppName] = "legacy-key", &app
	}
	return inst, el, nil
}

func TestPrepare_WhereEachRequestGoesOrWhyNot(t *testing.T) {
	t.Parallel()
	const call = `<?xml version="1.0"?><methodCall><methodName>DataService.getAppSetting</methodName><params><param><value><string>x</string></value></param></params></methodCall>`
	const echo = `<?xml version="1.0"?><methodCall><methodName>DataService.echo</methodName><params><param><value><string>x</string></value></param></params></methodCall>`
	for _, tc := range []struct {
		name     string
		instance int64
		req      Request
		wantURL  string // empty: refused
		wantErr  string
	}{
		{"REST path and query as sent", 1, Request{Method: "GET", Path: "crm/rest/v1/contacts/a%2Fb", RawQuery: "limit=1&x=%20"},
			"https://api.keap.test/base/crm/rest/v1/contacts/a%2Fb?limit=1&x=%20", ""},
		{"dot segment", 1, Request{Method: "GET", Path: "crm/rest/v1/../../admin"}, "", "must not contain . or .."},
		{"escaped dot segment", 1, Request{Method: "GET", Path: "crm/%2e%2e/admin"}, "", "must not contain . or .."},
		{"bad escape", 1, Request{Method: "GET", Path: "crm/%zz"}, "", "not validly escaped"},
		{"legacy XML-RPC", 2, Request{Method: "POST", Path: "crm/xmlrpc/v1", Body: []byte(call)}, "https://ab123.keap.test/api/xmlrpc", ""},
		{"legacy echo", 2, Request{Method: "POST", Path: "crm/xmlrpc/v1", Body: []byte(echo)}, "https://ab123.keap.test/api/xmlrpc", ""},
		{"legacy REST", 2, Request{Method: "GET", Path: "crm/rest/v1/contacts"}, "", "legacy XML-RPC endpoint"},
	} {
		beforeSunset := XMLRPC{Now: func() time.Time { return KeapXMLRPCSunset().Add(-time.Hour) }}
		c, err := New(kinds{}, nil, beforeSunset).Prepare(context.Background(), tenants.Principal{InstanceID: tc.instance}, tc.req)
		if tc.wantErr != "" {
			if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want invalid naming %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.URL.String() != tc.wantURL || c.Instance.ID != tc.instance {
			t.Errorf("%s: %v %v, want %s", tc.name, c, err, tc.wantURL)
			continue
		}
		if tc.name == "legacy XML-RPC" && !strings.Contains(string(c.Body), "legacy-key") {
			t.Errorf("%s: the legacy key is not in the call: %s", tc.name, c.Body)
		}
		if tc.name == "legacy echo" && strings.Contains(string(c.Body), "legacy-key") {
			t.Errorf("%s: the key went into a method that takes none, whose answer would hand it back: %s", tc.name, c.Body)
		}
		if c.Target.APIKey == "" || c.Target.InstanceID != tc.instance {
			t.Errorf("%s: target %+v", tc.name, upstream.Target{InstanceID: c.Target.InstanceID})
		}
	}
}

func TestHeaders_ConnectordsOwnAndCookiesStayBehind(t *testing.T) {
	t.Parallel()
	h := http.Header{"Authorization": {"User u, Element e"}, "Elements-Request-Id": {"x"}, "Cookie": {"a=b"},
		"Expect": {"100-continue"}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Accept": {"application/json"}, "X-Custom": {"kept"}}
	OutgoingHeader(h)
	if len(h) != 2 || h.Get("Accept") == "" || h.Get("X-Custom") != "kept" {
		t.Errorf("outgoing header %v", h)
	}
	in := http.Header{"Set-Cookie": {"s=1"}, "Content-Type": {"application/json"}}
	IncomingHeader(in)
	if len(in) != 1 || in.Get("Content-Type") == "" {
		t.Errorf("incoming header %v", in)
	}
}
