package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

const echoCall = `<?xml version="1.0"?><methodCall><methodName>DataService.echo</methodName><params><param><value><string>hi</string></value></param></params></methodCall>`

// xmlrpc.mode: bridge for new instances, shown and changeable; passthrough
// as asked; after Keap's sunset passthrough is refused, saying to use the bridge.
func TestXMLRPCMode_DefaultBridgeChangeableAndPassthroughEndsAtTheSunset(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Shop", "shop@acme.test")
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	inst := r.JSON(t)
	id, el := inst["id"], "User "+o.User.Secret+", Element "+inst["token"].(string)
	if mode := inst["configuration"].(map[string]any)["xmlrpc.mode"]; mode != "bridge" {
		t.Fatalf("a new instance has xmlrpc.mode %v, want bridge", mode)
	}
	r = s.do("POST", "/proxy/crm/xmlrpc/v1", el, echoCall)
	// The bridge answers: it serves no DataService.echo, and hands back no key.
	if r.Status != 200 || !strings.Contains(string(r.Body), "No such handler: DataService.echo") || strings.Contains(string(r.Body), testServiceKey) {
		t.Fatalf("bridge mode: %d %s", r.Status, r.Body)
	}
	path := "/instances/" + fmt.Sprint(id)
	if r := s.do("PATCH", path, o.auth(), map[string]any{"configuration": map[string]any{"xmlrpc.mode": "both"}}); r.Status != 400 || !strings.Contains(string(r.Body), "xmlrpc.mode") {
		t.Fatalf("a mode that does not exist: %d %s", r.Status, r.Body)
	}
	if r := s.do("PATCH", path, o.auth(), map[string]any{"configuration": map[string]any{"xmlrpc.mode": "passthrough"}}); r.Status != 200 {
		t.Fatalf("passthrough: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/proxy/crm/xmlrpc/v1", el, echoCall); r.Status != 200 || !strings.Contains(string(r.Body), "<string>hi</string>") {
		t.Fatalf("passthrough before the sunset: %d %s", r.Status, r.Body)
	}

	// The same database after Keap's sunset.
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_XMLRPC_SUNSET"] = "2026-12-01T00:00:00Z"
	late := startServerWith(t, env, k, nil)
	o2 := late.createOrg("Late", "late@acme.test")
	b := apiKeyBody("infusionsoftcrm", testServiceKey, "")
	b["configuration"].(map[string]any)["xmlrpc.mode"] = "passthrough"
	r = late.do("POST", "/instances", o2.auth(), b)
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	el2 := "User " + o2.User.Secret + ", Element " + r.JSON(t)["token"].(string)
	r = late.do("POST", "/proxy/crm/xmlrpc/v1", el2, echoCall)
	if r.Status != 410 || !strings.Contains(string(r.Body), "set xmlrpc.mode to bridge") {
		t.Fatalf("passthrough after the sunset: %d %s", r.Status, r.Body)
	}
	if r := late.do("GET", "/proxy/crm/rest/v2/contacts", el2, nil); r.Status != 200 {
		t.Fatalf("REST after the sunset: %d %s", r.Status, r.Body)
	}
}

func TestConfig_XMLRPCSunsetMustBeADate(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, "postgres://unused/db", k)
	env["CONNECTORD_XMLRPC_SUNSET"] = "31/12/2026"
	if _, err := loadServeConfig(getenvFrom(env)); err == nil || !strings.Contains(err.Error(), "CONNECTORD_XMLRPC_SUNSET") {
		t.Fatalf("a sunset that is not a date: %v", err)
	}
}
