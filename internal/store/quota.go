package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/quota"
)

// today and this minute, as the quota rows count them (UTC).
const (
	sqlMinute = `date_trunc('minute', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`
	sqlDay    = `(now() AT TIME ZONE 'UTC')::date`
)

// SyncQuota is one replica's sync of one quota, in one transaction of two
// pipelined round trips: begin, lock the quota row while adding the calls
// sent, and read the live leases; then write this replica's lease and its
// instances' usage, and commit. (The day's exhaustion notifications, once a
// day, take a few more before the commit.)
func (db *DB) SyncQuota(ctx context.Context, r quota.Report, decide func(quota.Shared) quota.Decision) (quota.Shared, quota.Decision, error) {
	var sh quota.Shared
	var d quota.Decision
	err := db.pipelinedTx(ctx, func(tx querier, send func(*pgx.Batch, bool) error) error {
		var pause *time.Time
		if !r.PauseUntil.IsZero() {
			pause = &r.PauseUntil
		}
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(`
			INSERT INTO quotas AS q (key, minute_start, minute_used, day_start, day_used, paused_until)
			VALUES ($1, `+sqlMinute+`, $2::integer, `+sqlDay+`, greatest($2::integer, $3::integer), $4::timestamptz)
			ON CONFLICT (key) DO UPDATE SET
				minute_used = CASE WHEN q.minute_start = excluded.minute_start THEN q.minute_used + $2 ELSE $2 END,
				minute_start = excluded.minute_start,
				day_used = greatest(CASE WHEN q.day_start = excluded.day_start THEN q.day_used + $2 ELSE $2 END, $3),
				day_start = excluded.day_start,
				paused_until = greatest(q.paused_until, excluded.paused_until)
			RETURNING now(), minute_used, day_used, coalesce(paused_until, 'epoch'), coalesce(exhausted_on = day_start, false), freed_at`,
			r.Key, r.Sent, r.KeapDayUsed, pause).QueryRow(func(row pgx.Row) error {
			var paused time.Time
			if err := row.Scan(&sh.Now, &sh.MinuteUsed, &sh.DayUsed, &paused, &sh.Exhausted, &sh.FreedAt); err != nil {
				return err
			}
			if paused.Unix() > 0 {
				sh.PausedUntil = paused
			}
			return nil
		})
		// A new statement, so a new snapshot: it sees every lease committed
		// before this transaction took the row's lock.
		dead := 0
		b.Queue(`SELECT replica, grant_per_s, cap, day_reserved, instances, waiting, expires_at > now(), expires_at FROM quota_leases WHERE key = $1`, r.Key).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var l quota.Lease
					var live bool
					var expires time.Time
					if err := rows.Scan(&l.Replica, &l.Grant, &l.Cap, &l.DayReserved, &l.Instances, &l.Waiting, &live, &expires); err != nil {
						return err
					}
					switch {
					case !live:
						dead++
						if expires.After(sh.FreedAt) {
							sh.FreedAt = expires // a dead lease's slice was free only from its expiry
						}
					case l.Replica == r.Replica:
						sh.Own = l
					default:
						sh.Others = append(sh.Others, l)
					}
				}
				return rows.Err()
			})
		if err := send(b, false); err != nil {
			return err
		}

		d = decide(sh)

		b = &pgx.Batch{}
		b.Queue(`
			INSERT INTO quota_leases (key, replica, grant_per_s, cap, day_reserved, instances, waiting, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)
			ON CONFLICT (key, replica) DO UPDATE SET grant_per_s = excluded.grant_per_s, cap = excluded.cap,
				day_reserved = excluded.day_reserved, instances = excluded.instances, waiting = excluded.waiting, expires_at = excluded.expires_at`,
			r.Key, r.Replica, d.Grant, r.Cap, d.DayReserved, nonNil(r.Instances), nonNil(r.Waiting), r.Lease)
		if dead > 0 {
			b.Queue(`DELETE FROM quota_leases WHERE key = $1 AND expires_at <= now()`, r.Key)
		}
		if dead > 0 || d.Grant < sh.Own.Grant {
			freed := sh.FreedAt
			if d.Grant < sh.Own.Grant && sh.Now.After(freed) {
				freed = sh.Now
			}
			b.Queue(`UPDATE quotas SET freed_at = greatest(freed_at, $2::timestamptz) WHERE key = $1`, r.Key, freed)
		}
		if len(r.SentBy) > 0 {
			ids, ns := make([]int64, 0, len(r.SentBy)), make([]int32, 0, len(r.SentBy))
			for id, n := range r.SentBy {
				if n > 0 {
					ids, ns = append(ids, id), append(ns, int32(n))
				}
			}
			// Only instances that still exist: one deleted since its call is skipped.
			b.Queue(`
				INSERT INTO quota_usage AS u (key, instance_id, minute_start, minute_used, day_start, day_used)
				SELECT $1, s.id, `+sqlMinute+`, s.n, `+sqlDay+`, s.n
				FROM unnest($2::bigint[], $3::integer[]) AS s(id, n) JOIN instances i ON i.id = s.id
				ORDER BY s.id
				ON CONFLICT (key, instance_id) DO UPDATE SET
					minute_used = CASE WHEN u.minute_start = excluded.minute_start THEN u.minute_used + excluded.minute_used ELSE excluded.minute_used END,
					minute_start = excluded.minute_start,
					day_used = CASE WHEN u.day_start = excluded.day_start THEN u.day_used + excluded.day_used ELSE excluded.day_used END,
					day_start = excluded.day_start`, r.Key, ids, ns)
		}
		if d.ReportExhausted {
			if err := send(b, false); err != nil {
				return err
			}
			if err := db.reportExhaustedTx(ctx, tx, r); err != nil {
				return err
			}
			b = &pgx.Batch{}
		}
		b.Queue(`COMMIT`)
		return send(b, true)
	})
	return sh, d, err
}

// pipelinedTx runs fn on one connection whose batches carry their own BEGIN
// and COMMIT, so a transaction costs no round trip of its own; send sends a
// batch, and committed says its last statement was the COMMIT. Unless fn
// committed, the transaction is rolled back with a context that outlives
// the caller's cancellation.
func (db *DB) pipelinedTx(ctx context.Context, fn func(tx querier, send func(b *pgx.Batch, committed bool) error) error) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return interpret(err)
	}
	defer conn.Release()
	done := false
	defer func() {
		if done {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(rctx, `ROLLBACK`); err != nil {
			_ = conn.Conn().Close(rctx) // not to be reused in an unknown state
		}
	}()
	return fn(conn, func(b *pgx.Batch, committed bool) error {
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return interpret(err)
		}
		done = committed
		return nil
	})
}

// reportExhaustedTx marks the quota's day as reported and queues, in the
// same transaction, one notification to every instance that used it today
// and has events on.
func (db *DB) reportExhaustedTx(ctx context.Context, tx querier, r quota.Report) error {
	if _, err := tx.Exec(ctx, `UPDATE quotas SET exhausted_on = day_start WHERE key = $1`, r.Key); err != nil {
		return interpret(err)
	}
	rows, err := tx.Query(ctx, `
		SELECT i.id, i.element_key FROM quota_usage u JOIN instances i ON i.id = u.instance_id
		WHERE u.key = $1 AND u.day_start = `+sqlDay+` AND i.configuration->>$2 = 'true'
		ORDER BY i.id`, r.Key, instances.KeyEventsEnabled)
	if err != nil {
		return interpret(err)
	}
	type target struct {
		id  int64
		key string
	}
	var ts []target
	for rows.Next() {
		var t target
		if err := rows.Scan(&t.id, &t.key); err != nil {
			rows.Close()
			return interpret(err)
		}
		ts = append(ts, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return interpret(err)
	}
	now := time.Now()
	y, m, dd := now.UTC().Date()
	resets := time.Date(y, m, dd+1, 0, 0, 0, 0, time.UTC)
	for _, t := range ts {
		evs, raw, err := events.QuotaExhausted(t.key, t.id, r.Key, r.DayLimit, resets, now)
		if err != nil {
			return fmt.Errorf("store: quota-exhausted notification: %w", err)
		}
		if _, err := enqueueTx(ctx, tx, t.id, evs, func(int, int) json.RawMessage { return raw }); err != nil {
			return err
		}
	}
	return nil
}

// QuotaFigures reads a quota's shared figures (every live lease in Others),
// and the calls of an instance and of its organization's instances.
func (db *DB) QuotaFigures(ctx context.Context, key string, instanceID, orgID int64) (quota.Shared, quota.InstanceUsage, error) {
	var sh quota.Shared
	var u quota.InstanceUsage
	b := &pgx.Batch{}
	b.Queue(`
		SELECT now(),
			CASE WHEN minute_start = `+sqlMinute+` THEN minute_used ELSE 0 END,
			CASE WHEN day_start = `+sqlDay+` THEN day_used ELSE 0 END,
			coalesce(paused_until, 'epoch')
		FROM quotas WHERE key = $1`, key).QueryRow(func(row pgx.Row) error {
		var paused time.Time
		err := row.Scan(&sh.Now, &sh.MinuteUsed, &sh.DayUsed, &paused)
		if err == pgx.ErrNoRows {
			return nil // never used: all zero
		}
		if paused.Unix() > 0 {
			sh.PausedUntil = paused
		}
		return err
	})
	b.Queue(`SELECT replica, grant_per_s, cap, day_reserved, instances, waiting FROM quota_leases WHERE key = $1 AND expires_at > now()`, key).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var l quota.Lease
				if err := rows.Scan(&l.Replica, &l.Grant, &l.Cap, &l.DayReserved, &l.Instances, &l.Waiting); err != nil {
					return err
				}
				sh.Others = append(sh.Others, l)
			}
			return rows.Err()
		})
	b.Queue(`
		SELECT u.instance_id,
			CASE WHEN u.minute_start = `+sqlMinute+` THEN u.minute_used ELSE 0 END,
			CASE WHEN u.day_start = `+sqlDay+` THEN u.day_used ELSE 0 END
		FROM quota_usage u JOIN instances i ON i.id = u.instance_id
		WHERE u.key = $1 AND i.organization_id = $2`, key, orgID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int64
			var minute, day int
			if err := rows.Scan(&id, &minute, &day); err != nil {
				return err
			}
			u.OrgMinute += minute
			u.OrgDay += day
			u.OrgInstances = append(u.OrgInstances, id)
			if id == instanceID {
				u.InstanceMinute, u.InstanceDay = minute, day
			}
		}
		return rows.Err()
	})
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return sh, u, interpret(err)
	}
	return sh, u, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
