package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
)

// pollingEnv is a server that polls every 100ms and may deliver to loopback.
func pollingEnv(t testing.TB, k *keapServer) map[string]string {
	env := eventsEnv(t, k)
	env["CONNECTORD_POLLER_INTERVAL_OVERRIDE"] = "100ms"
	return env
}

// pollingInstance creates an infusionsoftrest (polling) OAuth instance with
// config on top of the seed's; pages of Keap's lists are 3 records long.
func (s *server) pollingInstance(o org, config map[string]any) int64 {
	s.t.Helper()
	code, err := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	if err != nil {
		s.t.Fatal(err)
	}
	b := seedBody("infusionsoftrest", code, "polled")
	c := b["configuration"].(map[string]any)
	c["pagination.max"] = 3
	for k, v := range config {
		c[k] = v
	}
	r := s.do("POST", "/instances", o.auth(), b)
	if r.Status != 200 {
		s.t.Fatalf("POST /instances: %d %s", r.Status, r.Body)
	}
	return int64(r.JSON(s.t)["id"].(float64))
}

// keapREST calls the fake Keap's REST API directly, as another Keap user
// changing their data would, with a service account key.
func keapREST(t testing.TB, k *keapServer, method, path string, body any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(method, k.URL+"/crm/rest/v1"+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keap-API-Key", testServiceKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func createContacts(t testing.TB, k *keapServer, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		c := keapREST(t, k, "POST", "/contacts", map[string]any{"given_name": fmt.Sprintf("%s%d", prefix, i),
			"email_addresses": []any{map[string]any{"email": fmt.Sprintf("%s%d@example.com", strings.ToLower(prefix), i), "field": "EMAIL1"}}})
		ids = append(ids, fmt.Sprint(c["id"]))
	}
	return ids
}

func updateContacts(t testing.TB, k *keapServer, ids ...string) {
	t.Helper()
	for _, id := range ids {
		keapREST(t, k, "PATCH", "/contacts/"+id, map[string]any{"job_title": "changed " + time.Now().Format(time.RFC3339Nano)})
	}
}

// polled is one event as the callback received it.
type polled struct{ objectID, eventType string }

// polledEvents flattens every notification the receiver accepted, checking
// each the way a consumer would.
func polledEvents(t testing.TB, rcv *receiver, instanceID int64) []polled {
	t.Helper()
	var out []polled
	for _, g := range rcv.received() {
		if g.Status != 200 {
			continue
		}
		if rcv.key != "" && !g.Signed {
			t.Errorf("notification %s: the signature does not verify", g.EventID)
		}
		if g.Body["instanceId"] != float64(instanceID) || g.Body["elementKey"] != "infusionsoftrest" {
			t.Errorf("notification %v", g.Body)
		}
		raw, _ := g.Body["raw"].(map[string]any)
		records, _ := raw["contacts"].([]any)
		evs := g.Body["events"].([]any)
		if len(records) != len(evs) {
			t.Errorf("raw holds %d contacts for %d events: %v", len(records), len(evs), raw)
		}
		for i, e := range evs {
			e := e.(map[string]any)
			if e["objectType"] != "contacts" || e["elementKey"] != "infusionsoftrest" || e["date"] == nil {
				t.Errorf("event %v", e)
			}
			if i < len(records) && fmt.Sprint(records[i].(map[string]any)["id"]) != e["objectId"] {
				t.Errorf("event %d is about %v but raw holds contact %v", i, e["objectId"], records[i].(map[string]any)["id"])
			}
			out = append(out, polled{e["objectId"].(string), e["eventType"].(string)})
		}
	}
	return out
}

// waitEvents waits until the receiver holds n events, then checks that no
// more arrive for a few polls.
func waitEvents(t testing.TB, rcv *receiver, instanceID int64, n int) []polled {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d polled events", n), 15*time.Second, func() bool { return len(polledEvents(t, rcv, instanceID)) >= n })
	time.Sleep(500 * time.Millisecond) // five more polls: nothing repeated
	return polledEvents(t, rcv, instanceID)
}

func wantEvents(t testing.TB, got []polled, created, updated []string) {
	t.Helper()
	count := map[polled]int{}
	for _, e := range got {
		count[e]++
	}
	want := map[polled]bool{}
	for _, id := range created {
		want[polled{id, "CREATED"}] = true
	}
	for _, id := range updated {
		want[polled{id, "UPDATED"}] = true
	}
	for e, n := range count {
		switch {
		case !want[e]:
			t.Errorf("unexpected event %v", e)
		case n > 1:
			t.Errorf("event %v delivered %d times", e, n)
		}
	}
	for e := range want {
		if count[e] == 0 {
			t.Errorf("event %v never delivered", e)
		}
	}
}

// waitCursors waits until the instance has n cursor rows.
func (s *server) waitCursors(id int64, n int) {
	s.t.Helper()
	waitUntil(s.t, fmt.Sprintf("%d poll cursors", n), 10*time.Second, func() bool {
		var got int
		s.queryRow(`SELECT count(*) FROM poll_cursors WHERE instance_id = $1`, []any{id}, &got)
		return got == n
	})
	time.Sleep(5 * time.Millisecond) // Keap's next change is in a later millisecond than the cursor
}

// Creates and updates over several pages are reported once each, with the
// right type; a restart in between leaves no gap and repeats nothing.
func TestPolling_CreatesAndUpdatesAcrossPagesAndARestart(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := pollingEnv(t, k)
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "whsec-poll")
	k.SeedContacts(4) // before polling was enabled: never reported
	id := s.pollingInstance(o, map[string]any{"event.notification.enabled": true,
		"event.notification.callback.url": rcv.URL, "event.notification.signature.key": "whsec-poll"})
	s.waitCursors(id, 1)

	created := createContacts(t, k, "First", 8) // three pages of 3, many sharing a millisecond
	got := waitEvents(t, rcv, id, 8)
	wantEvents(t, got, created, nil)
	updated := created[1:4]
	updateContacts(t, k, updated...)
	got = waitEvents(t, rcv, id, 11)
	wantEvents(t, got, created, updated)

	// Down: Keap changes meanwhile; back up on the same database.
	s.stop()
	more := createContacts(t, k, "Second", 4)
	updateContacts(t, k, created[6], created[0])
	s = startServerWith(t, env, k, nil)
	got = waitEvents(t, rcv, id, 17)
	wantEvents(t, got, append(created, more...), append(updated, created[6], created[0]))
	if _, dup := rcv.distinct(); dup != 0 {
		t.Errorf("%d notifications delivered twice", dup)
	}
	if !strings.Contains(s.logs.String(), `"message":"poll"`) {
		t.Errorf("no poll was logged:\n%s", s.logs)
	}
	for _, line := range s.logs.Lines() {
		if strings.Contains(line, `"message":"poll"`) && (!strings.Contains(line, `"instance_id":`) || !strings.Contains(line, `"pages":`) || !strings.Contains(line, `"took":`)) {
			t.Fatalf("poll log line lacks instance_id, pages or took: %s", line)
		}
	}
}

// PATCH turns polling on and off on a live instance; turned on again, it
// reports only what changed from then.
func TestPolling_PatchEnablesAndDisablesWithoutRestart(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, pollingEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	id := s.pollingInstance(o, nil)
	patch := func(enabled bool) {
		t.Helper()
		r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": map[string]any{
			"event.notification.enabled": enabled, "event.notification.callback.url": rcv.URL}})
		if r.Status != 200 || r.JSON(t)["eventsEnabled"] != enabled {
			t.Fatalf("PATCH enabled=%v: %d %s", enabled, r.Status, r.Body)
		}
	}

	before := createContacts(t, k, "Before", 1)
	time.Sleep(300 * time.Millisecond)
	if s.count("poll_cursors") != 0 || len(rcv.received()) != 0 {
		t.Fatal("an instance without events enabled was polled")
	}
	patch(true)
	s.waitCursors(id, 1)
	on := createContacts(t, k, "On", 2)
	wantEvents(t, waitEvents(t, rcv, id, 2), on, nil)

	patch(false)
	s.waitCursors(id, 0)
	off := createContacts(t, k, "Off", 2)
	time.Sleep(400 * time.Millisecond)

	patch(true)
	s.waitCursors(id, 1)
	again := createContacts(t, k, "Again", 1)
	got := waitEvents(t, rcv, id, 3)
	wantEvents(t, got, append(on, again...), nil)
	_, _ = before, off // neither is reported: they changed while polling was off
}

// Polling configuration that cannot work is refused when it is given, naming
// what is wrong and what would work.
func TestPolling_ConfigurationRefusesWhatCannotProduceEvents(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, pollingEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	id := s.pollingInstance(o, nil)
	tests := []struct {
		name   string
		config map[string]any
		want   []string
	}{
		{"a resource Keap cannot list by change", map[string]any{"event.objects": "contacts, companies"}, []string{"event.objects", "cannot poll companies", "it can poll contacts"}},
		{"no resource", map[string]any{"event.objects": " , "}, []string{"event.objects names no resource"}},
		{"webhook on a polling-only element", map[string]any{"event.vendor.type": "webhook"}, []string{"receives events by polling, not webhook"}},
		{"a url naming nothing pollable", map[string]any{"event.poller.configuration": map[string]any{"contacts": map[string]any{"url": "/hubs/crm/notes"}}}, []string{"event.poller.configuration.contacts.url", "/hubs/crm/notes"}},
		{"an unknown member", map[string]any{"event.poller.configuration": map[string]any{"contacts": map[string]any{"pollEvery": 5}}}, []string{"event.poller.configuration.contacts", "pollEvery"}},
		{"a key that cannot be polled", map[string]any{"event.poller.configuration": map[string]any{"tags": map[string]any{}}}, []string{"tags is not a resource element infusionsoftrest can poll"}},
	}
	for _, tt := range tests {
		cfg := map[string]any{"event.notification.enabled": true, "event.notification.callback.url": "http://127.0.0.1:1/events"}
		for k, v := range tt.config {
			cfg[k] = v
		}
		r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": cfg})
		if r.Status != 400 {
			t.Errorf("%s: %d %s, want 400", tt.name, r.Status, r.Body)
			continue
		}
		msg := r.JSON(t)["message"].(string)
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: the message %q lacks %q", tt.name, msg, w)
			}
		}
	}
	// Open Connectors' own example is accepted, where clause and all.
	r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"configuration": map[string]any{
		"event.notification.enabled": true, "event.notification.callback.url": "http://127.0.0.1:1/events",
		"event.poller.configuration": map[string]any{"contacts": map[string]any{
			"url": "/hubs/crm/contacts?where=lastUpdated>='${gmtDate:yyyy-MM-dd'T'HH:mm:ssXXX}'", "idField": "id",
			"datesConfiguration": map[string]any{"updatedDateField": "last_updated", "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ssXXX", "createdDateField": "date_created"}}}}})
	if r.Status != 200 {
		t.Fatalf("Open Connectors' poller configuration: %d %s", r.Status, r.Body)
	}
	// A webhook element refuses objects without Keap hooks.
	code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	b := seedBody("infusionsoftcrm", code, "hooks")
	c := b["configuration"].(map[string]any)
	c["event.notification.enabled"], c["event.notification.callback.url"], c["event.objects"] = true, "http://127.0.0.1:1/events", "contacts,notes"
	if r := s.do("POST", "/instances", o.auth(), b); r.Status != 400 || !strings.Contains(string(r.Body), "no Keap REST hooks for notes") {
		t.Fatalf("webhook objects: %d %s", r.Status, r.Body)
	}
}

// Keap refusing the credentials even after a renewal stops polling with the
// reason recorded; once the instance is changed, polling resumes from the
// cursor, so nothing that changed meanwhile is lost.
func TestPolling_RefusedCredentialsStopUntilTheInstanceChanges(t *testing.T) {
	t.Parallel()
	var refuse atomic.Bool
	var refused atomic.Int64
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refuse.Load() && r.Method == "GET" && r.URL.Path == "/crm/rest/v1/contacts" {
				refused.Add(1)
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"fault":{"faultstring":"Invalid Access Token","detail":{"errorcode":"keymanagement.service.invalid_access_token"}}}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := startServerWith(t, pollingEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	id := s.pollingInstance(o, map[string]any{"event.notification.enabled": true, "event.notification.callback.url": rcv.URL})
	s.waitCursors(id, 1)
	refuse.Store(true)
	var lastError string
	waitUntil(t, "polling stopped", 10*time.Second, func() bool {
		var stopped bool
		s.queryRow(`SELECT stopped_at IS NOT NULL, coalesce(last_error, '') FROM poll_cursors WHERE instance_id = $1`, []any{id}, &stopped, &lastError)
		return stopped
	})
	if !strings.Contains(lastError, "Keap refused the instance's credentials (401") {
		t.Fatalf("last_error %q", lastError)
	}
	if refused.Load() < 2 {
		t.Fatalf("Keap refused %d list calls; the poller must renew the token and try once more before it stops", refused.Load())
	}
	// The owner sees it through the API, and another organization sees nothing.
	if st := s.pollState(o, id); len(st) != 1 || st[0]["resource"] != "contacts" || st[0]["stopped"] != true || st[0]["lastError"] != lastError {
		t.Fatalf("GET polling while stopped: %v", st)
	}
	if r := s.do("GET", fmt.Sprintf("/instances/%d/events/polling", id), s.createOrg("Other", "dev@other.test").auth(), nil); r.Status != 404 {
		t.Fatalf("another organization's GET polling: %d %s", r.Status, r.Body)
	}
	before := refused.Load()
	meanwhile := createContacts(t, k, "Meanwhile", 2)
	time.Sleep(400 * time.Millisecond) // four intervals
	if n := refused.Load() - before; n != 0 {
		t.Fatalf("%d polls of Keap after polling stopped", n)
	}
	refuse.Store(false)
	if r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), map[string]any{"name": "polled, fixed"}); r.Status != 200 {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	wantEvents(t, waitEvents(t, rcv, id, 2), meanwhile, nil)
	if st := s.pollState(o, id); len(st) != 1 || st[0]["stopped"] != false || st[0]["lastError"] != nil || st[0]["lastPolledDate"] == nil {
		t.Fatalf("GET polling after the repair: %v", st)
	}
}

// pollState returns the instance's polling cursors through the API.
func (s *server) pollState(o org, id int64) []map[string]any {
	s.t.Helper()
	r := s.do("GET", fmt.Sprintf("/instances/%d/events/polling", id), o.auth(), nil)
	if r.Status != 200 {
		s.t.Fatalf("GET polling: %d %s", r.Status, r.Body)
	}
	var out []map[string]any
	for _, c := range r.JSON(s.t)["cursors"].([]any) {
		out = append(out, c.(map[string]any))
	}
	return out
}

// Two replicas on one database never poll the same instance at once, and
// between them every instance is polled.
func TestPolling_TwoReplicasNeverPollOneInstanceAtOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	inflight, most, calls := map[string]int{}, 0, map[string]int{}
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" || r.URL.Path != "/crm/rest/v1/contacts" {
				h.ServeHTTP(w, r)
				return
			}
			who := r.Header.Get("Authorization") // each instance has its own access token
			mu.Lock()
			inflight[who]++
			calls[who]++
			most = max(most, inflight[who])
			mu.Unlock()
			time.Sleep(40 * time.Millisecond) // long enough for a second poller to overlap
			h.ServeHTTP(w, r)
			mu.Lock()
			inflight[who]--
			mu.Unlock()
		})
	})
	env := pollingEnv(t, k)
	env["CONNECTORD_POLLER_INTERVAL_OVERRIDE"] = "20ms"
	// Room in Keap's quota for the polls this test counts: at 25 a second,
	// split between two replicas, paced calls fall short of 5 per instance.
	env["CONNECTORD_KEAP_QUOTAS"] = "client:second=100,minute=6000"
	a := startServerWith(t, env, k, nil)
	b := startServerWith(t, env, k, nil)
	o := a.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	const n = 3
	var ids []int64
	for range n {
		id := a.pollingInstance(o, map[string]any{"event.notification.enabled": true, "event.notification.callback.url": rcv.URL})
		ids = append(ids, id)
	}
	createContacts(t, k, "Shared", 7) // every poll pages: several calls per poll
	polls := func(s *server) int {
		n := 0
		for _, l := range s.logs.Lines() {
			if strings.Contains(l, `"message":"poll"`) {
				n++
			}
		}
		return n
	}
	// Polling goes on until every instance was listed many times, each a
	// chance for the two replicas to overlap, and both replicas took part.
	// Counted, not timed: a replica's first call waits for its first quota
	// sync, and a loaded machine is slow, so a fixed window proves nothing
	// either way; the deadline only bounds a poller that stalled.
	const want = 12 // the 7 contacts' 3 pages, then at least 9 more polls
	waitUntil(t, fmt.Sprintf("every instance to be listed %d times by the two replicas", want), 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) < n {
			return false
		}
		for _, c := range calls {
			if c < want {
				return false
			}
		}
		return polls(a) > 0 && polls(b) > 0
	})
	pollsA, pollsB := polls(a), polls(b)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("replica a polled %d times, b %d times; list calls per instance %v; at most %d poll at once per instance", pollsA, pollsB, slices.Collect(maps.Values(calls)), most)
	if most != 1 {
		t.Fatalf("an instance was polled by %d pollers at once", most)
	}
	if len(calls) != n {
		t.Fatalf("%d of %d instances were polled", len(calls), n)
	}
}

// A server SIGKILLed in the middle of a many-page poll loses nothing and
// repeats nothing: each page's events were stored with the cursor after them,
// so the next server goes on from the last stored page, and the sweep's start
// was stored too, so what was created during it is still CREATED.
func TestPolling_SIGKILLMidPollNoGapNoRepeat(t *testing.T) {
	t.Parallel()
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" && r.URL.Path == "/crm/rest/v1/contacts" {
				time.Sleep(40 * time.Millisecond) // a slow Keap: the poll takes a while
			}
			h.ServeHTTP(w, r)
		})
	})
	env := pollingEnv(t, k)
	env["CONNECTORD_POLLER_LEASE"] = "1s" // the dead child's lease runs out soon
	setup := startServerWith(t, env, k, nil)
	o := setup.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	id := setup.pollingInstance(o, map[string]any{"event.notification.enabled": true, "event.notification.callback.url": rcv.URL})
	setup.waitCursors(id, 1)
	setup.stop()
	const n = 60 // 20 pages of 3
	created := createContacts(t, k, "Backlog", n)
	// Changed again before any poll saw it: one CREATED, listed last, so it is
	// read after the restart, which must know the sweep began before it was created.
	updateContacts(t, k, created[1])

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "CONNECTORD_TEST_SERVE=1")
	for k, v := range env {
		child.Env = append(child.Env, k+"="+v)
	}
	child.Stdout, child.Stderr = io.Discard, io.Discard
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill() })
	stored := func() int {
		var c int
		setup.queryRow(`SELECT count(*) FROM events WHERE instance_id = $1`, []any{id}, &c)
		return c
	}
	waitUntil(t, "the child to store a few pages", 20*time.Second, func() bool { return stored() >= 6 })
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	atKill := stored()
	if atKill >= n {
		t.Fatalf("the kill came after the whole poll (%d events); nothing was tested", atKill)
	}

	s := startServerWith(t, env, k, nil)
	got := waitEvents(t, rcv, id, n)
	t.Logf("killed with %d of %d events stored", atKill, n)
	var repeated int
	s.queryRow(`SELECT count(*) FROM (SELECT object_id FROM events WHERE instance_id = $1 GROUP BY object_id, event_type HAVING count(*) > 1) d`, []any{id}, &repeated)
	if repeated != 0 || stored() != n {
		t.Fatalf("%d events stored, %d of them repeated; want %d, none", stored(), repeated, n)
	}
	// Deliveries in flight at the kill may arrive twice (consumers deduplicate
	// on eventId); every contact arrives, CREATED.
	seen := map[polled]bool{}
	for _, e := range got {
		seen[e] = true
	}
	for _, id := range created {
		if !seen[polled{id, "CREATED"}] {
			t.Errorf("contact %s: no CREATED event", id)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events, want %d", len(seen), n)
	}
}

// The README's polling configuration, PATCHed onto an instance as written
// (with the test's receiver as the callback), polls and delivers signed.
func TestREADMEPolling_ConfigurationWorksAsWritten(t *testing.T) {
	t.Parallel()
	block := readmeBlocks(t, "polling", "json")[0]
	var body map[string]map[string]any
	if err := json.Unmarshal([]byte(block), &body); err != nil {
		t.Fatalf("the README's polling configuration is not JSON: %v\n%s", err, block)
	}
	key := body["configuration"]["event.notification.signature.key"].(string)
	rcv := newReceiver(t, key)
	body["configuration"]["event.notification.callback.url"] = rcv.URL

	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, pollingEnv(t, k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	id := s.pollingInstance(o, nil)
	if r := s.do("PATCH", fmt.Sprintf("/instances/%d", id), o.auth(), body); r.Status != 200 {
		t.Fatalf("PATCH with the README's configuration: %d %s", r.Status, r.Body)
	}
	s.waitCursors(id, 1)
	created := createContacts(t, k, "Readme", 2)
	wantEvents(t, waitEvents(t, rcv, id, 2), created, nil) // polledEvents checks the signatures
}
