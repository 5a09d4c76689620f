package store

import (
	"context"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/audit"
)

func TestPruneAudit_DeletesOnlyWhatRetentionLetsGo(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	for _, action := range []string{audit.InstanceCreated, audit.InstanceDeleted} {
		if err := db.RecordAudit(ctx, audit.Entry{OrganizationID: org.ID, Actor: "user 1", UserID: 1, Action: action, Outcome: audit.Succeeded, Detail: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE audit_log SET at = now() - interval '400 days' WHERE action = $1`, audit.InstanceCreated); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneAudit(ctx, time.Now().Add(-365*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PruneAudit = %d, %v; want 1 deleted", n, err)
	}
	left, next, err := db.AuditLog(ctx, org.ID, audit.Filter{Limit: 10})
	if err != nil || next != 0 || len(left) != 1 || left[0].Action != audit.InstanceDeleted {
		t.Fatalf("left %+v, next %d, %v", left, next, err)
	}
}

// A change made without an audit record in its context (background work)
// writes no entry; with one, exactly one entry commits with it.
func TestAuditTx_OnlyWithARecordAndOnlyOnCommit(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	org := newOrganization(t, db) // no record: no entry
	ctx, rec := audit.Start(context.Background(), audit.Actor{OrganizationID: org.ID, UserID: 1, RequestID: "req"}, audit.InstanceCreated, audit.TargetInstance, 0)
	inst := newInstance(t, db, org.ID, "secret-refresh-token")
	if list, _, _ := db.AuditLog(context.Background(), org.ID, audit.Filter{Limit: 10}); len(list) != 0 {
		t.Fatalf("entries without a record: %+v", list)
	}
	inst2 := *inst
	inst2.ID, inst2.TokenHash = 0, []byte("another-hash-of-32-bytes-0123456")
	if err := db.CreateInstance(ctx, &inst2); err != nil {
		t.Fatal(err)
	}
	if !rec.Done() {
		t.Fatal("the record is not done after its change committed")
	}
	list, _, err := db.AuditLog(context.Background(), org.ID, audit.Filter{Limit: 10})
	if err != nil || len(list) != 1 || list[0].TargetID != inst2.ID || list[0].RequestID != "req" || list[0].Outcome != audit.Succeeded {
		t.Fatalf("entries %+v, %v", list, err)
	}
}
