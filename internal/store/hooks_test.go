package store

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/secrets"
)

// Replicas claiming at once share the due instances without overlap; a
// claimed instance is not claimed again within its lease, but is as soon as it
// changes or its check comes due.
func TestClaimHookInstances_SharedAcrossReplicasAndWokenByChanges(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	var all []int64
	for range 6 {
		all = append(all, newInstance(t, db, org.ID, "rt").ID)
	}
	var mu sync.Mutex
	var got []int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			ids, err := db.ClaimHookInstances(ctx, 2, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, ids...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, all) {
		t.Fatalf("three claims of 2 got %v, want each of %v once", got, all)
	}
	if ids, err := db.ClaimHookInstances(ctx, 10, time.Minute); err != nil || len(ids) != 0 {
		t.Fatalf("claimed within the lease: %v %v", ids, err)
	}
	change := func(id int64) {
		t.Helper()
		if _, err := db.UpdateInstance(ctx, org.ID, id, func(inst *instances.Instance) error { inst.Name += "+"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Changed while a reconciler holds it: not claimed by another.
	change(all[3])
	if ids, err := db.ClaimHookInstances(ctx, 10, time.Minute); err != nil || len(ids) != 0 {
		t.Fatalf("a leased instance that changed was claimed again: %v %v", ids, err)
	}
	for _, id := range all {
		if err := db.FinishHooks(ctx, id, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	change(all[2])
	past := time.Now().Add(-time.Second)
	if err := db.FinishHooks(ctx, all[4], &past, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishHooks(ctx, all[5], nil, "a problem"); err != nil {
		t.Fatal(err)
	}
	ids, err := db.ClaimHookInstances(ctx, 10, time.Minute)
	slices.Sort(ids)
	// all[3] changed during its lease, all[2] after, all[4]'s check is due.
	if want := []int64{all[2], all[3], all[4]}; err != nil || !slices.Equal(ids, want) {
		t.Fatalf("after changes and a due check: %v %v, want %v", ids, err, want)
	}

	// Instance deletion takes the lease from the reconciler, not from under it.
	if taken, err := db.LeaseHooks(ctx, all[2], time.Minute); err != nil || taken {
		t.Fatalf("lease taken from a reconciler at work: %v %v", taken, err)
	}
	if taken, err := db.LeaseHooks(ctx, all[0], time.Minute); err != nil || !taken {
		t.Fatalf("lease of an idle instance: %v %v", taken, err)
	}
	change(all[0])
	if ids, err := db.ClaimHookInstances(ctx, 10, time.Minute); err != nil || slices.Contains(ids, all[0]) {
		t.Fatalf("claimed an instance being deleted: %v %v", ids, err)
	}
}

// A hook's secret is found only by its hash, and goes when the hook is
// pointed at a new one; the organization's state shows hooks, not secrets.
func TestHooks_SecretLookupAndState(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	other := newOrganization(t, db)
	inst := newInstance(t, db, org.ID, "rt")
	first, second := secrets.NewToken(), secrets.NewToken()
	if err := db.PrepareHook(ctx, inst.ID, "contact.add", secrets.Hash(first)); err != nil {
		t.Fatal(err)
	}
	if got, err := db.HookBySecret(ctx, secrets.Hash(first)); err != nil || got.InstanceID != inst.ID || got.ElementKey != "infusionsoftcrm" || got.EventKey != "contact.add" || got.Config == nil {
		t.Fatalf("by secret: %+v %v", got, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.SaveHook(ctx, events.Hook{InstanceID: inst.ID, EventKey: "contact.add", HookKey: "17", Status: events.HookVerified, CheckedDate: &now, ReceiverBase: "https://d.example"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PrepareHook(ctx, inst.ID, "contact.add", secrets.Hash(second)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.HookBySecret(ctx, secrets.Hash(first)); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("the replaced secret still finds the hook: %v", err)
	}
	if known, err := db.HookKeyKnown(ctx, "17"); err != nil || !known {
		t.Fatalf("hook key 17 known: %v %v", known, err)
	}
	st, el, err := db.HookState(ctx, org.ID, inst.ID)
	if err != nil || el != "infusionsoftcrm" || len(st.Hooks) != 1 {
		t.Fatalf("state: %+v %q %v", st, el, err)
	}
	if h := st.Hooks[0]; h.HookKey != "17" || h.Status != events.HookVerified || h.ReceiverBase != "https://d.example" || !h.CheckedDate.Equal(now) {
		t.Fatalf("hook %+v", h)
	}
	if _, _, err := db.HookState(ctx, other.ID, inst.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("another organization's view: %v", err)
	}
	if err := db.DeleteInstance(ctx, org.ID, inst.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.HookBySecret(ctx, secrets.Hash(second)); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("a deleted instance's hook still answers: %v", err)
	}
	if err := db.PrepareHook(ctx, inst.ID, "contact.add", secrets.Hash(first)); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("prepare for a deleted instance: %v", err)
	}
}
