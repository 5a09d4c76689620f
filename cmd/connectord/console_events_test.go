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
	env["CONNECTORD_DELIVERY_BACKOFF_BASE"] = "1h" // one try each, then quiet
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")
	rcv.fails.Store(-1) // the consumer is down
	id := s.eventsInstance(o, rcv.URL, "", 1)
	enqueue(t, s.dbURL, id, 60, `{"raw":true}`)
	waitUntil(t, "every notification tried at least once", 20*time.Second, func() bool {
		var untried int
		s.queryRow("SELECT count(*) FROM notifications n WHERE instance_id = $1 AND NOT EXISTS (SELECT 1 FROM notification_attempts a WHERE a.notification_id = n.id)", []any{id}, &untried)
		return untried == 0
	})
	// Every retry used up: the notifications are failed.
	s.exec(fmt.Sprintf("UPDATE notifications SET status = 'failed' WHERE instance_id = %d", id))

	cc := s.signIn(o)
	page := string(cc.get(fmt.Sprintf("/console/instances/%d", id)).Body)
	if n := strings.Count(page, `<li class="event">`); n != 50 {
		t.Fatalf("first page shows %d notifications, want 50", n)
	}
	if !strings.Contains(page, "Redeliver all failed") || !strings.Contains(page, "503") || !strings.Contains(page, "Older notifications") {
		t.Fatalf("first page lacks the failed state, an attempt's 503 or the older link")
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
	if r := cc.get(fmt.Sprintf("/console/instances/%d?before=x", id)); r.Status != 400 {
		t.Fatalf("a garbled cursor: %d", r.Status)
	}

	rcv.fails.Store(0) // the consumer is back
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
