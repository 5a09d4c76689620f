package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/trace"
)

// keapTraces records the traceparent of every request reaching the fake Keap.
type keapTraces struct {
	mu   sync.Mutex
	seen []string // "METHOD PATH traceparent"
}

func (k *keapTraces) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.seen = append(k.seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("traceparent"))
		k.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (k *keapTraces) all() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.seen...)
}

// TestTrace_FollowedFromTheCallerToKeapToTheCallbackAndTheLogs sends requests
// with a W3C traceparent and follows its trace id into the calls connectord
// makes to Keap, into a callback's headers, into every log line of the
// request and into an error answer; a request without one gets a trace of
// its own, and a malformed one is replaced, not passed on.
func TestTrace_FollowedFromTheCallerToKeapToTheCallbackAndTheLogs(t *testing.T) {
	t.Parallel()
	tr := &keapTraces{}
	k := newKeapWrapped(t, fakekeap.Options{}, tr.wrap)
	s := startServerWith(t, eventsEnv(t, k), k, nil)
	o := s.createOrg("Traced", "trace@acme.test")
	h := s.hubUser(t, o, "infusionsoftcrm")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const incoming = "00-" + traceID + "-00f067aa0ba902b7-01"
	call := func(method, path, auth, traceparent string) response {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		return s.send(req, nil)
	}

	// A hub call: Keap sees the caller's trace id, with connectord's span
	// as the parent (not the caller's).
	before := len(tr.all())
	if r := call("GET", "/hubs/crm/contacts?pageSize=2", h.auth(), incoming); r.Status != 200 {
		t.Fatalf("hub list: %d %s", r.Status, r.Body)
	}
	var keapSaw []string
	for _, l := range tr.all()[before:] {
		if strings.HasPrefix(l, "GET /crm/rest/v1/contacts ") {
			keapSaw = append(keapSaw, l)
		}
	}
	if len(keapSaw) != 1 {
		t.Fatalf("Keap saw %v", tr.all()[before:])
	}
	sent, ok := trace.Parse(strings.Fields(keapSaw[0])[2])
	if !ok || sent.TraceIDString() != traceID || strings.Contains(keapSaw[0], "00f067aa0ba902b7") || sent.Flags != 1 {
		t.Fatalf("Keap got traceparent %q, want trace %s under a span of connectord's", keapSaw[0], traceID)
	}
	// The proxy too, whatever the caller's own traceparent header says.
	before = len(tr.all())
	if r := call("GET", "/proxy/crm/rest/v1/contacts?limit=1", h.auth(), incoming); r.Status != 200 {
		t.Fatalf("proxy: %d %s", r.Status, r.Body)
	}
	if got := tr.all()[before:]; len(got) != 1 || !strings.Contains(got[0], "-"+traceID+"-") || strings.Contains(got[0], "00f067aa0ba902b7") {
		t.Fatalf("Keap saw through the proxy: %v", got)
	}

	// An error answer names the trace beside the request id.
	r := call("GET", "/hubs/crm/contacts/999999", h.auth(), incoming)
	body := r.JSON(t)
	if r.Status != 404 || body["traceId"] != traceID || body["requestId"] != r.Header.Get("Elements-Request-Id") {
		t.Fatalf("error answer %d %s", r.Status, r.Body)
	}
	// Every log line of that request carries the trace id.
	reqID := r.Header.Get("Elements-Request-Id")
	var lines int
	for _, l := range s.logs.Lines() {
		if !strings.Contains(l, reqID) {
			continue
		}
		lines++
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["trace_id"] != traceID {
			t.Errorf("log line of request %s without its trace id: %s", reqID, l)
		}
	}
	if lines < 1 {
		t.Fatalf("no log line names request %s", reqID)
	}

	// A callback: a redelivery asked for within the trace reaches the
	// consumer with it.
	rcv := newReceiver(t, "")
	id := s.eventsInstance(o, rcv.URL, "", 0)
	enqueue(t, s.dbURL, id, 1, `{"n":1}`)
	waitUntil(t, "the first delivery recorded", 10*time.Second, func() bool { return len(s.notifications(o, id, "?status=delivered")) == 1 })
	eventID := rcv.received()[0].EventID
	if r := call("POST", fmt.Sprintf("/instances/%d/events/%s/redeliver", id, eventID), o.auth(), incoming); r.Status >= 300 {
		t.Fatalf("redeliver: %d %s", r.Status, r.Body)
	}
	waitUntil(t, "the redelivery", 10*time.Second, func() bool { return len(rcv.received()) == 2 })
	got, ok := trace.Parse(rcv.received()[1].Traceparent)
	if !ok || got.TraceIDString() != traceID {
		t.Fatalf("the callback got traceparent %q, want trace %s", rcv.received()[1].Traceparent, traceID)
	}

	// Without a traceparent, or with a malformed one, the request starts a
	// trace of its own, which Keap and the answer share.
	for _, bad := range []string{"", "00-" + strings.ToUpper(traceID) + "-00f067aa0ba902b7-01", "ff-" + traceID + "-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-" + traceID + "-0000000000000000-01", "garbage"} {
		before := len(tr.all())
		r := call("GET", "/hubs/crm/contacts/999999", h.auth(), bad)
		own, _ := r.JSON(t)["traceId"].(string)
		if len(own) != 32 || own == traceID || own == strings.Repeat("0", 32) {
			t.Errorf("traceparent %q: the answer names trace %q", bad, own)
		}
		if got := tr.all()[before:]; len(got) != 1 || !strings.Contains(got[0], "-"+own+"-") {
			t.Errorf("traceparent %q: Keap saw %v, want trace %s", bad, got, own)
		}
	}
}
