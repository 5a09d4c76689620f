package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/fakekeap"
)

// keapSpecPath is Keap's REST v1 OpenAPI document in the shared folder beside
// the repository (the development machine and CI have it; the project does not
// vendor it): requests to the fake's hooks endpoints are checked against it
// when it is there. The path is relative to this package's directory.
const keapSpecPath = "../../../shared/keap/keap-rest-v1.json"

// keapRequest is one request connectord sent to the fake's hooks endpoints.
type keapRequest struct {
	Method, Path, ContentType string
	Body                      []byte
	Header                    http.Header
}

// hookKeap is a fake Keap that records every request to its hooks endpoints.
type hookKeap struct {
	*keapServer
	mu   sync.Mutex
	reqs []keapRequest
	// loseAnswers is how many more POST /hooks for contact.edit Keap carries
	// out but whose answer never arrives (the connection drops).
	loseAnswers atomic.Int32
	// failPuts is how many more PUT /hooks/{key} Keap answers 503.
	failPuts atomic.Int32
}

func newHookKeap(t testing.TB) *hookKeap {
	t.Helper()
	hk := &hookKeap{}
	hk.keapServer = newKeapWrapped(t, fakekeap.Options{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/crm/rest/v1/hooks") {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				hk.mu.Lock()
				hk.reqs = append(hk.reqs, keapRequest{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Body: body, Header: r.Header.Clone()})
				hk.mu.Unlock()
				if n := hk.failPuts.Load(); r.Method == http.MethodPut && n > 0 && hk.failPuts.CompareAndSwap(n, n-1) {
					http.Error(w, `{"message":"unavailable"}`, http.StatusServiceUnavailable)
					return
				}
				if r.Method == http.MethodPost && r.URL.Path == "/crm/rest/v1/hooks" && bytes.Contains(body, []byte(`"contact.edit"`)) {
					if n := hk.loseAnswers.Load(); n > 0 && hk.loseAnswers.CompareAndSwap(n, n-1) {
						next.ServeHTTP(httptest.NewRecorder(), r)
						conn, _, err := http.NewResponseController(w).Hijack()
						if err == nil {
							conn.Close()
						}
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	return hk
}

func (k *hookKeap) requests() []keapRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.reqs)
}

// hooksFor returns the fake's hooks whose URL starts with prefix, by event key.
func (k *hookKeap) hooksFor(prefix string) map[string]fakekeap.Hook {
	out := map[string]fakekeap.Hook{}
	for _, h := range k.Hooks() {
		if strings.HasPrefix(h.HookURL, prefix) {
			out[h.EventKey] = h
		}
	}
	return out
}

var contactEventKeys = []string{"contact.add", "contact.delete", "contact.edit"}

// allVerified reports whether hooks holds exactly keys, every one Verified.
func allVerified(hooks map[string]fakekeap.Hook, keys ...string) bool {
	if len(hooks) != len(keys) {
		return false
	}
	for _, k := range keys {
		if hooks[k].Status != "Verified" {
			return false
		}
	}
	return true
}

// hooksEnv is a server that checks hooks every 200ms.
func hooksEnv(t testing.TB, k *hookKeap) map[string]string {
	env := eventsEnv(t, k.keapServer)
	env["CONNECTORD_HOOK_CHECK_INTERVAL"] = "200ms"
	return env
}

// post sends a JSON body to an absolute URL of the server, as Keap does.
func (s *server) post(url, body string) response {
	s.t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return s.send(req, []byte(body))
}

// exec runs one statement on the server's database.
func (s *server) exec(sql string) {
	s.t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		s.t.Fatal(err)
	}
}

// hookState is GET /instances/{id}/events/hooks.
// startWebhookInstance starts a server and one OAuth instance in webhook mode
// whose callback is a new receiver (signing with key, if any), and waits until
// its contact hooks are Verified at the fake Keap.
func startWebhookInstance(t *testing.T, key string) (*hookKeap, *server, org, *receiver, int64) {
	t.Helper()
	k := newHookKeap(t)
	s := startServerWith(t, hooksEnv(t, k), k.keapServer, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, key)
	id := s.eventsInstance(o, rcv.URL, key, 0)
	waitUntil(t, "Verified hooks for the contact events", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(s.URL+"/events/keap/"), contactEventKeys...)
	})
	return k, s, o, rcv, id
}

func (s *server) hookState(o org, id int64) map[string]any {
	s.t.Helper()
	r := s.do("GET", fmt.Sprintf("/instances/%d/events/hooks", id), o.auth(), nil)
	if r.Status != 200 {
		s.t.Fatalf("GET hooks: %d %s", r.Status, r.Body)
	}
	return r.JSON(s.t)
}

// keapSpec is the hooks part of Keap's REST v1 document, loaded once.
var keapSpec struct {
	once sync.Once
	doc  *openapi3.T
	err  error
}

func loadKeapSpec() (*openapi3.T, error) {
	keapSpec.once.Do(func() {
		raw, err := os.ReadFile(keapSpecPath)
		if err != nil {
			keapSpec.err = err
			return
		}
		// Only the hooks paths matter here; loading the whole document takes
		// seconds under -race.
		var full map[string]any
		if err := json.Unmarshal(raw, &full); err != nil {
			keapSpec.err = err
			return
		}
		paths, _ := full["paths"].(map[string]any)
		for p := range paths {
			if !strings.HasPrefix(p, "/v1/hooks") {
				delete(paths, p)
			}
		}
		if raw, err = json.Marshal(full); err != nil {
			keapSpec.err = err
			return
		}
		keapSpec.doc, keapSpec.err = openapi3.NewLoader().LoadFromData(raw)
	})
	return keapSpec.doc, keapSpec.err
}

// checkKeapSpec checks the recorded hooks requests against Keap's REST v1
// OpenAPI document, when it is on this machine.
func checkKeapSpec(t *testing.T, k *hookKeap) {
	t.Helper()
	if _, err := os.Stat(keapSpecPath); err != nil {
		t.Logf("%s is not here; requests not checked against Keap's spec", keapSpecPath)
		return
	}
	shared, err := loadKeapSpec()
	if err != nil {
		t.Fatalf("load Keap's spec: %v", err)
	}
	doc := *shared
	doc.Servers = openapi3.Servers{{URL: k.URL + "/crm/rest"}}
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatalf("route Keap's spec: %v", err)
	}
	reqs := k.requests()
	if len(reqs) == 0 {
		t.Fatal("connectord sent no hooks requests")
	}
	for _, kr := range reqs {
		req, _ := http.NewRequest(kr.Method, k.URL+kr.Path, bytes.NewReader(kr.Body))
		req.Header = kr.Header.Clone()
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s is not in Keap's REST v1 spec: %v", kr.Method, kr.Path, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s %s does not match Keap's REST v1 spec: %v", kr.Method, kr.Path, kr.Body, err)
		}
		if kr.Method == http.MethodPost && kr.Path == "/crm/rest/v1/hooks" || kr.Method == http.MethodPut {
			var body map[string]any
			if err := json.Unmarshal(kr.Body, &body); err != nil || len(body) != 2 || body["eventKey"] == nil || body["hookUrl"] == nil {
				t.Errorf("%s %s body %s: want exactly RestHookRequest's eventKey and hookUrl", kr.Method, kr.Path, kr.Body)
			}
		}
	}
}

// noSecretsLogged fails when a hook secret (the last segment of a hookUrl) appears in logs.
func noSecretsLogged(t *testing.T, logs string, hooks []fakekeap.Hook) {
	t.Helper()
	if len(hooks) == 0 {
		t.Fatal("no hooks to look for")
	}
	for _, h := range hooks {
		secret := h.HookURL[strings.LastIndex(h.HookURL, "/")+1:]
		if len(secret) < 40 {
			t.Fatalf("hookUrl %s carries no secret", h.HookURL)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the receiver secret of hook %s appears in the logs", h.Key)
		}
	}
}

// From instance creation to a signed callback: connectord registers Verified
// hooks for the contact events at Keap, and a Keap delivery reaches the
// consumer normalised and signed.
func TestHooks_WebhookModeFromCreationToSignedCallback(t *testing.T) {
	t.Parallel()
	k, s, o, rcv, id := startWebhookInstance(t, "whsec-hooks")
	prefix := s.URL + "/events/keap/"
	st := s.hookState(o, id)
	hooks := st["hooks"].([]any)
	if len(hooks) != 3 || st["problem"] != nil {
		t.Fatalf("hook state: %v", st)
	}
	want := map[string]string{"contact.add": "CREATED", "contact.edit": "UPDATED", "contact.delete": "DELETED"}
	for _, h := range hooks {
		h := h.(map[string]any)
		if h["status"] != "Verified" || h["objectType"] != "contacts" || h["eventType"] != want[h["eventKey"].(string)] ||
			h["hookKey"] != k.hooksFor(prefix)[h["eventKey"].(string)].Key {
			t.Errorf("hook %v", h)
		}
	}
	if strings.Contains(string(s.do("GET", fmt.Sprintf("/instances/%d", id), o.auth(), nil).Body), "/events/keap/") {
		t.Error("the instance shows a receiver URL, which carries the secret")
	}

	if err := k.DeliverHook("contact.add", []int64{11, 12}); err != nil {
		t.Fatal(err)
	}
	if err := k.DeliverHook("contact.delete", []int64{13}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "two notifications at the callback", 10*time.Second, func() bool { n, _ := rcv.distinct(); return n == 2 })
	got := map[string]string{}
	for _, g := range rcv.received() {
		if !g.Signed {
			t.Errorf("notification %s: the signature does not verify", g.EventID)
		}
		raw := g.Body["raw"].(map[string]any)
		for _, e := range g.Body["events"].([]any) {
			e := e.(map[string]any)
			if e["objectType"] != "contacts" || e["elementKey"] != "infusionsoftcrm" || e["date"] == nil {
				t.Errorf("event %v", e)
			}
			got[e["objectId"].(string)] = e["eventType"].(string)
		}
		if raw["event_key"] == nil || raw["object_keys"] == nil {
			t.Errorf("raw is not Keap's delivery: %v", raw)
		}
	}
	if fmt.Sprint(got) != "map[11:CREATED 12:CREATED 13:DELETED]" {
		t.Fatalf("events by object: %v", got)
	}

	// A delivery to a path no hook has is refused, and nothing is stored.
	before := s.count("events")
	r := s.do("POST", "/events/keap/not-a-secret-of-any-hook", "", `{"event_key":"contact.add","object_type":"contact","object_keys":[{"id":1}]}`)
	if r.Status != 404 {
		t.Errorf("unknown secret: %d %s", r.Status, r.Body)
	}
	r = s.do("POST", "/events/keap/not-a-secret-of-any-hook", "", nil)
	if r.Status != 404 {
		t.Errorf("unknown secret, empty body: %d %s", r.Status, r.Body)
	}
	// A body that is not a delivery of the hook's event is refused, naming the problem.
	addURL := k.hooksFor(prefix)["contact.add"].HookURL
	for _, c := range []struct{ body, want string }{
		{`{"event_key":"contact.add","object_keys":[{"id":1,"timestamp":"yesterday"}]}`, "timestamp"},
		{`{"event_key":"contact.edit","object_keys":[{"id":1}]}`, "contact.edit"},
		{`{"event_key":"contact.add","object_keys":[]}`, "object_keys"},
		{`{"event_key":"contact.add","object_keys":[{"id":1.5}]}`, "id"},
		{`[1,2]`, "JSON object"},
		{`{"event_key":`, "malformed JSON"},
	} {
		r := s.post(addURL, c.body)
		if r.Status != 400 || !strings.Contains(r.JSON(t)["message"].(string), c.want) {
			t.Errorf("body %s: %d %s, want 400 naming %s", c.body, r.Status, r.Body, c.want)
		}
	}
	if n := s.count("events"); n != before {
		t.Errorf("refused deliveries stored %d events", n-before)
	}

	noSecretsLogged(t, s.logs.String(), k.Hooks())
	if !strings.Contains(s.logs.String(), `"path":"/events/keap/{secret}"`) {
		t.Error("the receiver's requests are not logged by route pattern")
	}
	checkKeapSpec(t, k)
}

// PATCH and DELETE take effect at Keap without a restart: hooks follow
// event.notification.enabled, event.vendor.type and event.objects, and go
// with the instance.
func TestHooks_FollowConfigurationChangesAndInstanceDeletion(t *testing.T) {
	t.Parallel()
	k, s, o, _, id := startWebhookInstance(t, "")
	prefix := s.URL + "/events/keap/"

	patch := func(cfg map[string]any) {
		t.Helper()
		if r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": cfg}); r.Status != 200 {
			t.Fatalf("PATCH %v: %d %s", cfg, r.Status, r.Body)
		}
	}
	patch(map[string]any{"event.notification.enabled": false})
	waitUntil(t, "hooks deleted after disabling events", 10*time.Second, func() bool { return len(k.hooksFor(prefix)) == 0 })
	if hooks := s.hookState(o, id)["hooks"].([]any); len(hooks) != 0 {
		t.Errorf("disabled instance still shows hooks: %v", hooks)
	}

	patch(map[string]any{"event.notification.enabled": true, "event.objects": "contacts, companies"})
	waitUntil(t, "hooks for contacts and companies", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(prefix), append([]string{"company.add", "company.delete", "company.edit"}, contactEventKeys...)...)
	})

	// A resource Keap has no hooks for is refused in webhook mode, naming it.
	r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": map[string]any{"event.objects": "companies,tasks"}})
	if r.Status != 400 || !strings.Contains(r.JSON(t)["message"].(string), "has no Keap REST hooks for tasks") {
		t.Fatalf("event.objects with tasks: %d %s", r.Status, r.Body)
	}
	patch(map[string]any{"event.objects": "companies"})
	waitUntil(t, "only the company hooks", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(prefix), "company.add", "company.delete", "company.edit")
	})

	// Companies cannot be polled (Keap's list has no last-updated filter).
	patch(map[string]any{"event.vendor.type": "polling", "event.objects": "contacts"})
	waitUntil(t, "hooks deleted in polling mode", 10*time.Second, func() bool { return len(k.hooksFor(prefix)) == 0 })

	patch(map[string]any{"event.vendor.type": "webhook", "event.objects": "companies"})
	waitUntil(t, "hooks back in webhook mode", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(prefix), "company.add", "company.delete", "company.edit")
	})
	// An invalid instance's hooks wait for its repair, and say so.
	s.exec(fmt.Sprintf(`UPDATE instances SET valid = false, invalid_reason = 'the refresh token was revoked', updated_at = now() WHERE id = %d`, id))
	waitUntil(t, "the state to name the invalid instance", 5*time.Second, func() bool {
		p, _ := s.hookState(o, id)["problem"].(string)
		return strings.Contains(p, "the refresh token was revoked")
	})
	s.exec(fmt.Sprintf(`UPDATE instances SET valid = true, invalid_reason = NULL, updated_at = now() WHERE id = %d`, id))
	waitUntil(t, "no problem once repaired", 5*time.Second, func() bool { return s.hookState(o, id)["problem"] == nil })
	if r := s.do("DELETE", fmt.Sprintf("/instances/%d", id), o.auth(), nil); r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if n := len(k.hooksFor(prefix)); n != 0 {
		t.Fatalf("%d hooks left at Keap after DELETE /instances/%d", n, id)
	}
	if !strings.Contains(s.logs.String(), "deleted the Keap hook of a deleted instance") {
		t.Error("the deletion is not logged")
	}
	checkKeapSpec(t, k)
}

// switchable forwards to a target once one is set; until then it answers 502,
// as an unreachable CONNECTORD_PUBLIC_URL would look to Keap.
type switchable struct {
	target atomic.Pointer[httputil.ReverseProxy]
}

func (p *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rp := p.target.Load(); rp != nil {
		rp.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no route to connectord", http.StatusBadGateway)
}

// Keap's handshake cannot reach connectord: the hooks stay Unverified and
// connectord says so, then verifies them once it is reachable; a hook Keap
// makes Inactive is verified again.
func TestHooks_HandshakeFailureHealsAndInactiveHooksAreVerifiedAgain(t *testing.T) {
	t.Parallel()
	k := newHookKeap(t)
	front := &switchable{}
	public := httptest.NewServer(front)
	t.Cleanup(public.Close)
	env := hooksEnv(t, k)
	env["CONNECTORD_PUBLIC_URL"] = public.URL
	s := startServerWith(t, env, k.keapServer, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	id := s.eventsInstance(o, rcv.URL, "", 0)

	prefix := public.URL + "/events/keap/"
	waitUntil(t, "three Unverified hooks", 10*time.Second, func() bool {
		hooks := k.hooksFor(prefix)
		return len(hooks) == 3 && hooks["contact.add"].Status == "Unverified" && hooks["contact.edit"].Status == "Unverified" && hooks["contact.delete"].Status == "Unverified"
	})
	waitUntil(t, "the state to show why", 5*time.Second, func() bool {
		for _, h := range s.hookState(o, id)["hooks"].([]any) {
			h := h.(map[string]any)
			if h["status"] != "Unverified" || !strings.Contains(fmt.Sprint(h["lastError"]), "CONNECTORD_PUBLIC_URL") {
				return false
			}
		}
		return true
	})
	s.logs.waitFor(t, "registered Keap hook", s.done)
	if !strings.Contains(s.logs.String(), `"status":"Unverified"`) {
		t.Errorf("the Unverified registration is not logged:\n%s", s.logs)
	}

	target, _ := url.Parse(s.URL)
	front.target.Store(httputil.NewSingleHostReverseProxy(target))
	waitUntil(t, "the hooks verified once connectord is reachable", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(prefix), contactEventKeys...)
	})
	waitUntil(t, "the state to show them Verified", 5*time.Second, func() bool {
		for _, h := range s.hookState(o, id)["hooks"].([]any) {
			if h.(map[string]any)["status"] != "Verified" || h.(map[string]any)["lastError"] != nil {
				return false
			}
		}
		return true
	})

	edit := k.hooksFor(prefix)["contact.edit"]
	if !k.SetHookStatus(edit.Key, "Inactive") {
		t.Fatal("no such hook")
	}
	waitUntil(t, "the Inactive hook verified again", 10*time.Second, func() bool {
		return k.hooksFor(prefix)["contact.edit"].Status == "Verified"
	})
	waitUntil(t, "the re-verification of the Inactive hook logged", 5*time.Second, func() bool {
		return strings.Contains(s.logs.String(), `"was":"Inactive","status":"Verified"`)
	})
	if err := k.DeliverHook("contact.edit", []int64{7}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the re-verified hook's delivery at the callback", 10*time.Second, func() bool { n, _ := rcv.distinct(); return n == 1 })
	if e := rcv.received()[0].Body["events"].([]any)[0].(map[string]any); e["eventType"] != "UPDATED" || e["objectId"] != "7" {
		t.Errorf("event %v", e)
	}
	noSecretsLogged(t, s.logs.String(), k.Hooks())
	checkKeapSpec(t, k)
}

// When the events cannot be stored the receiver answers 503 and Keap's retry,
// once the database takes them again, is stored and delivered.
func TestHooks_ReceiverAnswers503WhenItCannotStoreAndKeapsRetrySucceeds(t *testing.T) {
	t.Parallel()
	k, s, _, rcv, _ := startWebhookInstance(t, "")
	prefix := s.URL + "/events/keap/"

	// The database refuses new notifications.
	s.exec(`ALTER TABLE notifications ADD CONSTRAINT refuse_all CHECK (false) NOT VALID`)
	body := `{"event_key":"contact.add","object_type":"contact","object_keys":[{"id":5,"apiUrl":"","timestamp":"2026-11-30T10:00:00.000Z"}]}`
	r := s.post(k.hooksFor(prefix)["contact.add"].HookURL, body)
	if r.Status != 503 {
		t.Fatalf("delivery while the store fails: %d %s, want 503", r.Status, r.Body)
	}
	if n := s.count("events"); n != 0 {
		t.Fatalf("%d events stored", n)
	}
	s.exec(`ALTER TABLE notifications DROP CONSTRAINT refuse_all`)
	if r := s.post(k.hooksFor(prefix)["contact.add"].HookURL, body); r.Status != 200 || r.JSON(t)["received"] != float64(1) {
		t.Fatalf("Keap's retry: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "the retried delivery at the callback", 10*time.Second, func() bool { n, _ := rcv.distinct(); return n == 1 })
	e := rcv.received()[0].Body["events"].([]any)[0].(map[string]any)
	if e["objectId"] != "5" || e["eventType"] != "CREATED" || e["date"] != "2026-11-30T10:00:00Z" {
		t.Errorf("event %v", e)
	}
	noSecretsLogged(t, s.logs.String(), k.Hooks())
}

// Keap registers a hook but its answer is lost: connectord finds the hook by
// its receiver secret and adopts it rather than leave a stray at Keap; a stray
// pointing at no hook's secret is deleted.
func TestHooks_LostRegistrationAnswerIsAdoptedAndStraysDeleted(t *testing.T) {
	t.Parallel()
	k := newHookKeap(t)
	k.loseAnswers.Store(1)
	s := startServerWith(t, hooksEnv(t, k), k.keapServer, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	id := s.eventsInstance(o, rcv.URL, "", 0)
	prefix := s.URL + "/events/keap/"
	waitUntil(t, "three Verified hooks", 10*time.Second, func() bool { return allVerified(k.hooksFor(prefix), contactEventKeys...) })
	s.logs.waitFor(t, "adopted a Keap hook whose registration answer was lost", s.done)
	if n := len(k.hooksFor(prefix)); n != 3 || len(k.Hooks()) != 3 {
		t.Fatalf("%d hooks at Keap, want 3: %v", len(k.Hooks()), k.Hooks())
	}
	edit := k.hooksFor(prefix)["contact.edit"]
	for _, h := range s.hookState(o, id)["hooks"].([]any) {
		if h := h.(map[string]any); h["eventKey"] == "contact.edit" && (h["hookKey"] != edit.Key || h["status"] != "Verified") {
			t.Errorf("state %v, want the adopted hook %s Verified", h, edit.Key)
		}
	}
	// A stray: a hook at Keap pointing at this receiver with a secret no hook has.
	req, _ := http.NewRequest("POST", k.URL+"/crm/rest/v1/hooks", strings.NewReader(`{"eventKey":"contact.add","hookUrl":"`+prefix+`stray-secret-of-nobody-0123456789abcdefghijklmnop"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keap-API-Key", testServiceKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(k.Hooks()) != 4 {
		t.Fatalf("stray hook: %d, %d hooks", resp.StatusCode, len(k.Hooks()))
	}
	k.loseAnswers.Store(1)
	if r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": map[string]any{"event.notification.enabled": false}}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	waitUntil(t, "hooks deleted", 10*time.Second, func() bool { return len(k.hooksFor(prefix)) <= 1 })
	if r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": map[string]any{"event.notification.enabled": true}}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	waitUntil(t, "three Verified hooks and no stray", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(prefix), contactEventKeys...) && len(k.Hooks()) == 3
	})
	s.logs.waitFor(t, "deleted a stray Keap hook pointing at no hook's secret", s.done)
	checkKeapSpec(t, k)
}

// A new CONNECTORD_PUBLIC_URL moves the hooks there (PUT, with fresh secrets)
// on the next start, and the old receiver URLs stop working.
func TestHooks_NewPublicURLMovesTheHooks(t *testing.T) {
	t.Parallel()
	k := newHookKeap(t)
	env := hooksEnv(t, k)
	first := startServerWith(t, env, k.keapServer, nil)
	o := first.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	first.eventsInstance(o, rcv.URL, "", 0)
	waitUntil(t, "hooks at the first URL", 10*time.Second, func() bool { return allVerified(k.hooksFor(first.URL+"/events/keap/"), contactEventKeys...) })
	old := k.hooksFor(first.URL + "/events/keap/")
	first.stop()

	front := &switchable{}
	public := httptest.NewServer(front)
	t.Cleanup(public.Close)
	env["CONNECTORD_PUBLIC_URL"] = public.URL
	k.failPuts.Store(6) // the first moves fail, even after upstream's retries; they are tried again
	second := startServerWith(t, env, k.keapServer, nil)
	target, _ := url.Parse(second.URL)
	front.target.Store(httputil.NewSingleHostReverseProxy(target))
	waitUntil(t, "hooks moved to the new URL", 10*time.Second, func() bool { return allVerified(k.hooksFor(public.URL+"/events/keap/"), contactEventKeys...) })
	if n := k.failPuts.Load(); n != 0 {
		t.Errorf("%d refused PUTs left: the moves were not retried", n)
	}
	moved := k.hooksFor(public.URL + "/events/keap/")
	for key, h := range old {
		if moved[key].Key != h.Key {
			t.Errorf("%s: hook %s replaced by %s; moving should keep Keap's hook", key, h.Key, moved[key].Key)
		}
		oldPath := strings.TrimPrefix(h.HookURL, first.URL)
		if r := second.post(second.URL+oldPath, `{"event_key":"`+key+`","object_keys":[{"id":1}]}`); r.Status != 404 {
			t.Errorf("the old receiver URL of %s answered %d", key, r.Status)
		}
	}
	checkKeapSpec(t, k)
}

// A service account key registers hooks too, and so does a legacy key, which
// goes to Keap's API host as X-Keap-API-Key like a service account key.
func TestHooks_ServiceAccountAndLegacyKeysRegister(t *testing.T) {
	t.Parallel()
	k := newHookKeap(t)
	s := startServerWith(t, hooksEnv(t, k), k.keapServer, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	events := map[string]any{"event.notification.enabled": true, "event.notification.callback.url": rcv.URL, "event.objects": "companies"}

	body := apiKeyBody("infusionsoftcrm", testServiceKey, "")
	for key, v := range events {
		body["configuration"].(map[string]any)[key] = v
	}
	if r := s.do("POST", "/instances", o.auth(), body); r.Status != 200 {
		t.Fatalf("service account instance: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "company hooks registered with the service account key", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(s.URL+"/events/keap/"), "company.add", "company.delete", "company.edit")
	})
	for _, kr := range k.requests() {
		if kr.Header.Get("X-Keap-API-Key") != testServiceKey {
			t.Errorf("%s %s without the service account key", kr.Method, kr.Path)
		}
	}

	legacy := apiKeyBody("infusionsoftcrm", testLegacyKey, testLegacyApp)
	for key, v := range events {
		legacy["configuration"].(map[string]any)[key] = v
	}
	legacy["configuration"].(map[string]any)["event.objects"] = "contacts"
	if r := s.do("POST", "/instances", o.auth(), legacy); r.Status != 200 {
		t.Fatalf("legacy key in webhook mode: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "contact hooks registered with the legacy key", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(s.URL+"/events/keap/"), "company.add", "company.delete", "company.edit", "contact.add", "contact.delete", "contact.edit")
	})
	legacyCalls := 0
	for _, kr := range k.requests() {
		if kr.Header.Get("X-Keap-API-Key") == testLegacyKey {
			legacyCalls++
		}
	}
	if legacyCalls == 0 {
		t.Error("no hooks call carried the legacy key as X-Keap-API-Key")
	}
	checkKeapSpec(t, k)
}

// Deleting an instance while Keap is down still deletes it, within the
// bound, and logs the hooks left at Keap; deliveries to them find nothing.
func TestHooks_DeleteWhileKeapIsDownLogsTheHooksLeft(t *testing.T) {
	t.Parallel()
	k, s, o, _, id := startWebhookInstance(t, "")
	prefix := s.URL + "/events/keap/"

	k.SetDown(true)
	start := time.Now()
	if r := s.do("DELETE", fmt.Sprintf("/instances/%d", id), o.auth(), nil); r.Status != 200 {
		t.Fatalf("DELETE while Keap is down: %d %s", r.Status, r.Body)
	}
	if took := time.Since(start); took > 12*time.Second {
		t.Errorf("DELETE took %s; the hook deletion is bounded at 10 s", took)
	}
	k.SetDown(false)
	if r := s.do("GET", fmt.Sprintf("/instances/%d", id), o.auth(), nil); r.Status != 404 {
		t.Errorf("the instance is still there: %d", r.Status)
	}
	left := k.hooksFor(prefix)
	if len(left) != 3 {
		t.Fatalf("%d hooks at Keap, want the 3 left behind", len(left))
	}
	line := s.logs.waitFor(t, "these Keap hooks outlive their instance: delete them with DELETE /v1/hooks/{key} at Keap; until then Keap's deliveries to them are answered 404 and Keap makes them Inactive", s.done)
	for _, h := range left {
		if !strings.Contains(fmt.Sprint(line["hook_keys"]), h.Key) {
			t.Errorf("hook %s is not in the log line %v", h.Key, line)
		}
	}
	if r := s.post(left["contact.add"].HookURL, `{"event_key":"contact.add","object_keys":[{"id":1}]}`); r.Status != 404 {
		t.Errorf("a delivery to a deleted instance's hook: %d", r.Status)
	}
	if n := s.count("events"); n != 0 {
		t.Errorf("%d events stored", n)
	}
}

// A Keap delivery of many objects becomes notifications of at most
// event.notification.batch.size events, and each one's raw is Keap's delivery
// with just its own objects, so raw and events always match.
func TestHooks_LargeDeliverySplitsWithMatchingRaw(t *testing.T) {
	t.Parallel()
	k, _, _, rcv, _ := startWebhookInstance(t, "")

	ids := make([]int64, 45)
	for i := range ids {
		ids[i] = int64(500 + i)
	}
	if err := k.DeliverHook("contact.edit", ids); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "three notifications", 10*time.Second, func() bool { n, _ := rcv.distinct(); return n == 3 })
	seen := map[string]bool{}
	var sizes []int
	for _, g := range rcv.received() {
		evs := g.Body["events"].([]any)
		raw := g.Body["raw"].(map[string]any)
		keys, _ := raw["object_keys"].([]any)
		if raw["event_key"] != "contact.edit" || raw["object_type"] != "contact" || len(keys) != len(evs) {
			t.Fatalf("raw of a %d-event notification: event_key %v, object_type %v, %d object keys", len(evs), raw["event_key"], raw["object_type"], len(keys))
		}
		for i, e := range evs {
			id := e.(map[string]any)["objectId"].(string)
			if fmt.Sprint(keys[i].(map[string]any)["id"]) != id || seen[id] {
				t.Errorf("event %d (object %s) against raw object key %v (seen before: %v)", i, id, keys[i], seen[id])
			}
			seen[id] = true
		}
		sizes = append(sizes, len(evs))
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[5 20 20]" || len(seen) != 45 {
		t.Fatalf("notifications of %v events covering %d objects; want 20, 20 and 5 covering 45", sizes, len(seen))
	}
}
