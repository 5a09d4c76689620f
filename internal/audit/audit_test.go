package audit

import (
	"context"
	"testing"
)

func TestRecord_OneSuccessEntryOnlyOnceCommitted(t *testing.T) {
	t.Parallel()
	ctx, rec := Start(context.Background(), Actor{OrganizationID: 7, UserID: 3, RequestID: "r1", SourceIP: "10.0.0.1"}, InstanceChanged, TargetInstance, 42)
	Describe(ctx, InstanceDisabled, map[string]any{"keys": Keys(map[string]int{"b": 1, "a": 2})})

	// A transaction takes the entry and rolls back: nothing is owed but a failure.
	e, ok := rec.Take(0, 0)
	if !ok || e.Action != InstanceDisabled || e.Outcome != Succeeded || e.OrganizationID != 7 || e.TargetID != 42 || e.Actor != "user 3" {
		t.Fatalf("Take = %+v, %v", e, ok)
	}
	rec.RolledBack()
	if rec.Done() {
		t.Fatal("a rolled-back entry counts as done")
	}
	// Another takes it and commits: the change is recorded, no failure owed.
	if _, ok := rec.Take(0, 0); !ok {
		t.Fatal("the entry was not offered again after a rollback")
	}
	rec.Committed()
	if !rec.Done() {
		t.Fatal("a committed entry is not done")
	}
	if _, ok := rec.Take(0, 0); ok {
		t.Fatal("a second transaction of the request got a second entry")
	}
	if _, ok := rec.FailedEntry("answered 500"); ok {
		t.Fatal("a failure was owed after the change committed")
	}
	if got := e.Detail["keys"]; got == nil || len(got.([]string)) != 2 || got.([]string)[0] != "a" {
		t.Fatalf("keys %v", got)
	}
}

func TestRecord_FailedEntryWhenNothingCommitted(t *testing.T) {
	t.Parallel()
	_, rec := Start(context.Background(), Actor{OrganizationID: 7, UserID: 3}, InstanceDeleted, TargetInstance, 9)
	e, ok := rec.FailedEntry("answered 404")
	if !ok || e.Outcome != Failed || e.Detail["reason"] != "answered 404" || e.Action != InstanceDeleted {
		t.Fatalf("FailedEntry = %+v, %v", e, ok)
	}
}

func TestRecord_FailMarksTheCommittedEntryFailed(t *testing.T) {
	t.Parallel()
	ctx, rec := Start(context.Background(), Actor{OrganizationID: 1, UserID: 1}, InstanceTokensRefreshed, TargetInstance, 5)
	Fail(ctx, "the token refresh failed")
	e, ok := rec.Take(0, 0)
	if !ok || e.Outcome != Failed || e.Detail["reason"] != "the token refresh failed" {
		t.Fatalf("Take = %+v", e)
	}
}

func TestStartEach_AnEntryPerTransactionForTheOperator(t *testing.T) {
	t.Parallel()
	_, rec := StartEach(context.Background(), Actor{}, KeysRotated, TargetInstance)
	for _, inst := range []struct{ org, id int64 }{{1, 10}, {2, 20}} {
		e, ok := rec.Take(inst.org, inst.id)
		if !ok || e.OrganizationID != inst.org || e.TargetID != inst.id || e.Actor != Operator || e.UserID != 0 {
			t.Fatalf("Take(%d, %d) = %+v, %v", inst.org, inst.id, e, ok)
		}
		rec.Committed()
	}
}

func TestNoRecord_EverythingIsANoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	Describe(ctx, InstanceChanged, map[string]any{"x": 1})
	Fail(ctx, "x")
	var rec *Record = From(ctx)
	if _, ok := rec.Take(1, 1); ok {
		t.Fatal("a nil record gave an entry")
	}
	rec.Committed()
	rec.RolledBack()
}
