package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// xmlrpcCall writes a methodCall whose parameters are already-encoded <value>s.
func xmlrpcCall(method string, values ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>` + method + `</methodName><params>`)
	for _, v := range values {
		b.WriteString("<param><value>" + v + "</value></param>")
	}
	b.WriteString("</params></methodCall>")
	return b.String()
}

const placeholder = "<string>placeholder</string>"

// sweepCalls are the XML-RPC calls and REST and hub requests the sweep makes
// as each instance: answers, faults and refusals of every kind.
var sweepXMLRPC = []string{
	xmlrpcCall("DataService.echo", placeholder),
	xmlrpcCall("DataService.echo"),
	xmlrpcCall("DataService.echo", "<string>key?</string>", "<int>2</int>"),
	xmlrpcCall("DataService.getAppSetting", placeholder, "<string>Application</string>", "<string>appname</string>"),
	xmlrpcCall("DataService.getAppSetting"),
	xmlrpcCall("ContactService.add", placeholder, "<struct><member><name>FirstName</name><value>Sweep</value></member><member><name>Email</name><value>sweep@example.com</value></member></struct>"),
	xmlrpcCall("ContactService.load", placeholder, "<int>1</int>", "<array><data><value>Id</value><value>Email</value><value>FirstName</value></data></array>"),
	xmlrpcCall("ContactService.load", placeholder, "<int>999999</int>", "<array><data><value>Id</value></data></array>"),
	xmlrpcCall("ContactService.update", placeholder, "<int>1</int>", "<struct><member><name>NoSuchField</name><value>x</value></member></struct>"),
	xmlrpcCall("DataService.query", placeholder, "<string>Contact</string>", "<int>10</int>", "<int>0</int>",
		"<struct><member><name>Email</name><value>%</value></member></struct>", "<array><data><value>Id</value><value>Email</value></data></array>"),
	xmlrpcCall("DataService.findByField", placeholder, "<string>Contact</string>", "<int>10</int>", "<int>0</int>", "<string>FirstName</string>", "<string>Sweep</string>",
		"<array><data><value>Id</value></data></array>"),
	xmlrpcCall("ContactService.addWithDupCheck", placeholder, "<struct><member><name>Email</name><value>sweep@example.com</value></member></struct>", "<string>Email</string>"),
	xmlrpcCall("system.listMethods"),
	xmlrpcCall("NoSuchService.method", placeholder),
	`<?xml version="1.0"?><methodCall><methodName>DataService.echo</methodName><params><param><value><int>not a number</int></value></param></params></methodCall>`,
	`<methodCall><methodName>unterminated`,
}

var sweepREST = []struct{ method, path, body string }{
	{"GET", "/proxy/crm/rest/v1/contacts?limit=2", ""},
	{"GET", "/proxy/crm/rest/v1/contacts/1", ""},
	{"GET", "/proxy/crm/rest/v1/contacts/999999", ""},
	{"POST", "/proxy/crm/rest/v1/contacts", `{"given_name":"Rest"}`},
	{"POST", "/proxy/crm/rest/v1/contacts", `not json`},
	{"GET", "/proxy/crm/rest/v1/account/profile", ""},
	{"GET", "/proxy/crm/rest/v1/oauth/connect/userinfo", ""},
	{"GET", "/proxy/crm/rest/v1/no/such/path", ""},
	{"GET", "/proxy/crm/rest/v1/contacts?bogus=1", ""},
	{"GET", "/proxy/crm/rest/v2/contacts?page_size=2", ""},
	{"POST", "/proxy/crm/rest/v2/contacts", `{"given_name":"Two","email_addresses":[{"email":"two@example.com","field":"EMAIL1"}]}`},
	{"GET", "/proxy/crm/rest/v2/contacts?filter=nope%3D%3D1", ""},
	{"GET", "/proxy/crm/rest/v2/contacts/999999", ""},
	{"GET", "/proxy/crm/rest/v2/settings/applications:getConfiguration?fields=ECOMMERCE", ""},
	{"POST", "/proxy/crm/rest/v2/tags", `{"name":"Sweep"}`},
	{"GET", "/hubs/crm/contacts?pageSize=2", ""},
	{"POST", "/hubs/crm/contacts", `{"given_name":"Hub","email_addresses":[{"email":"hub@example.com","field":"EMAIL1"}]}`},
	{"POST", "/hubs/crm/contacts", `{"given_name":"NoWay"}`},
	{"GET", "/hubs/crm/contacts/1", ""},
	{"GET", "/hubs/crm/contacts/999999", ""},
	{"GET", "/hubs/crm/contacts/abc", ""},
	{"GET", "/hubs/crm/tags", ""},
	{"GET", "/hubs/crm/nosuchresource", ""},
	{"GET", "/hubs/crm/lookups/countries", ""},
}

// No answer through connectord, XML-RPC or REST, proxied or reshaped by a hub,
// carries a stored credential, in its body or its headers, for any kind of
// instance, with legacy keys sent as X-Keap-API-Key or, when the operator
// configures it, to the applications' legacy endpoint.
func TestSecrets_NoAnswerThroughConnectordCarriesAStoredCredential(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"legacy keys as X-Keap-API-Key", "legacy endpoint configured"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			k := newKeap(t, fakekeap.Options{})
			env := baseEnv(t, testdb.New(t), k)
			if mode == "legacy endpoint configured" {
				env[legacyEndpointEnv] = k.URL + "/legacy/{app}/api/xmlrpc"
			}
			s := startServerWith(t, env, k, nil)
			o := s.createOrg("Sweep", "sweep@acme.test")
			oauth := s.provisionOAuth(o, "infusionsoftcrm", "oauth")
			insts := map[string]map[string]any{"oauth": oauth}
			for name, key := range map[string][2]string{"service account": {testServiceKey, ""}, "legacy": {testLegacyKey, testLegacyApp}} {
				r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", key[0], key[1]))
				if r.Status != 200 {
					t.Fatalf("provision %s: %d %s", name, r.Status, r.Body)
				}
				insts[name] = r.JSON(t)
			}
			stored := s.instanceSecrets(fmt.Sprint(oauth["id"]))
			secrets := map[string]string{
				"service account key": testServiceKey,
				"legacy key":          testLegacyKey,
				"client secret":       testClientSecret,
				"access token":        stored["oauth.user.token"],
				"refresh token":       stored["oauth.user.refresh_token"],
			}
			for name, inst := range insts {
				secrets[name+" instance token"] = inst["token"].(string)
			}
			for name, v := range secrets {
				if len(v) < 8 {
					t.Fatalf("%s is missing from the test setup (%q)", name, v)
				}
			}
			answers := 0
			check := func(what string, r response) {
				t.Helper()
				answers++
				for name, v := range secrets {
					for _, form := range []string{v, url.QueryEscape(v), strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(v)} {
						if strings.Contains(string(r.Body), form) {
							t.Errorf("%s: the answer's body carries the %s: %s", what, name, r.Body)
						}
						for h, vv := range r.Header {
							if strings.Contains(strings.Join(vv, " "), form) {
								t.Errorf("%s: the answer's %s header carries the %s", what, h, name)
							}
						}
					}
				}
			}
			for name, inst := range insts {
				el := "User " + o.User.Secret + ", Element " + inst["token"].(string)
				for _, xmlMode := range []string{"passthrough", "bridge"} {
					if r := s.do("PATCH", "/instances/"+fmt.Sprint(inst["id"]), o.auth(), map[string]any{"configuration": map[string]any{"xmlrpc.mode": xmlMode}}); r.Status != 200 {
						t.Fatalf("xmlrpc.mode %s: %d %s", xmlMode, r.Status, r.Body)
					}
					for _, call := range sweepXMLRPC {
						check(fmt.Sprintf("%s instance, %s, XML-RPC %.80s", name, xmlMode, call), s.do("POST", "/proxy/crm/xmlrpc/v1", el, call))
					}
				}
				for _, c := range sweepREST {
					var body any
					if c.body != "" {
						body = c.body
					}
					check(fmt.Sprintf("%s instance, %s %s", name, c.method, c.path), s.do(c.method, c.path, el, body))
				}
			}
			// The echo of a legacy-key instance answers what the caller sent.
			legacyEl := "User " + o.User.Secret + ", Element " + insts["legacy"]["token"].(string)
			s.do("PATCH", "/instances/"+fmt.Sprint(insts["legacy"]["id"]), o.auth(), map[string]any{"configuration": map[string]any{"xmlrpc.mode": "passthrough"}})
			if r := s.do("POST", "/proxy/crm/xmlrpc/v1", legacyEl, xmlrpcCall("DataService.echo", placeholder)); r.Status != 200 || !strings.Contains(string(r.Body), "placeholder") {
				t.Fatalf("echo of a legacy-key instance: %d %s", r.Status, r.Body)
			}
			if answers < 3*(2*len(sweepXMLRPC)+len(sweepREST)) {
				t.Fatalf("the sweep checked %d answers", answers)
			}
		})
	}
}
