package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/connectord/connectord/internal/keap"
)

func init() {
	// The contract check reads the XML-RPC bridge's text/xml bodies as the
	// strings the document says they are.
	openapi3filter.RegisterBodyDecoder("text/xml", openapi3filter.FileBodyDecoder)
}

// xmlrpc posts one XML-RPC call to connectord at path, with an Authorization
// header when auth is not empty, and decodes the answer.
func (s *server) xmlrpc(path, auth, method string, params ...any) (any, error, response) {
	s.t.Helper()
	body, err := keap.EncodeCall(method, params...)
	if err != nil {
		s.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	r := s.send(req, body)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
		s.t.Fatalf("%s %s: %d %s %s", path, method, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	v, err := keap.DecodeResponse(r.Body)
	return v, err, r
}

func wantFault(t *testing.T, err error, prefix string) {
	t.Helper()
	f, ok := err.(*keap.Fault)
	if !ok || !strings.HasPrefix(f.String, prefix) {
		t.Fatalf("answer %v, want a fault starting %q", err, prefix)
	}
}

// bridgeFixture is a server with one service account key instance and its bridge key.
type bridgeFixture struct {
	*server
	org              org
	id, token, key   string
	elementAuth, raw string
}

func newBridgeFixture(t *testing.T) *bridgeFixture {
	t.Helper()
	s := startServer(t)
	f := &bridgeFixture{server: s, org: s.createOrg("Acme", "dev@acme.test")}
	r := s.do("POST", "/instances", f.org.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	f.id, f.token = fmt.Sprint(r.JSON(t)["id"]), r.JSON(t)["token"].(string)
	f.elementAuth = "User " + f.org.User.Secret + ", Element " + f.token
	r = s.do("POST", "/instances/"+f.id+"/bridge-key", f.org.auth(), nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("bridge key: %d %s", r.Status, r.Body)
	}
	f.key = r.JSON(t)["bridgeKey"].(string)
	if !strings.HasPrefix(f.key, "cdbk_") || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("bridge key %q, Cache-Control %q", f.key, r.Header.Get("Cache-Control"))
	}
	return f
}

// A plugin changes only the host and uses the bridge key as its API key:
// both of Keap's XML-RPC paths answer, onto the instance's Keap, and so does
// an Authorization header instead of the key.
func TestXMLRPCBridge_BridgeKeyOrElementTokenReachesTheInstancesKeap(t *testing.T) {
	t.Parallel()
	f := newBridgeFixture(t)
	id, err, _ := f.xmlrpc("/crm/xmlrpc/v1", "", "ContactService.add", f.key, map[string]any{"FirstName": "Ada", "Email": "ada@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	n, ok := id.(int64)
	if !ok {
		t.Fatalf("ContactService.add answered %#v, want an int", id)
	}
	if c, ok := f.keap.Contact(n); !ok || fmt.Sprint(c["given_name"]) != "Ada" {
		t.Fatalf("Keap has contact %d = %v", n, c)
	}
	got, err, _ := f.xmlrpc("/api/xmlrpc", "", "ContactService.load", f.key, n, []any{"Id", "FirstName", "Email"})
	if err != nil || fmt.Sprint(got) != fmt.Sprintf("map[Email:ada@example.test FirstName:Ada Id:%d]", n) {
		t.Fatalf("load: %v %v", got, err)
	}
	// With an Element token the first parameter is not read as a key.
	rows, err, _ := f.xmlrpc("/crm/xmlrpc/v1", f.elementAuth, "DataService.query", "ignored", "Contact", 10, 0, map[string]any{"FirstName": "A%"}, []any{"Id"})
	if err != nil || fmt.Sprint(rows) != fmt.Sprintf("[map[Id:%d]]", n) {
		t.Fatalf("query with an Element token: %v %v", rows, err)
	}
	// system.listMethods takes no key.
	if list, err, _ := f.xmlrpc("/crm/xmlrpc/v1", "", "system.listMethods"); err != nil || !strings.Contains(fmt.Sprint(list), "DataService.query") {
		t.Fatalf("listMethods: %v %v", list, err)
	}
}

// Refusals are Keap-style faults: a wrong, missing or rotated key, a bad
// Element token; another organization cannot make an instance's key.
func TestXMLRPCBridge_RefusesWrongKeysAndRotatesThem(t *testing.T) {
	t.Parallel()
	f := newBridgeFixture(t)
	load := []any{int64(1), []any{"Id"}}
	_, err, _ := f.xmlrpc("/crm/xmlrpc/v1", "", "ContactService.load", append([]any{"cdbk_not-a-key"}, load...)...)
	wantFault(t, err, "[InvalidKey]the bridge key is not valid")
	_, err, _ = f.xmlrpc("/crm/xmlrpc/v1", "", "ContactService.load", append([]any{testServiceKey}, load...)...)
	wantFault(t, err, "[InvalidKey]the first parameter is not a bridge key")
	_, err, _ = f.xmlrpc("/crm/xmlrpc/v1", "User "+f.org.User.Secret+", Element nope", "ContactService.load", append([]any{f.key}, load...)...)
	wantFault(t, err, "[InvalidKey]the Element token in the Authorization header is not valid")
	req, _ := http.NewRequest(http.MethodPost, f.URL+"/crm/xmlrpc/v1", strings.NewReader("<methodCall>"))
	req.Header.Set("Content-Type", "text/xml")
	r := f.send(req, []byte("<methodCall>"))
	if r.Status != 200 || !bytes.Contains(r.Body, []byte("Failed to parse XML-RPC request")) {
		t.Fatalf("a body that is not XML-RPC: %d %s", r.Status, r.Body)
	}

	other := f.createOrg("Other", "dev@other.test")
	if r := f.do("POST", "/instances/"+f.id+"/bridge-key", other.auth(), nil); r.Status != http.StatusNotFound {
		t.Fatalf("another organization rotated the key: %d %s", r.Status, r.Body)
	}
	r = f.do("POST", "/instances/"+f.id+"/bridge-key", f.org.auth(), nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	rotated := r.JSON(t)["bridgeKey"].(string)
	_, err, _ = f.xmlrpc("/crm/xmlrpc/v1", "", "DataService.count", f.key, "Contact", map[string]any{})
	wantFault(t, err, "[InvalidKey]the bridge key is not valid")
	if n, err, _ := f.xmlrpc("/crm/xmlrpc/v1", "", "DataService.count", rotated, "Contact", map[string]any{}); err != nil || n != int64(0) {
		t.Fatalf("the rotated key: %v %v", n, err)
	}
}

// A bridge key is shown once: never in logs, answers or the database.
func TestXMLRPCBridge_BridgeKeysAreNeverShownAgain(t *testing.T) {
	t.Parallel()
	f := newBridgeFixture(t)
	_, _, r1 := f.xmlrpc("/crm/xmlrpc/v1", "", "ContactService.add", f.key, map[string]any{"FirstName": "Ada"})
	_, _, r2 := f.xmlrpc("/crm/xmlrpc/v1", "", "DataService.query", f.key, "Contact", 10, 0, map[string]any{"ShoeSize": "9"}, []any{"Id"})
	_, _, r3 := f.xmlrpc("/crm/xmlrpc/v1", "", "DataService.frobnicate", f.key)
	_, _, r4 := f.xmlrpc("/crm/xmlrpc/v1", "", "ContactService.load", f.key+"x", int64(1), []any{"Id"})
	answers := [][]byte{r1.Body, r2.Body, r3.Body, r4.Body,
		f.do("GET", "/instances/"+f.id, f.org.auth(), nil).Body,
		f.do("GET", "/instances/"+f.id+"/configuration", f.org.auth(), nil).Body,
		f.do("GET", "/instances", f.org.auth(), nil).Body}
	secret := strings.TrimPrefix(f.key, "cdbk_")
	for i, a := range answers {
		if bytes.Contains(a, []byte(secret)) {
			t.Errorf("answer %d holds the bridge key: %s", i, a)
		}
	}
	if strings.Contains(f.logs.String(), secret) {
		t.Error("the log holds the bridge key")
	}
	var stored []byte
	f.queryRow(`SELECT key_hash FROM instance_bridge_keys WHERE instance_id = $1`, []any{f.id}, &stored)
	if len(stored) != 32 || bytes.Contains(stored, []byte(secret)) {
		t.Errorf("stored %d bytes for the key, want its 32-byte SHA-256", len(stored))
	}
}

// The README's example runs with Python's own xmlrpc.client, a client a
// plugin author has, against connectord's bridge.
func TestXMLRPCBridge_READMEPythonExampleRuns(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not on PATH: the README's xmlrpc.client example was NOT run (install python3 to run it)")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's bridge example needs %s: install it (apt-get install %s)", tool, tool)
		}
	}
	script := strings.Join(readmeBlocks(t, "xmlrpc", "sh"), "") +
		"python3 - <<'PY'\n" + readmeBlocks(t, "xmlrpc", "python")[0] + "PY\n"
	f := newBridgeFixture(t)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "CONNECTORD_URL=" + f.URL, "INSTANCE_ID=" + f.id,
		"USER_SECRET=" + f.org.User.Secret, "ORG_SECRET=" + f.org.Organization.Secret}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's example failed: %v\n%s", err, out)
	}
	for _, want := range []string{"contact 1", "tagged: 1", "A%: [{'Email': 'ada@example.com', 'FirstName': 'Ada', 'Id': 1}]", "opt status: 1",
		"fault: [NoFieldFound]No field found: Contact.ShoeSize"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the example printed\n%s\nwithout %q", out, want)
		}
	}
	if c, ok := f.keap.Contact(1); !ok || fmt.Sprint(c["given_name"]) != "Ada" {
		t.Errorf("Keap's contact after the example: %v", c)
	}
}

// /proxy/crm/xmlrpc/v1 hands a bridge-mode instance's calls to the bridge:
// Keap's XML-RPC is not called, and a method that takes no key answers no
// key. A legacy-key instance and an OAuth one work through the bridge too.
func TestXMLRPCBridge_ProxyInBridgeModeLegacyKeysAndOAuth(t *testing.T) {
	t.Parallel()
	f := newBridgeFixture(t)
	before := f.keap.Stats().APICalls
	v, err, _ := f.xmlrpc("/proxy/crm/xmlrpc/v1", f.elementAuth, "ContactService.add", "ignored", map[string]any{"FirstName": "Ada", "Email": "ada@example.test"})
	if err != nil || v != int64(1) {
		t.Fatalf("through the proxy in bridge mode: %v %v", v, err)
	}
	if _, ok := f.keap.Contact(1); !ok {
		t.Fatal("the contact did not reach Keap")
	}
	_, err, r := f.xmlrpc("/proxy/crm/xmlrpc/v1", f.elementAuth, "DataService.echo", "anything")
	wantFault(t, err, "No such handler: DataService.echo")
	if bytes.Contains(r.Body, []byte(testServiceKey)) {
		t.Fatal("the answer holds the instance's Keap key")
	}
	if calls := f.keap.Stats().APICalls - before; calls != 1 {
		t.Errorf("Keap got %d calls, want the one REST call of ContactService.add", calls)
	}

	r2 := f.do("POST", "/instances", f.org.auth(), apiKeyBody("infusionsoftcrm", testLegacyKey, testLegacyApp))
	if r2.Status != 200 {
		t.Fatalf("provision a legacy key: %d %s", r2.Status, r2.Body)
	}
	id := fmt.Sprint(r2.JSON(t)["id"])
	r2 = f.do("POST", "/instances/"+id+"/bridge-key", f.org.auth(), nil)
	key := r2.JSON(t)["bridgeKey"].(string)
	rows, err, _ := f.xmlrpc("/api/xmlrpc", "", "DataService.query", key, "Contact", 10, 0, map[string]any{"FirstName": "Ada"}, []any{"Id", "FirstName"})
	if err != nil || fmt.Sprint(rows) != "[map[FirstName:Ada Id:1]]" {
		t.Fatalf("a legacy-key instance through the bridge: %v %v", rows, err)
	}

	oauth := f.provisionOAuth(f.org, "infusionsoftcrm", "oauth")
	r2 = f.do("POST", "/instances/"+fmt.Sprint(oauth["id"])+"/bridge-key", f.org.auth(), nil)
	key = r2.JSON(t)["bridgeKey"].(string)
	n, err, _ := f.xmlrpc("/crm/xmlrpc/v1", "", "DataService.count", key, "Contact", map[string]any{"FirstName": "A%"})
	if err != nil || n != int64(1) {
		t.Fatalf("an OAuth instance through the bridge: %v %v", n, err)
	}
}
