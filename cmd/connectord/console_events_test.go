package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
)

// The instance page lists notifications newest first, 50 to a page with a
// link to older ones, each with its delivery attempts; "Redeliver all failed"
// queues every failed one, on any page, and they reach the callback.
func TestConsole_EventsPagedAndFailedRedelivered(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := eventsEnv(t, k)
	// A failing callback gets one try at a time and, after 5 failures in a
	// row, rests 30·base (doubling): at 1µs·4^n its rest is microseconds, so
	// the redelivered notifications go out as soon as the consumer is back.
	env["CONNECTORD_DELIVERY_BACKOFF_BASE"] = "1us"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	rcv.fails.Store(-1) // the consumer is down
	id := s.eventsInstance(o, rcv.URL, "", 1)
	enqueue(t, s.dbURL, id, 60, `{"raw":true}`)
	waitUntil(t, "some notifications tried and answered 503", 20*time.Second, func() bool {
		var tried int
		s.queryRow("SELECT count(DISTINCT a.notification_id) FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id WHERE n.instance_id = $1", []any{id}, &tried)
		return tried >= 5
	})
	// The consumer is back before the notifications are marked failed, so
	// no 503 still under way can fail one again after "Redeliver all failed".
	rcv.fails.Store(0)
	// Stand-in for every retry used up: the notifications are failed.
	s.exec(fmt.Sprintf("UPDATE notifications SET status = 'failed' WHERE instance_id = %d", id))

	cc := s.signIn(o)
	page := string(cc.get(fmt.Sprintf("/console/instances/%d", id)).Body)
	if n := strings.Count(page, `<li class="event">`); n != 50 {
		t.Fatalf("first page shows %d notifications, want 50", n)
	}
	if !strings.Contains(page, "Redeliver all failed") || !strings.Contains(page, "Older notifications") {
		t.Fatalf("first page lacks the failed state or the older link")
	}
	// Newest first: object ids 1059 down.
	if first := strings.Index(page, "contacts 1059"); first < 0 || first > strings.Index(page, "contacts 1058") {
		t.Fatal("notifications are not newest first")
	}
	older := regexpFind(t, page, `href="(/console/instances/\d+\?before=\d+)#events"`)
	page2 := string(cc.get(older).Body)
	if n := strings.Count(page2, `<li class="event">`); n != 10 || strings.Contains(page2, "Older notifications") || !strings.Contains(page2, "contacts 1000") {
		t.Fatalf("second page shows %d notifications", n)
	}
	if !strings.Contains(page+page2, "503") {
		t.Fatal("no page shows an attempt's 503")
	}
	if r := cc.get(fmt.Sprintf("/console/instances/%d?before=x", id)); r.Status != 400 {
		t.Fatalf("a garbled cursor: %d", r.Status)
	}

	r := cc.postForm(fmt.Sprintf("/console/instances/%d/events/redeliver", id), url.Values{}, true)
	if r.Status != 200 || !strings.Contains(string(r.Body), "Failed notifications queued for redelivery.") {
		t.Fatalf("redeliver all failed: %d", r.Status)
	}
	waitUntil(t, "all 60 delivered", 30*time.Second, func() bool {
		var delivered int
		s.queryRow("SELECT count(*) FROM notifications WHERE instance_id = $1 AND status = 'delivered'", []any{id}, &delivered)
		return delivered == 60
	})
	if page := string(cc.get(fmt.Sprintf("/console/instances/%d", id)).Body); strings.Contains(page, "Redeliver all failed") || !strings.Contains(page, `<span class="badge ok">delivered</span>`) {
		t.Fatal("after redelivery the page still offers to redeliver failed notifications, or shows none delivered")
	}
}

func regexpFind(t *testing.T, s, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no match for %s", expr)
	}
	return m[1]
}
