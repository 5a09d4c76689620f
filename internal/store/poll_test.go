package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/secrets"
)

// newPollingInstance creates an instance with events enabled.
func newPollingInstance(t *testing.T, db *DB, org int64) *instances.Instance {
	t.Helper()
	on := "true"
	inst := &instances.Instance{
		OrganizationID: org, ElementKey: "infusionsoftrest", Name: "p", AuthType: "oauth2",
		TokenHash: secrets.Hash(secrets.NewToken()), Tags: []string{}, Valid: true,
		Config: map[string]*string{instances.KeyEventsEnabled: &on}, Secrets: map[string]string{},
	}
	if err := db.CreateInstance(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

// wantAll polls contacts (and tags, for a second cursor) of every instance.
func wantAll(interval time.Duration) func([]*instances.Instance) []events.PollWant {
	return func(list []*instances.Instance) []events.PollWant {
		var out []events.PollWant
		for _, inst := range list {
			out = append(out, events.PollWant{InstanceID: inst.ID, Resources: []string{"contacts", "tags"}, Interval: interval})
		}
		return out
	}
}

func makeDue(t *testing.T, db *DB) {
	t.Helper()
	if _, err := db.pool.Exec(context.Background(), `UPDATE poll_cursors SET next_poll_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
}

func TestClaimPolls_TwoClaimersNeverGetTheSameInstance(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	const n = 40
	for range n {
		newPollingInstance(t, db, org.ID)
	}
	if ok, err := db.SyncPollCursors(ctx, time.Now(), wantAll(time.Minute)); err != nil || !ok {
		t.Fatalf("sync: %v, %v", ok, err)
	}
	makeDue(t, db)

	// Eight replicas claim at once, again and again, and never release.
	var mu sync.Mutex
	owners := map[int64][]string{}
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("replica-%d", r)
			for range 10 {
				claims, err := db.ClaimPolls(ctx, owner, 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, c := range claims {
					owners[c.InstanceID] = append(owners[c.InstanceID], owner)
					if len(c.Cursors) != 2 {
						t.Errorf("instance %d claimed with %d cursors, want both", c.InstanceID, len(c.Cursors))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owners) != n {
		t.Fatalf("%d of %d due instances were claimed", len(owners), n)
	}
	for id, o := range owners {
		if len(o) != 1 {
			t.Errorf("instance %d was claimed by %v; a leased instance must not be claimed again", id, o)
		}
	}

	// Handing one back makes it claimable once it is due again.
	var id int64
	for id = range owners {
		break
	}
	if err := db.ReleasePoll(ctx, id, owners[id][0], []events.PollResult{
		{Resource: "contacts", NextPoll: time.Now().Add(-time.Second), SweepDone: true},
		{Resource: "tags", NextPoll: time.Now().Add(time.Hour), SweepDone: true},
	}); err != nil {
		t.Fatal(err)
	}
	claims, err := db.ClaimPolls(ctx, "late", 10, time.Minute)
	if err != nil || len(claims) != 1 || claims[0].InstanceID != id {
		t.Fatalf("after release: %+v, %v", claims, err)
	}
	for _, c := range claims[0].Cursors {
		if c.Due != (c.Resource == "contacts") {
			t.Errorf("cursor %s due=%v: only the released contacts cursor is due", c.Resource, c.Due)
		}
	}
}

func TestClaimPolls_SkipsInvalidDisabledAndStopped(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	invalid, disabled, stopped := newPollingInstance(t, db, org.ID), newPollingInstance(t, db, org.ID), newPollingInstance(t, db, org.ID)
	if _, err := db.SyncPollCursors(ctx, time.Now(), wantAll(time.Minute)); err != nil {
		t.Fatal(err)
	}
	makeDue(t, db)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE instances SET valid = false, invalid_reason = 'refresh refused' WHERE id = $1`, invalid.ID)
	exec(`UPDATE instances SET disabled = true WHERE id = $1`, disabled.ID)
	claims, err := db.ClaimPolls(ctx, "a", 10, time.Minute)
	if err != nil || len(claims) != 1 || claims[0].InstanceID != stopped.ID {
		t.Fatalf("claims %+v, %v: want only instance %d", claims, err, stopped.ID)
	}
	var results []events.PollResult
	for _, c := range claims[0].Cursors {
		results = append(results, events.PollResult{Resource: c.Resource, NextPoll: time.Now().Add(-time.Second), Error: "Keap refused the credentials", Stop: true})
	}
	if err := db.ReleasePoll(ctx, stopped.ID, "a", results); err != nil {
		t.Fatal(err)
	}
	if claims, err := db.ClaimPolls(ctx, "a", 10, time.Minute); err != nil || len(claims) != 0 {
		t.Fatalf("a stopped instance was claimed: %+v, %v", claims, err)
	}
	// The sync records why the invalid one is not polled, and resumes the
	// stopped one once the instance changes.
	exec(`UPDATE instances SET updated_at = now() + interval '1 second' WHERE id = $1`, stopped.ID)
	if _, err := db.SyncPollCursors(ctx, time.Now(), wantAll(time.Minute)); err != nil {
		t.Fatal(err)
	}
	st, err := db.PollStatuses(ctx, org.ID, invalid.ID)
	if err != nil || len(st) != 2 || st[0].LastError != "the instance is not valid: refresh refused" {
		t.Fatalf("invalid instance's cursors: %+v, %v", st, err)
	}
	if claims, err := db.ClaimPolls(ctx, "a", 10, time.Minute); err != nil || len(claims) != 1 || claims[0].InstanceID != stopped.ID {
		t.Fatalf("the changed instance was not resumed: %+v, %v", claims, err)
	}
}

func TestSavePollPage_EventsAndCursorTogetherOrNothing(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	inst := newPollingInstance(t, db, org.ID)
	enabledAt := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if _, err := db.SyncPollCursors(ctx, enabledAt, wantAll(time.Minute)); err != nil {
		t.Fatal(err)
	}
	makeDue(t, db)
	claims, err := db.ClaimPolls(ctx, "owner", 1, time.Minute)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %+v, %v", claims, err)
	}
	for _, c := range claims[0].Cursors {
		if !c.At.Equal(enabledAt) || len(c.IDs) != 0 || c.SweepFrom != nil {
			t.Fatalf("a new cursor starts at the sync time: %+v", c)
		}
	}
	at := enabledAt.Add(time.Minute)
	pageOf := func(owner string, ids ...string) events.PollPage {
		p := events.PollPage{InstanceID: inst.ID, Owner: owner, Lease: time.Minute, ListKey: "contacts",
			Cursor: events.PollCursor{Resource: "contacts", At: at, IDs: ids, SweepFrom: &enabledAt}}
		for _, id := range ids {
			p.Events = append(p.Events, events.Event{Date: at, ElementKey: "infusionsoftrest", EventType: events.Created, ObjectID: id, ObjectType: "contacts"})
			p.Objects = append(p.Objects, json.RawMessage(`{"id":`+id+`}`))
		}
		return p
	}
	if err := db.SavePollPage(ctx, pageOf("someone-else", "1")); apperr.CodeOf(err) != apperr.Conflict {
		t.Fatalf("a poller without the lease stored a page: %v", err)
	}
	if n := countRows(t, db, "events"); n != 0 {
		t.Fatalf("%d events stored by a poller without the lease", n)
	}
	if err := db.SavePollPage(ctx, pageOf("owner", "1", "2", "3")); err != nil {
		t.Fatal(err)
	}
	st, err := db.PollStatuses(ctx, org.ID, inst.ID)
	if err != nil || !st[0].At.Equal(at) || fmt.Sprint(st[0].IDs) != "[1 2 3]" {
		t.Fatalf("cursor after the page: %+v, %v", st, err)
	}
	claimed, err := db.ClaimNotifications(ctx, events.Claim{Limit: 10, Lease: time.Minute})
	if err != nil || len(claimed) != 1 || len(claimed[0].Events) != 3 || string(claimed[0].Raw) != `{"contacts": [{"id": 1}, {"id": 2}, {"id": 3}]}` {
		t.Fatalf("notifications: %+v, %v", claimed, err)
	}

	// Polling turned off: the cursor goes, and a poll under way stores nothing more.
	if _, err := db.SyncPollCursors(ctx, time.Now(), func([]*instances.Instance) []events.PollWant { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.SavePollPage(ctx, pageOf("owner", "4")); apperr.CodeOf(err) != apperr.Conflict {
		t.Fatalf("page saved after polling was turned off: %v", err)
	}
	if n := countRows(t, db, "poll_cursors"); n != 0 {
		t.Fatalf("%d cursors left after polling was turned off", n)
	}
}

func countRows(t *testing.T, db *DB, table string) int {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
