package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/instances"
)

// Advisory lock keys (the first of pg_try_advisory_xact_lock's two int4 keys):
// one for the cursor sync, one space for claiming instances.
const (
	lockPollSync  = 0x706f6c73 // "pols"
	lockPollClaim = 0x706f6c63 // "polc"
)

// SyncPollCursors brings the cursor rows in line with what the instances with
// events enabled want now: want receives them (configuration only, no
// secrets) and says which resources each polls. Missing cursors are created at
// now, due at a random moment within their interval; cursors no longer wanted
// (events disabled, another mechanism, a resource dropped) are deleted, so
// enabling again starts from then; a cursor due later than its interval (the
// interval was shortened) is brought forward; cursors stopped on refused
// credentials resume once their instance changed. One replica syncs at a
// time; the others skip, and false says so.
func (db *DB) SyncPollCursors(ctx context.Context, now time.Time, want func([]*instances.Instance) []events.PollWant) (bool, error) {
	synced := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, 0)`, lockPollSync).Scan(&synced); err != nil || !synced {
			return interpret(err)
		}
		rows, err := tx.Query(ctx, `SELECT id, organization_id, element_key, valid, disabled, coalesce(invalid_reason, ''), configuration
			FROM instances WHERE configuration->>$1 = 'true' ORDER BY id`, instances.KeyEventsEnabled)
		if err != nil {
			return interpret(err)
		}
		var list []*instances.Instance
		for rows.Next() {
			inst := &instances.Instance{Config: map[string]*string{}}
			var cfg []byte
			if err := rows.Scan(&inst.ID, &inst.OrganizationID, &inst.ElementKey, &inst.Valid, &inst.Disabled, &inst.InvalidReason, &cfg); err != nil {
				rows.Close()
				return interpret(err)
			}
			if err := json.Unmarshal(cfg, &inst.Config); err != nil {
				rows.Close()
				return fmt.Errorf("store: instance %d configuration: %w", inst.ID, err)
			}
			list = append(list, inst)
		}
		if err := rows.Err(); err != nil {
			return interpret(err)
		}
		var ids []int64
		var resources []string
		var secs []float64
		for _, w := range want(list) {
			for _, r := range w.Resources {
				ids, resources, secs = append(ids, w.InstanceID), append(resources, r), append(secs, w.Interval.Seconds())
			}
		}
		batch := &pgx.Batch{}
		batch.Queue(`DELETE FROM poll_cursors c WHERE NOT EXISTS (
			SELECT 1 FROM unnest($1::bigint[], $2::text[]) AS w(i, r) WHERE w.i = c.instance_id AND w.r = c.resource)`, ids, resources)
		batch.Queue(`INSERT INTO poll_cursors (instance_id, resource, cursor_at, next_poll_at)
			SELECT w.i, w.r, $4::timestamptz, $4::timestamptz + make_interval(secs => w.s * random())
			FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS w(i, r, s)
			ON CONFLICT (instance_id, resource) DO NOTHING`, ids, resources, secs, now)
		batch.Queue(`UPDATE poll_cursors c SET next_poll_at = $4::timestamptz + make_interval(secs => w.s * random())
			FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS w(i, r, s)
			WHERE c.instance_id = w.i AND c.resource = w.r AND c.lease_owner IS NULL
				AND c.next_poll_at > $4::timestamptz + make_interval(secs => w.s * 1.2)`, ids, resources, secs, now)
		batch.Queue(`UPDATE poll_cursors c SET stopped_at = NULL
			FROM instances i WHERE i.id = c.instance_id AND c.stopped_at IS NOT NULL AND i.updated_at > c.stopped_at`)
		batch.Queue(`UPDATE poll_cursors c SET last_error = 'the instance is not valid: ' || coalesce(i.invalid_reason, 'no reason recorded'), last_error_at = now()
			FROM instances i WHERE i.id = c.instance_id AND NOT i.valid
				AND c.last_error IS DISTINCT FROM 'the instance is not valid: ' || coalesce(i.invalid_reason, 'no reason recorded')`)
		return interpret(tx.SendBatch(ctx, batch).Close())
	})
	return synced, err
}

// ClaimPolls leases up to limit instances with a due cursor, for lease, to
// owner, and returns their cursors. An instance is leased whole (every cursor
// row), and only when none of its rows is leased already: the per-instance
// advisory lock makes two claimers take turns, so two replicas never poll the
// same instance at once. Rows another transaction holds are skipped (FOR
// UPDATE SKIP LOCKED), never waited for. Invalid, disabled and
// events-disabled instances and stopped cursors are not claimed.
func (db *DB) ClaimPolls(ctx context.Context, owner string, limit int, lease time.Duration) ([]events.PollClaim, error) {
	var out []events.PollClaim
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT c.instance_id FROM poll_cursors c JOIN instances i ON i.id = c.instance_id
			WHERE c.next_poll_at <= now() AND c.stopped_at IS NULL AND (c.lease_until IS NULL OR c.lease_until < now())
				AND i.valid AND NOT i.disabled AND i.configuration->>$2 = 'true'
			ORDER BY c.next_poll_at LIMIT $1`, limit*4, instances.KeyEventsEnabled)
		if err != nil {
			return interpret(err)
		}
		var candidates []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return interpret(err)
			}
			if len(candidates) == 0 || !containsID(candidates, id) {
				candidates = append(candidates, id)
			}
		}
		if err := rows.Err(); err != nil {
			return interpret(err)
		}
		for _, id := range candidates {
			if len(out) == limit {
				break
			}
			var locked bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, ($2 % 2147483647)::int4)`, lockPollClaim, id).Scan(&locked); err != nil {
				return interpret(err)
			}
			if !locked {
				continue // another replica is claiming it right now
			}
			claim, err := leaseInstance(ctx, tx, id, owner, lease)
			if err != nil {
				return err
			}
			if len(claim.Cursors) > 0 {
				out = append(out, claim)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// leaseInstance leases every row of the instance it can lock at once, unless
// one is leased already. The statement's snapshot is taken after the advisory
// lock, so it sees the lease of a claimer that held the lock before.
func leaseInstance(ctx context.Context, tx pgx.Tx, id int64, owner string, lease time.Duration) (events.PollClaim, error) {
	claim := events.PollClaim{InstanceID: id}
	rows, err := tx.Query(ctx, `
		UPDATE poll_cursors c SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
		FROM (SELECT instance_id, resource FROM poll_cursors WHERE instance_id = $1 FOR UPDATE SKIP LOCKED) l
		WHERE c.instance_id = l.instance_id AND c.resource = l.resource
			AND NOT EXISTS (SELECT 1 FROM poll_cursors o WHERE o.instance_id = $1 AND o.lease_until >= now())
		RETURNING c.resource, c.cursor_at, c.cursor_ids, c.sweep_from, c.next_poll_at <= now() AND c.stopped_at IS NULL`,
		id, owner, lease.Seconds())
	if err != nil {
		return claim, interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c events.PollCursor
		if err := rows.Scan(&c.Resource, &c.At, &c.IDs, &c.SweepFrom, &c.Due); err != nil {
			return claim, interpret(err)
		}
		c.At = c.At.UTC()
		if c.SweepFrom != nil {
			t := c.SweepFrom.UTC()
			c.SweepFrom = &t
		}
		claim.Cursors = append(claim.Cursors, c)
	}
	return claim, interpret(rows.Err())
}

// errLeaseLost is SavePollPage's answer when the poller no longer holds the
// cursor: its lease ran out and another replica took it, or the cursor was
// deleted because polling was turned off.
var errLeaseLost = apperr.Errorf(apperr.Conflict, "the poll lease was lost (it expired, or polling was turned off); nothing was stored")

// SavePollPage stores one page of a poll in ONE transaction: the page's events
// and their notifications, and the cursor after the page, and extends the
// lease. A crash therefore repeats at most the page under way and never skips
// one. A poller that lost its lease stores nothing (apperr.Conflict).
func (db *DB) SavePollPage(ctx context.Context, p events.PollPage) error {
	if err := checkEvents(p.Events); err != nil {
		return err
	}
	return db.inTx(ctx, func(tx pgx.Tx) error {
		ids := p.Cursor.IDs
		if ids == nil {
			ids = []string{}
		}
		tag, err := tx.Exec(ctx, `UPDATE poll_cursors SET cursor_at = $4, cursor_ids = $5, sweep_from = $6
			WHERE instance_id = $1 AND resource = $2 AND lease_owner = $3`,
			p.InstanceID, p.Cursor.Resource, p.Owner, p.Cursor.At, ids, p.Cursor.SweepFrom)
		if err != nil {
			return interpret(err)
		}
		if tag.RowsAffected() == 0 {
			return errLeaseLost
		}
		if _, err := tx.Exec(ctx, `UPDATE poll_cursors SET lease_until = now() + make_interval(secs => $3)
			WHERE instance_id = $1 AND lease_owner = $2`, p.InstanceID, p.Owner, p.Lease.Seconds()); err != nil {
			return interpret(err)
		}
		if len(p.Events) == 0 {
			return nil
		}
		_, err = enqueueTx(ctx, tx, p.InstanceID, p.Events, func(from, to int) json.RawMessage {
			return rawPage(p.ListKey, p.Objects, from, to)
		})
		return err
	})
}

// rawPage is Keap's list shape holding the records of one notification.
func rawPage(listKey string, objects []json.RawMessage, from, to int) json.RawMessage {
	if listKey == "" || to > len(objects) {
		return nil
	}
	key, _ := json.Marshal(listKey)
	var b bytes.Buffer
	b.WriteString("{")
	b.Write(key)
	b.WriteString(":[")
	for i, o := range objects[from:to] {
		if i > 0 {
			b.WriteString(",")
		}
		b.Write(o)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// ReleasePoll records how each polled cursor of the instance ended and hands
// back the lease on all its rows.
func (db *DB) ReleasePoll(ctx context.Context, instanceID int64, owner string, results []events.PollResult) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		for _, r := range results {
			if _, err := tx.Exec(ctx, `UPDATE poll_cursors SET next_poll_at = $4, last_polled_at = now(),
					last_error = nullif($5, ''), last_error_at = CASE WHEN $5 = '' THEN last_error_at ELSE now() END,
					stopped_at = CASE WHEN $6 THEN now() ELSE stopped_at END,
					sweep_from = CASE WHEN $7 THEN NULL ELSE sweep_from END
				WHERE instance_id = $1 AND resource = $2 AND lease_owner = $3`,
				instanceID, r.Resource, owner, r.NextPoll, r.Error, r.Stop, r.SweepDone); err != nil {
				return interpret(err)
			}
		}
		_, err := tx.Exec(ctx, `UPDATE poll_cursors SET lease_owner = NULL, lease_until = NULL
			WHERE instance_id = $1 AND lease_owner = $2`, instanceID, owner)
		return interpret(err)
	})
}

// PollStatuses returns the instance's polling cursors, by resource, for its
// organization (NotFound for another's).
func (db *DB) PollStatuses(ctx context.Context, orgID, instanceID int64) ([]events.PollStatus, error) {
	out := []events.PollStatus{}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkInstance(ctx, tx, orgID, instanceID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT resource, cursor_at, cursor_ids, next_poll_at, coalesce(lease_owner, ''), last_polled_at,
			coalesce(last_error, ''), stopped_at IS NOT NULL FROM poll_cursors WHERE instance_id = $1 ORDER BY resource`, instanceID)
		if err != nil {
			return interpret(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s events.PollStatus
			if err := rows.Scan(&s.Resource, &s.At, &s.IDs, &s.NextPoll, &s.LeaseOwner, &s.LastPolledAt, &s.LastError, &s.Stopped); err != nil {
				return interpret(err)
			}
			s.At, s.NextPoll = s.At.UTC(), s.NextPoll.UTC()
			out = append(out, s)
		}
		return interpret(rows.Err())
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
