package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/store"
	"github.com/connectord/connectord/internal/testdb"
)

// TestMain lets the SIGKILL test run a real server in a child process: the test
// binary itself, started with CONNECTORD_TEST_SERVE=1, is `connectord serve`.
func TestMain(m *testing.M) {
	if os.Getenv("CONNECTORD_TEST_SERVE") == "1" {
		if err := run(context.Background(), []string{"serve"}, os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// receiver is a consumer's callback endpoint on loopback. It verifies the
// signature the way a consumer would: HMAC-SHA256 of the raw body bytes.
type receiver struct {
	t     testing.TB
	URL   string
	key   string
	delay time.Duration
	fails atomic.Int64 // answer 503 to this many more requests; negative: always

	mu   sync.Mutex
	got  []received
	byID map[string]int
}

type received struct {
	Body        map[string]any
	EventID     string
	Signed      bool // the signature header verified
	ContentType string
	Status      int
	Traceparent string // the W3C trace context header it came with
}

func newReceiver(t testing.TB, key string) *receiver {
	t.Helper()
	r := &receiver{t: t, key: key, byID: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/events"
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return // the sender died mid-request
	}
	time.Sleep(r.delay)
	rec := received{ContentType: req.Header.Get("Content-Type"), Status: http.StatusOK, Traceparent: req.Header.Get("traceparent")}
	if r.key != "" {
		mac := hmac.New(sha256.New, []byte(r.key))
		mac.Write(body)
		want := "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		rec.Signed = hmac.Equal([]byte(req.Header.Get(events.SignatureHeader)), []byte(want))
	}
	if err := json.Unmarshal(body, &rec.Body); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	checkNotificationContract(r.t, body)
	rec.EventID, _ = rec.Body["eventId"].(string)
	if n := r.fails.Load(); n < 0 || (n > 0 && r.fails.CompareAndSwap(n, n-1)) {
		rec.Status = http.StatusServiceUnavailable
	}
	r.mu.Lock()
	r.got = append(r.got, rec)
	r.byID[rec.EventID]++
	r.mu.Unlock()
	w.WriteHeader(rec.Status)
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// distinct returns how many eventIds arrived, and how many arrived more than once.
func (r *receiver) distinct() (n, dup int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.byID {
		if c > 1 {
			dup++
		}
	}
	return len(r.byID), dup
}

func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventsEnv is a server that may deliver to loopback, retrying fast.
func eventsEnv(t testing.TB, k *keapServer) map[string]string {
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_CALLBACK_ALLOW_PRIVATE"] = "true"
	env["CONNECTORD_DELIVERY_BACKOFF_BASE"] = "10ms"
	env["CONNECTORD_DELIVERY_LEASE"] = "2s"
	env["CONNECTORD_LOG_LEVEL"] = "info"
	return env
}

// eventsInstance creates an OAuth instance with events enabled to callback.
func (s *server) eventsInstance(o org, callback, key string, batch int) int64 {
	s.t.Helper()
	code, err := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	if err != nil {
		s.t.Fatal(err)
	}
	b := seedBody("infusionsoftcrm", code, "events to "+callback)
	c := b["configuration"].(map[string]any)
	c["event.notification.enabled"] = true
	c["event.notification.callback.url"] = callback
	if key != "" {
		c["event.notification.signature.key"] = key
	}
	if batch > 0 {
		c["event.notification.batch.size"] = fmt.Sprint(batch)
	}
	r := s.do("POST", "/instances", o.auth(), b)
	if r.Status != 200 {
		s.t.Fatalf("POST /instances: %d %s", r.Status, r.Body)
	}
	return int64(r.JSON(s.t)["id"].(float64))
}

// enqueue stores events through the store's entry point, as the hook receiver
// and the poller do.
func enqueue(t testing.TB, dbURL string, instanceID int64, n int, raw string) []events.NotificationID {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{Date: time.Date(2026, 11, 1, 12, 0, i%60, 0, time.UTC), ElementKey: "infusionsoftcrm",
			EventType: events.Created, ObjectID: fmt.Sprint(1000 + i), ObjectType: "contacts"}
	}
	ids, err := db.EnqueueEvents(ctx, instanceID, evs, json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// notifications lists an instance's notifications through the API.
func (s *server) notifications(o org, id int64, query string) []map[string]any {
	s.t.Helper()
	r := s.do("GET", fmt.Sprintf("/instances/%d/events%s", id, query), o.auth(), nil)
	if r.Status != 200 {
		s.t.Fatalf("GET events: %d %s", r.Status, r.Body)
	}
	var out []map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

func TestEvents_DeliveredSignedInBatches(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, eventsEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "whsec-test-key")
	id := s.eventsInstance(o, rcv.URL, "whsec-test-key", 0)

	ids := enqueue(t, s.dbURL, id, 45, `{"source":"test"}`)
	if len(ids) != 3 {
		t.Fatalf("45 events made %d notifications, want 3 (20 per notification by default)", len(ids))
	}
	waitUntil(t, "3 notifications delivered", 10*time.Second, func() bool { n, _ := rcv.distinct(); return n == 3 })
	objects := map[string]bool{}
	for _, got := range rcv.received() {
		if !got.Signed {
			t.Errorf("notification %s: the signature does not verify", got.EventID)
		}
		if got.ContentType != "application/json" {
			t.Errorf("Content-Type %q", got.ContentType)
		}
		b := got.Body
		if b["instanceId"] != float64(id) || b["elementKey"] != "infusionsoftcrm" || b["instanceName"] != "events to "+rcv.URL || b["notificationId"] == nil {
			t.Errorf("body: %v", b)
		}
		if raw, _ := json.Marshal(b["raw"]); string(raw) != `{"source":"test"}` {
			t.Errorf("raw: %s", raw)
		}
		for _, e := range b["events"].([]any) {
			e := e.(map[string]any)
			if e["eventType"] != "CREATED" || e["objectType"] != "contacts" || e["elementKey"] != "infusionsoftcrm" || e["date"] == nil {
				t.Errorf("event %v", e)
			}
			objects[e["objectId"].(string)] = true
		}
	}
	if len(objects) != 45 {
		t.Errorf("%d distinct objects delivered, want 45", len(objects))
	}

	waitUntil(t, "deliveries recorded", 5*time.Second, func() bool {
		return len(s.notifications(o, id, "?status=delivered")) == 3
	})
	list := s.notifications(o, id, "")
	if len(list) != 3 || list[0]["notificationId"].(float64) < list[2]["notificationId"].(float64) {
		t.Fatalf("want 3 notifications, newest first: %v", list)
	}
	for _, n := range list {
		att := n["deliveryAttempts"].([]any)
		if n["attempts"] != float64(1) || len(att) != 1 || att[0].(map[string]any)["status"] != float64(200) {
			t.Errorf("notification %v: want one attempt answered 200", n)
		}
	}
	// Paging and filters.
	r := s.do("GET", fmt.Sprintf("/instances/%d/events?pageSize=2", id), o.auth(), nil)
	next := r.Header.Get("Elements-Next-Page-Token")
	if len(r.Array(t)) != 2 || next == "" {
		t.Fatalf("page 1: %d items, next %q", len(r.Array(t)), next)
	}
	r = s.do("GET", fmt.Sprintf("/instances/%d/events?pageSize=2&nextPage=%s", id, next), o.auth(), nil)
	if len(r.Array(t)) != 1 || r.Header.Get("Elements-Next-Page-Token") != "" {
		t.Fatalf("page 2: %s (next %q)", r.Body, r.Header.Get("Elements-Next-Page-Token"))
	}
	if n := len(s.notifications(o, id, "?eventType=DELETED")); n != 0 {
		t.Errorf("eventType=DELETED: %d notifications", n)
	}
	if n := len(s.notifications(o, id, "?eventType=CREATED&status=delivered")); n != 3 {
		t.Errorf("eventType=CREATED: %d notifications", n)
	}
	if r := s.do("GET", fmt.Sprintf("/instances/%d/events?status=lost", id), o.auth(), nil); r.Status != 400 {
		t.Errorf("status=lost: %d", r.Status)
	}

	// Another organization sees none of it.
	other := s.createOrg("Other", "dev@other.test")
	for _, c := range []struct{ method, path string }{
		{"GET", fmt.Sprintf("/instances/%d/events", id)},
		{"POST", fmt.Sprintf("/instances/%d/events/%s/redeliver", id, list[0]["eventId"])},
		{"POST", fmt.Sprintf("/instances/%d/events/redeliver?status=failed", id)},
	} {
		if r := s.do(c.method, c.path, other.auth(), nil); r.Status != 404 {
			t.Errorf("%s %s by another organization: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
}

func TestEvents_RetriedUntilAcceptedWithTheSameEventID(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, eventsEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	rcv.fails.Store(3)
	id := s.eventsInstance(o, rcv.URL, "", 0)
	enqueue(t, s.dbURL, id, 1, `{}`)

	waitUntil(t, "delivered after 3 failures", 15*time.Second, func() bool {
		return len(s.notifications(o, id, "?status=delivered")) == 1
	})
	got := rcv.received()
	if len(got) != 4 {
		t.Fatalf("the callback got %d requests, want 4", len(got))
	}
	for _, g := range got {
		if g.EventID != got[0].EventID || g.Body["notificationId"] != got[0].Body["notificationId"] {
			t.Errorf("eventId %s then %s: it must stay the same on every retry", got[0].EventID, g.EventID)
		}
		if _, signed := g.Body["signature"]; signed || g.Signed {
			t.Errorf("unsigned instance sent a signature")
		}
	}
	n := s.notifications(o, id, "")[0]
	var statuses []float64
	for _, a := range n["deliveryAttempts"].([]any) {
		statuses = append(statuses, a.(map[string]any)["status"].(float64))
	}
	if n["attempts"] != float64(4) || fmt.Sprint(statuses) != "[503 503 503 200]" || n["eventId"] != got[0].EventID {
		t.Fatalf("recorded %v attempts %v for %v", n["attempts"], statuses, n["eventId"])
	}
}

func TestEvents_NeverAcceptedEndsFailedAndIsRedelivered(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := eventsEnv(t, k)
	// 9 retries at 10ms·4^n would take an hour; 1µs·4^n takes a third of a second.
	env["CONNECTORD_DELIVERY_BACKOFF_BASE"] = "1us"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	rcv.fails.Store(-1)
	id := s.eventsInstance(o, rcv.URL, "", 1)
	if ids := enqueue(t, s.dbURL, id, 3, `null`); len(ids) != 3 {
		t.Fatalf("3 events with batch size 1 made %d notifications", len(ids))
	}
	waitUntil(t, "3 notifications failed", 20*time.Second, func() bool {
		return len(s.notifications(o, id, "?status=failed")) == 3
	})
	failed := s.notifications(o, id, "?status=failed")
	for _, n := range failed {
		if n["attempts"] != float64(10) || len(n["deliveryAttempts"].([]any)) != 10 || !strings.Contains(n["lastError"].(string), "503") {
			t.Errorf("failed notification %v: want 10 attempts (1 + 9 retries) ending in 503", n)
		}
	}
	if _, dup := rcv.distinct(); dup != 3 {
		t.Fatalf("%d eventIds were retried, want 3", dup)
	}

	rcv.fails.Store(0)
	first := failed[0]["eventId"].(string)
	if r := s.do("POST", fmt.Sprintf("/instances/%d/events/%s/redeliver", id, first), o.auth(), nil); r.Status != 200 || r.JSON(t)["redelivered"] != float64(1) {
		t.Fatalf("redeliver: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "redelivered", 10*time.Second, func() bool { return len(s.notifications(o, id, "?status=delivered")) == 1 })
	if d := s.notifications(o, id, "?status=delivered")[0]; d["eventId"] != first || d["attempts"] != float64(11) {
		t.Fatalf("redelivered %v", d)
	}
	if r := s.do("POST", fmt.Sprintf("/instances/%d/events/nope/redeliver", id), o.auth(), nil); r.Status != 404 {
		t.Errorf("unknown eventId: %d", r.Status)
	}
	if r := s.do("POST", fmt.Sprintf("/instances/%d/events/redeliver", id), o.auth(), nil); r.Status != 400 {
		t.Errorf("bulk redeliver without status=failed: %d", r.Status)
	}
	r := s.do("POST", fmt.Sprintf("/instances/%d/events/redeliver?status=failed", id), o.auth(), nil)
	if r.Status != 200 || r.JSON(t)["redelivered"] != float64(2) {
		t.Fatalf("bulk redeliver: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "all redelivered", 10*time.Second, func() bool { return len(s.notifications(o, id, "?status=delivered")) == 3 })
	ok := map[string]bool{}
	for _, g := range rcv.received() {
		if g.Status == 200 {
			ok[g.EventID] = true
		}
	}
	for _, n := range failed {
		if !ok[n["eventId"].(string)] {
			t.Errorf("eventId %s never accepted under its own id", n["eventId"])
		}
	}
}

// A callback name that passed the configuration check but now leads to a
// private address (DNS changed) is refused when delivery connects.
func TestEvents_PrivateDestinationRefusedAtConnect(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := eventsEnv(t, k)
	delete(env, "CONNECTORD_CALLBACK_ALLOW_PRIVATE")
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	id := s.eventsInstance(o, "https://hooks.example.test/events", "", 0)
	s.queryRow(`UPDATE instances SET configuration = jsonb_set(configuration, '{event.notification.callback.url}', to_jsonb($1::text))
		WHERE id = $2 RETURNING id`, []any{rcv.URL, id}, new(int64))
	enqueue(t, s.dbURL, id, 1, `{}`)
	waitUntil(t, "two refused attempts", 10*time.Second, func() bool {
		list := s.notifications(o, id, "")
		return len(list) == 1 && list[0]["attempts"].(float64) >= 2
	})
	n := s.notifications(o, id, "")[0]
	if n["status"] == "delivered" || !strings.Contains(n["lastError"].(string), "CONNECTORD_CALLBACK_ALLOW_PRIVATE") {
		t.Fatalf("want a refusal naming the policy: %v", n)
	}
	if got := rcv.received(); len(got) != 0 {
		t.Fatalf("the private receiver got %d requests", len(got))
	}
}

// A server SIGKILLed in the middle of delivering thousands of events loses
// none: once a server runs again, every notification arrives, and only those
// in flight at the kill (at most 4, the per-host limit) arrive twice.
func TestEvents_SIGKILLMidDeliveryLosesNothing(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := eventsEnv(t, k)
	setup := startServerWith(t, env, k, nil)
	o := setup.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	rcv.delay = 15 * time.Millisecond
	id := setup.eventsInstance(o, rcv.URL, "", 5)
	setup.stop()

	const nEvents, nNotifications = 2000, 400
	if ids := enqueue(t, setup.dbURL, id, nEvents, `{}`); len(ids) != nNotifications {
		t.Fatalf("%d notifications", len(ids))
	}

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "CONNECTORD_TEST_SERVE=1")
	for k, v := range env {
		child.Env = append(child.Env, k+"="+v)
	}
	logs := newLogBuffer()
	child.Stdout, child.Stderr = io.Discard, logs
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill() }) // when the test stops early
	waitUntil(t, "the child to deliver 60 notifications", 20*time.Second, func() bool { n, _ := rcv.distinct(); return n >= 60 })
	if err := child.Process.Kill(); err != nil { // SIGKILL: no shutdown, no recording
		t.Fatal(err)
	}
	_ = child.Wait()
	if strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("the child logged errors before the kill:\n%s", logs)
	}
	atKill, _ := rcv.distinct()
	if atKill >= nNotifications {
		t.Fatalf("the kill came after every delivery (%d); nothing was tested", atKill)
	}

	s := startServerWith(t, env, k, nil)
	waitUntil(t, "every notification delivered after the restart", 30*time.Second, func() bool {
		var n int
		s.queryRow(`SELECT count(*) FROM notifications WHERE status = 'delivered'`, nil, &n)
		return n == nNotifications
	})
	n, dup := rcv.distinct()
	objects := map[string]bool{}
	for _, g := range rcv.received() {
		for _, e := range g.Body["events"].([]any) {
			objects[e.(map[string]any)["objectId"].(string)] = true
		}
	}
	t.Logf("killed after %d notifications; %d delivered twice", atKill, dup)
	if n != nNotifications || len(objects) != nEvents {
		t.Fatalf("the callback got %d notifications and %d events, want %d and %d", n, len(objects), nNotifications, nEvents)
	}
	if dup > 4 {
		t.Fatalf("%d notifications delivered twice; only those in flight (at most 4 per host) may be", dup)
	}
}

// When Keap refuses an instance's refresh token, its consumer hears it once:
// one signed notification whose event is about the instance itself, saying
// why; the refusals after that send nothing more.
func TestEvents_InstanceInvalidSendsOneNotification(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, eventsEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "invalid-key")
	id := s.eventsInstance(o, rcv.URL, "invalid-key", 0)

	k.RevokeRefreshTokens(testClientID)
	if r := s.do("PUT", fmt.Sprintf("/instances/%d/tokens/refresh", id), o.auth(), nil); r.Status != 400 {
		t.Fatalf("refused refresh: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "the invalid-instance notification", 15*time.Second, func() bool { return len(rcv.received()) >= 1 })
	// Refused again: the instance was invalid already, so nothing more is sent.
	if r := s.do("PUT", fmt.Sprintf("/instances/%d/tokens/refresh", id), o.auth(), nil); r.Status != 400 {
		t.Fatalf("refresh of an invalid instance: %d %s", r.Status, r.Body)
	}
	time.Sleep(500 * time.Millisecond)
	got := rcv.received()
	if len(got) != 1 {
		t.Fatalf("the callback got %d notifications, want exactly 1", len(got))
	}
	g := got[0]
	evs, _ := g.Body["events"].([]any)
	if !g.Signed || len(evs) != 1 {
		t.Fatalf("notification signed %v with %d events: %v", g.Signed, len(evs), g.Body)
	}
	ev := evs[0].(map[string]any)
	raw, _ := g.Body["raw"].(map[string]any)
	if ev["objectType"] != "instance" || ev["objectId"] != fmt.Sprint(id) || ev["eventType"] != "UPDATED" || ev["elementKey"] != "infusionsoftcrm" {
		t.Errorf("event %v, want an UPDATED event of objectType instance, objectId %d", ev, id)
	}
	if raw["valid"] != false || !strings.Contains(fmt.Sprint(raw["invalidReason"]), "authorize again") || raw["instanceId"] != float64(id) {
		t.Errorf("raw %v, want valid false and the reason", raw)
	}
	if list := s.notifications(o, id, "?eventType=UPDATED"); len(list) != 1 || list[0]["status"] != "delivered" {
		t.Errorf("GET events: %v", list)
	}
}
