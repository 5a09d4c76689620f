package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/audit"
)

// auditTx writes, in tx, the success entry the change of targetID in
// organization orgID (0: the actor's) owes, when ctx carries an audit
// record: the entry commits or rolls back with the change (inTx tells the
// record which).
func auditTx(ctx context.Context, tx pgx.Tx, orgID, targetID int64) error {
	e, ok := audit.From(ctx).Take(orgID, targetID)
	if !ok {
		return nil
	}
	return insertAudit(ctx, tx, e)
}

func insertAudit(ctx context.Context, tx pgx.Tx, e audit.Entry) error {
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("store: audit detail: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (organization_id, user_id, actor, action, target_type, target_id,
			request_id, trace_id, source_ip, outcome, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		nullID(e.OrganizationID), nullID(e.UserID), e.Actor, e.Action, e.TargetType, nullID(e.TargetID),
		e.RequestID, e.TraceID, e.SourceIP, e.Outcome, detail)
	return interpret(err)
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// RecordAudit writes one entry in a transaction of its own: a change that
// failed, whose own transaction rolled back.
func (db *DB) RecordAudit(ctx context.Context, e audit.Entry) error {
	// The caller may have hung up: the entry is still owed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return db.inTx(ctx, func(tx pgx.Tx) error { return insertAudit(ctx, tx, e) })
}

// AuditLog lists the organization's entries matching f, newest first, and
// the cursor of the next page (0 on the last).
func (db *DB) AuditLog(ctx context.Context, orgID int64, f audit.Filter) ([]audit.Entry, int64, error) {
	q := `SELECT id, at, coalesce(organization_id, 0), coalesce(user_id, 0), actor, action, target_type, coalesce(target_id, 0),
		request_id, trace_id, source_ip, outcome, detail
		FROM audit_log WHERE organization_id = $1`
	args := []any{orgID}
	add := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args))
	}
	if f.From != nil {
		add("at >= $%d", *f.From)
	}
	if f.To != nil {
		add("at < $%d", *f.To)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.InstanceID != 0 {
		add("target_type = 'instance' AND target_id = $%d", f.InstanceID)
	}
	if f.Before != 0 {
		add("id < $%d", f.Before)
	}
	args = append(args, f.Limit+1)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, interpret(err)
	}
	defer rows.Close()
	out := []audit.Entry{}
	for rows.Next() {
		var e audit.Entry
		var detail []byte
		if err := rows.Scan(&e.ID, &e.At, &e.OrganizationID, &e.UserID, &e.Actor, &e.Action, &e.TargetType, &e.TargetID,
			&e.RequestID, &e.TraceID, &e.SourceIP, &e.Outcome, &detail); err != nil {
			return nil, 0, interpret(err)
		}
		if err := json.Unmarshal(detail, &e.Detail); err != nil {
			return nil, 0, fmt.Errorf("store: audit detail of entry %d: %w", e.ID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, interpret(err)
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// PruneAudit deletes the entries older than t, a batch at a time, and
// returns how many: CONNECTORD_AUDIT_RETENTION is the operator's setting,
// the only way entries leave the log.
func (db *DB) PruneAudit(ctx context.Context, t time.Time) (int64, error) {
	const batch = 5000
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM audit_log WHERE id IN (
			SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)`, t, batch)
		if err != nil {
			return total, interpret(err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			return total, nil
		}
	}
}
