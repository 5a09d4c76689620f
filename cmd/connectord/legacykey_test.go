package main

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// legacyEndpointEnv is the setting under which legacy keys go the old way.
const legacyEndpointEnv = "CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL"

// A legacy-key instance is provisioned with its application name (required,
// and shown), checked with one REST call, and then uses the hubs and the
// REST proxy like a service-account one: Keap takes the key as X-Keap-API-Key.
func TestLegacyKey_UsesTheHubsAndRESTLikeAServiceAccountKey(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Shop", "shop@acme.test")
	if r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testLegacyKey, "")); r.Status != 400 || !strings.Contains(string(r.Body), "infusionsoft.app.name") {
		t.Fatalf("a legacy key without its application name: %d %s", r.Status, r.Body)
	}
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testLegacyKey, testLegacyApp))
	if r.Status != 200 {
		t.Fatalf("legacy instance: %d %s", r.Status, r.Body)
	}
	inst := r.JSON(t)
	if app := inst["configuration"].(map[string]any)["infusionsoft.app.name"]; app != testLegacyApp {
		t.Fatalf("the application name is shown as %v, want %s", app, testLegacyApp)
	}
	el := "User " + o.User.Secret + ", Element " + inst["token"].(string)
	if r := s.do("POST", "/hubs/crm/contacts", el, newContact("lea@example.com", "Lea")); r.Status != 201 {
		t.Fatalf("hub create with a legacy key: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/hubs/crm/contacts", el, nil); r.Status != 200 || !strings.Contains(string(r.Body), "lea@example.com") {
		t.Fatalf("hub list with a legacy key: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/proxy/crm/rest/v2/contacts?filter=email%3D%3Dlea%40example.com", el, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"given_name":"Lea"`) {
		t.Fatalf("REST v2 through the proxy with a legacy key: %d %s", r.Status, r.Body)
	}
}

// With the legacy endpoint configured explicitly, the old rules hold: the
// application must exist there, and the hubs answer 409 naming the setting.
func TestLegacyKey_LegacyEndpointOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env[legacyEndpointEnv] = k.URL + "/legacy/{app}/api/xmlrpc"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Shop", "shop@acme.test")
	if r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testLegacyKey, "zz999")); r.Status != 400 || !strings.Contains(string(r.Body), "infusionsoft.app.name") {
		t.Fatalf("an unknown application: %d %s", r.Status, r.Body)
	}
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testLegacyKey, testLegacyApp))
	if r.Status != 200 {
		t.Fatalf("legacy instance: %d %s", r.Status, r.Body)
	}
	inst := r.JSON(t)
	if base := inst["configuration"].(map[string]any)["base.url"]; base != k.URL+"/legacy/"+testLegacyApp+"/api/xmlrpc" {
		t.Fatalf("base.url %v, want the application's legacy endpoint", base)
	}
	el := "User " + o.User.Secret + ", Element " + inst["token"].(string)
	r = s.do("GET", "/hubs/crm/contacts", el, nil)
	if r.Status != 409 || !strings.Contains(string(r.Body), legacyEndpointEnv) {
		t.Fatalf("hubs with the legacy endpoint configured: %d %s", r.Status, r.Body)
	}
}

// An instance provisioned while legacy keys went to the application's legacy
// endpoint keeps working after the upgrade: the same database, the same
// encryption key, the setting gone. Its calls now go to Keap's API host.
func TestLegacyKey_InstanceStoredTheOldWayKeepsWorking(t *testing.T) {
	t.Parallel()
	wr := &wire{}
	k := newKeapWrapped(t, fakekeap.Options{}, wr.wrap)
	env := baseEnv(t, testdb.New(t), k)
	before := maps.Clone(env)
	before[legacyEndpointEnv] = k.URL + "/legacy/{app}/api/xmlrpc"
	old := startServerWith(t, before, k, nil)
	o := old.createOrg("Shop", "shop@acme.test")
	body := apiKeyBody("infusionsoftmarketing", testLegacyKey, testLegacyApp)
	body["configuration"].(map[string]any)["xmlrpc.mode"] = "passthrough"
	r := old.do("POST", "/instances", o.auth(), body)
	if r.Status != 200 {
		t.Fatalf("legacy instance before the upgrade: %d %s", r.Status, r.Body)
	}
	token, id := r.JSON(t)["token"].(string), fmt.Sprint(r.JSON(t)["id"])
	// The instance as the code before the upgrade stored it: no xmlrpc.mode.
	old.exec("UPDATE instances SET configuration = configuration - 'xmlrpc.mode' WHERE id = " + id)
	old.stop()

	s := startServerWith(t, env, k, nil)
	el := "User " + o.User.Secret + ", Element " + token
	n := wr.count()
	r = s.do("POST", "/proxy/crm/xmlrpc/v1", el, `<?xml version="1.0"?><methodCall><methodName>DataService.getAppSetting</methodName><params>`+
		`<param><value><string>placeholder</string></value></param><param><value><string>Application</string></value></param>`+
		`<param><value><string>appname</string></value></param></params></methodCall>`)
	if r.Status != 200 || !strings.Contains(string(r.Body), "<string>"+fakekeap.AppName+"</string>") {
		t.Fatalf("XML-RPC after the upgrade: %d %s", r.Status, r.Body)
	}
	seen := wr.since(n)
	if len(seen) != 1 || seen[0].Path != "/crm/xmlrpc/v1" || seen[0].Header.Get("X-Keap-API-Key") != testLegacyKey || strings.Contains(string(seen[0].Body), testLegacyKey) {
		t.Fatalf("after the upgrade Keap saw %+v, want one call to /crm/xmlrpc/v1 with the key as X-Keap-API-Key and not in the body", seen)
	}
	cfg := s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)["configuration"].(map[string]any)
	if cfg["xmlrpc.mode"] != "passthrough" || cfg["base.url"] != k.URL+"/crm/rest/v1" {
		t.Fatalf("the upgraded instance reads %v, want xmlrpc.mode passthrough (what it did before) and Keap's API host", cfg)
	}
	if r := s.do("GET", "/hubs/marketing/campaigns", el, nil); r.Status == 409 {
		t.Fatalf("the upgraded legacy instance is still refused by the hubs: %s", r.Body)
	}
}

// The sandbox's fake Keap serves REST v2, and takes the sandbox's legacy key
// as X-Keap-API-Key like its service account key, as Keap does.
func TestSandbox_ServesRESTv2ToEveryKey(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	for _, key := range []string{sandboxServiceKey, sandboxLegacyKey} {
		req, err := http.NewRequest("GET", s.URL+"/sandbox/keap/crm/rest/v2/contacts?page_size=5&order_by=id", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Keap-API-Key", key)
		r := s.send(req, nil)
		m := r.JSON(t)
		if r.Status != 200 || len(m["contacts"].([]any)) != 5 || m["next_page_token"] == "" {
			t.Fatalf("sandbox REST v2 with %.12s…: %d %s", key, r.Status, r.Body)
		}
		if id, isString := m["contacts"].([]any)[0].(map[string]any)["id"].(string); !isString || id != "1" {
			t.Fatalf("the first contact's id is %v, want the string \"1\"", m["contacts"].([]any)[0])
		}
	}
	if k.Stats().APICalls != 0 {
		t.Fatal("the sandbox reached the test's fake Keap instead of the in-process one")
	}
}
