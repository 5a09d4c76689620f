package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
)

// ClaimHookInstances claims up to limit instances whose hooks are due: never
// looked at, changed since the last look (their updated_at moved, on any
// replica), their check time has come, or a reconciler's lease on them ran
// out. A claim leases the instance, so no other reconciler takes it even if
// it changes meanwhile (it is due again once FinishHooks ends the lease), and
// records the updated_at it saw; it commits at once, skipping rows other
// replicas are claiming.
//
// Instances without a schedule row yet get one first, found by an anti-join
// over instances; at connectord's scale (thousands of instances, a poll every
// few seconds) that costs a few milliseconds a poll.
func (db *DB) ClaimHookInstances(ctx context.Context, limit int, lease time.Duration) ([]int64, error) {
	var ids []int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO event_hook_schedule (instance_id, due_at, seen_updated_at)
			SELECT i.id, now(), '-infinity' FROM instances i
			WHERE NOT EXISTS (SELECT 1 FROM event_hook_schedule s WHERE s.instance_id = i.id)
			ORDER BY i.id -- the same order in every replica, so concurrent inserts wait rather than deadlock
			ON CONFLICT (instance_id) DO NOTHING`); err != nil {
			return interpret(err)
		}
		rows, err := tx.Query(ctx, `
			UPDATE event_hook_schedule s SET leased_until = now() + make_interval(secs => $2), seen_updated_at = due.updated_at
			FROM (SELECT s.instance_id, i.updated_at FROM event_hook_schedule s JOIN instances i ON i.id = s.instance_id
			      WHERE (s.due_at <= now() OR i.updated_at > s.seen_updated_at OR s.leased_until <= now())
			        AND (s.leased_until IS NULL OR s.leased_until <= now())
			      ORDER BY s.due_at NULLS FIRST LIMIT $1 FOR UPDATE OF s SKIP LOCKED) due
			WHERE s.instance_id = due.instance_id
			RETURNING s.instance_id`, limit, lease.Seconds())
		if err != nil {
			return interpret(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return interpret(err)
			}
			ids = append(ids, id)
		}
		return interpret(rows.Err())
	})
	return ids, err
}

const hookColumns = `instance_id, event_key, receiver_base, coalesce(hook_key, ''), status, checked_at, coalesce(last_error, ''), updated_at`

func scanHooks(rows pgx.Rows) ([]events.Hook, error) {
	defer rows.Close()
	var out []events.Hook
	for rows.Next() {
		var h events.Hook
		if err := rows.Scan(&h.InstanceID, &h.EventKey, &h.ReceiverBase, &h.HookKey, &h.Status, &h.CheckedDate, &h.LastError, &h.UpdatedDate); err != nil {
			return nil, interpret(err)
		}
		out = append(out, h)
	}
	return out, interpret(rows.Err())
}

// InstanceHooks lists the hooks connectord keeps for an instance, by event key.
func (db *DB) InstanceHooks(ctx context.Context, instanceID int64) ([]events.Hook, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+hookColumns+` FROM event_hooks WHERE instance_id = $1 ORDER BY event_key`, instanceID)
	if err != nil {
		return nil, interpret(err)
	}
	return scanHooks(rows)
}

// PrepareHook records the hash of the receiver secret a hook is about to be
// pointed at (the hook's old secret stops working), creating the row if need be.
func (db *DB) PrepareHook(ctx context.Context, instanceID int64, eventKey string, secretHash []byte) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO event_hooks (instance_id, event_key, secret_hash, receiver_base) VALUES ($1, $2, $3, '')
		ON CONFLICT (instance_id, event_key) DO UPDATE SET secret_hash = excluded.secret_hash, updated_at = now()`,
		instanceID, eventKey, secretHash)
	if apperr.CodeOf(interpret(err)) == apperr.Conflict {
		return apperr.Errorf(apperr.Conflict, "receiver secret collision; try again")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation: the instance is gone
		return notFound(instanceID)
	}
	return interpret(err)
}

// SaveHook records a hook's Keap key, status, receiver base, check time and last error.
func (db *DB) SaveHook(ctx context.Context, h events.Hook) error {
	_, err := db.pool.Exec(ctx, `
		UPDATE event_hooks SET hook_key = nullif($3, ''), status = $4, checked_at = $5, last_error = nullif($6, ''),
			receiver_base = $7, updated_at = now()
		WHERE instance_id = $1 AND event_key = $2`,
		h.InstanceID, h.EventKey, h.HookKey, h.Status, h.CheckedDate, h.LastError, h.ReceiverBase)
	return interpret(err)
}

// DeleteHook forgets a hook deleted at Keap.
func (db *DB) DeleteHook(ctx context.Context, instanceID int64, eventKey string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM event_hooks WHERE instance_id = $1 AND event_key = $2`, instanceID, eventKey)
	return interpret(err)
}

// FinishHooks records when an instance's hooks are next due (nil: when it
// changes) and the configuration problem found, if any.
func (db *DB) FinishHooks(ctx context.Context, instanceID int64, due *time.Time, problem string) error {
	_, err := db.pool.Exec(ctx, `UPDATE event_hook_schedule SET due_at = $2, problem = nullif($3, ''), leased_until = NULL WHERE instance_id = $1`,
		instanceID, due, problem)
	return interpret(err)
}

// HookBySecret finds the hook whose receiver secret hashes to secretHash.
func (db *DB) HookBySecret(ctx context.Context, secretHash []byte) (events.HookTarget, error) {
	var t events.HookTarget
	var cfg []byte
	err := db.pool.QueryRow(ctx, `
		SELECT h.instance_id, i.element_key, h.event_key, i.configuration FROM event_hooks h JOIN instances i ON i.id = h.instance_id
		WHERE h.secret_hash = $1`, secretHash).Scan(&t.InstanceID, &t.ElementKey, &t.EventKey, &cfg)
	if err != nil {
		return events.HookTarget{}, interpret(err)
	}
	if err := json.Unmarshal(cfg, &t.Config); err != nil {
		return events.HookTarget{}, fmt.Errorf("store: instance %d configuration: %w", t.InstanceID, err)
	}
	return t, nil
}

// LeaseHooks takes the reconciler's lease on an instance for d, unless a
// reconciler holds it now; it reports whether it did.
func (db *DB) LeaseHooks(ctx context.Context, instanceID int64, d time.Duration) (bool, error) {
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO event_hook_schedule AS s (instance_id, seen_updated_at, leased_until)
		VALUES ($1, '-infinity', now() + make_interval(secs => $2))
		ON CONFLICT (instance_id) DO UPDATE SET leased_until = excluded.leased_until
		WHERE s.leased_until IS NULL OR s.leased_until <= now()`, instanceID, d.Seconds())
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return false, notFound(instanceID)
		}
		return false, interpret(err)
	}
	return tag.RowsAffected() == 1, nil
}

// HookKeyKnown reports whether any instance's hook has Keap key hookKey.
func (db *DB) HookKeyKnown(ctx context.Context, hookKey string) (bool, error) {
	var known bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_hooks WHERE hook_key = $1)`, hookKey).Scan(&known)
	return known, interpret(err)
}

// HookState returns one of the organization's instances' hooks, when they are
// next checked, the configuration problem found, and the instance's element.
func (db *DB) HookState(ctx context.Context, orgID, instanceID int64) (events.HookState, string, error) {
	var st events.HookState
	var elementKey string
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var problem *string
		err := tx.QueryRow(ctx, `
			SELECT i.element_key, s.due_at, s.problem FROM instances i LEFT JOIN event_hook_schedule s ON s.instance_id = i.id
			WHERE i.organization_id = $1 AND i.id = $2`, orgID, instanceID).Scan(&elementKey, &st.NextCheckDate, &problem)
		if apperr.CodeOf(interpret(err)) == apperr.NotFound {
			return notFound(instanceID)
		}
		if err != nil {
			return interpret(err)
		}
		if problem != nil {
			st.Problem = *problem
		}
		rows, err := tx.Query(ctx, `SELECT `+hookColumns+` FROM event_hooks WHERE instance_id = $1 ORDER BY event_key`, instanceID)
		if err != nil {
			return interpret(err)
		}
		st.Hooks, err = scanHooks(rows)
		return err
	})
	return st, elementKey, err
}
