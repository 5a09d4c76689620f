package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
)

func TestEnqueueEvents_BatchesClaimsAndRecords(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	inst := newInstance(t, db, org.ID, "r")
	ev := func(typ string) events.Event {
		return events.Event{Date: time.Now(), ElementKey: "infusionsoftcrm", EventType: typ, ObjectID: "1", ObjectType: "contacts"}
	}

	if _, err := db.EnqueueEvents(ctx, inst.ID, []events.Event{ev("CHANGED")}, nil); apperr.CodeOf(err) != apperr.Invalid {
		t.Fatalf("unknown event type: %v", err)
	}
	if _, err := db.EnqueueEvents(ctx, inst.ID+1000, []events.Event{ev(events.Created)}, nil); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("unknown instance: %v", err)
	}
	evs := make([]events.Event, 41)
	for i := range evs {
		evs[i] = ev(events.Updated)
	}
	ids, err := db.EnqueueEvents(ctx, inst.ID, evs, json.RawMessage(`{"k":1}`))
	if err != nil || len(ids) != 3 {
		t.Fatalf("41 events: %d notifications, %v; want 3", len(ids), err)
	}

	claimed, err := db.ClaimNotifications(ctx, events.Claim{Limit: 10, Lease: time.Minute})
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	if n := len(claimed[0].Events) + len(claimed[1].Events) + len(claimed[2].Events); n != 41 || string(claimed[0].Raw) != `{"k": 1}` {
		t.Fatalf("claimed %d events, raw %s", n, claimed[0].Raw)
	}
	// Leased: nothing more is due.
	if again, err := db.ClaimNotifications(ctx, events.Claim{Limit: 10, Lease: time.Minute}); err != nil || len(again) != 0 {
		t.Fatalf("claimed again while leased: %d, %v", len(again), err)
	}
	if err := db.RecordDelivery(ctx, claimed[0].ID, events.Outcome{At: time.Now(), HTTPStatus: 200, Delivered: true}); err != nil {
		t.Fatal(err)
	}
	// A late failure from a worker whose lease ran out does not undo a delivery.
	if err := db.RecordDelivery(ctx, claimed[0].ID, events.Outcome{At: time.Now(), Error: "late", Failed: true}); err != nil {
		t.Fatal(err)
	}
	list, _, err := db.Notifications(ctx, org.ID, inst.ID, events.Filter{Status: events.StatusDelivered, PageSize: 10})
	if err != nil || len(list) != 1 || len(list[0].DeliveryAttempts) != 2 {
		t.Fatalf("delivered: %+v, %v", list, err)
	}
	if _, _, err := db.Notifications(ctx, org.ID+1, inst.ID, events.Filter{PageSize: 10}); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("another organization: %v", err)
	}
}

// Delivered notifications older than the retention go, with their events and
// tries; newer ones stay, and so do pending and failed ones of any age.
func TestPruneDelivered_KeepsWhatIsStillOwed(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	inst := newInstance(t, db, org.ID, "p")
	ev := events.Event{Date: time.Now(), ElementKey: "infusionsoftcrm", EventType: events.Created, ObjectID: "1", ObjectType: "contacts"}
	ids := make([]events.NotificationID, 4)
	for i := range ids {
		got, err := db.EnqueueEvents(ctx, inst.ID, []events.Event{ev}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = got[0]
	}
	old, recent, failed, pending := ids[0], ids[1], ids[2], ids[3]
	for _, id := range []events.NotificationID{old, recent} {
		if err := db.RecordDelivery(ctx, id, events.Outcome{At: time.Now(), HTTPStatus: 200, Delivered: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RecordDelivery(ctx, failed, events.Outcome{At: time.Now(), Error: "503", Failed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE notifications SET delivered_at = now() - interval '40 days' WHERE id = $1`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE notifications SET created_at = now() - interval '40 days' WHERE id = ANY($1)`, []int64{int64(failed), int64(pending)}); err != nil {
		t.Fatal(err)
	}

	n, err := db.PruneDelivered(ctx, time.Now().Add(-30*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the one delivered 40 days ago", n, err)
	}
	var left []int64
	rows, _ := db.Pool().Query(ctx, `SELECT id FROM notifications ORDER BY id`)
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		left = append(left, id)
	}
	if rows.Err() != nil || len(left) != 3 || left[0] != int64(recent) || left[1] != int64(failed) || left[2] != int64(pending) {
		t.Fatalf("left %v, want recent %d, failed %d, pending %d", left, recent, failed, pending)
	}
	var orphans int
	if err := db.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM events WHERE notification_id = $1) + (SELECT count(*) FROM notification_attempts WHERE notification_id = $1)`, old).Scan(&orphans); err != nil || orphans != 0 {
		t.Fatalf("%d events or tries of the pruned notification left (%v)", orphans, err)
	}
}

// A claim leaves alone the notifications of the instances it is told to skip
// (their callback hosts are busy): they stay due for the next claim.
func TestClaimNotifications_SkipsBusyInstances(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	busy, other := newInstance(t, db, org.ID, "b"), newInstance(t, db, org.ID, "o")
	ev := events.Event{Date: time.Now(), ElementKey: "infusionsoftcrm", EventType: events.Created, ObjectID: "1", ObjectType: "contacts"}
	for _, id := range []int64{busy.ID, other.ID} {
		if _, err := db.EnqueueEvents(ctx, id, []events.Event{ev}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ClaimNotifications(ctx, events.Claim{Limit: 10, Lease: time.Minute, SkipInstances: []int64{busy.ID}})
	if err != nil || len(got) != 1 || got[0].InstanceID != other.ID {
		t.Fatalf("claimed %+v, %v; want only instance %d's", got, err, other.ID)
	}
	got, err = db.ClaimNotifications(ctx, events.Claim{Limit: 10, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].InstanceID != busy.ID {
		t.Fatalf("then claimed %+v, %v; want instance %d's, still due", got, err, busy.ID)
	}
}

// A claim takes at most PerInstance of one instance's and PerOrganization of
// one organization's due notifications, and none of a skipped organization:
// a tenant with a backlog leaves room in every claim for the others.
func TestClaimNotifications_CapsPerInstanceAndOrganization(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	big, small, skipped := newOrganization(t, db), newOrganization(t, db), newOrganization(t, db)
	a, b := newInstance(t, db, big.ID, "a"), newInstance(t, db, big.ID, "b")
	c := newInstance(t, db, small.ID, "c")
	s := newInstance(t, db, skipped.ID, "s")
	ev := events.Event{Date: time.Now(), ElementKey: "infusionsoftcrm", EventType: events.Created, ObjectID: "1", ObjectType: "contacts"}
	for _, id := range []int64{a.ID, b.ID, s.ID} {
		for range 10 {
			if _, err := db.EnqueueEvents(ctx, id, []events.Event{ev}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.EnqueueEvents(ctx, c.ID, []events.Event{ev}, nil); err != nil { // last due of all
		t.Fatal(err)
	}
	got, err := db.ClaimNotifications(ctx, events.Claim{Limit: 32, Lease: time.Minute, PerInstance: 2, PerOrganization: 3, SkipOrganizations: []int64{skipped.ID}})
	if err != nil {
		t.Fatal(err)
	}
	per := map[int64]int{}
	for _, n := range got {
		per[n.InstanceID]++
	}
	if per[a.ID] > 2 || per[b.ID] > 2 || per[a.ID]+per[b.ID] != 3 || per[c.ID] != 1 || per[s.ID] != 0 {
		t.Fatalf("claimed per instance %v; want at most 2 of a and of b, 3 of their organization, c's one, none of s", per)
	}
}
