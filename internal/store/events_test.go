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

	claimed, err := db.ClaimNotifications(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	if n := len(claimed[0].Events) + len(claimed[1].Events) + len(claimed[2].Events); n != 41 || string(claimed[0].Raw) != `{"k": 1}` {
		t.Fatalf("claimed %d events, raw %s", n, claimed[0].Raw)
	}
	// Leased: nothing more is due.
	if again, err := db.ClaimNotifications(ctx, 10, time.Minute); err != nil || len(again) != 0 {
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
