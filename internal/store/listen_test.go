package store

import (
	"context"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/events"
)

// Storing events and queueing a redelivery each wake a listening replica at
// once; a listener that is told nothing is not woken.
func TestListenNotificationsDue_WokenByEnqueueAndRedeliver(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	org := newOrganization(t, db)
	inst := newInstance(t, db, org.ID, "l")

	woken := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.ListenNotificationsDue(ctx, 50*time.Millisecond, func() { woken <- struct{}{} }, func(err error) { t.Errorf("listen: %v", err) })
	}()
	defer func() { cancel(); <-done }()
	expect := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the listener was not woken within 5 s", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-woken:
			t.Fatalf("%s: the listener was woken", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	expect("listening") // woken once when it starts listening: signals may have been missed before
	quiet("nothing happened")

	ev := events.Event{Date: time.Now(), ElementKey: "infusionsoftcrm", EventType: events.Created, ObjectID: "7", ObjectType: "contacts"}
	if _, err := db.EnqueueEvents(ctx, inst.ID, []events.Event{ev}, nil); err != nil {
		t.Fatal(err)
	}
	expect("events stored")
	claimed, err := db.ClaimNotifications(ctx, events.Claim{Limit: 1, Lease: time.Minute})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	if err := db.Redeliver(ctx, org.ID, inst.ID, claimed[0].EventID); err != nil {
		t.Fatal(err)
	}
	expect("redelivery queued")
	if n, err := db.RedeliverFailed(ctx, org.ID, inst.ID); err != nil || n != 0 {
		t.Fatalf("redeliver failed: %d, %v", n, err)
	}
	quiet("no failed notification to redeliver")
}
