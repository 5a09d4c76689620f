package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/instances"
)

// maxBatch is Open Connectors' limit of events per notification, and the
// default of event.notification.batch.size.
const maxBatch = 20

// EnqueueEvents is the entry point for events: the hook receiver and the poller
// call it with the events normalised from one provider delivery or poll page,
// and raw, that delivery as received (sent along as "raw"; may be nil). In ONE
// transaction it stores the events and the notifications that will carry them
// to the instance's callback, at most event.notification.batch.size events
// each, due at once. When it returns without error the events are durable and
// will be delivered at least once; the caller may then acknowledge its source.
func (db *DB) EnqueueEvents(ctx context.Context, instanceID int64, evs []events.Event, raw json.RawMessage) ([]events.NotificationID, error) {
	return db.EnqueueEventsSplit(ctx, instanceID, evs, func(int, int) json.RawMessage { return raw })
}

// EnqueueEventsSplit is EnqueueEvents where each notification carries as raw
// only its own part of the source: rawFor(from, to) is the raw of the
// notification carrying evs[from:to] (nil: none).
func (db *DB) EnqueueEventsSplit(ctx context.Context, instanceID int64, evs []events.Event, rawFor func(from, to int) json.RawMessage) ([]events.NotificationID, error) {
	if err := checkEvents(evs); err != nil || len(evs) == 0 {
		return nil, err
	}
	var ids []events.NotificationID
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		ids, err = enqueueTx(ctx, tx, instanceID, evs, rawFor)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func checkEvents(evs []events.Event) error {
	for i, e := range evs {
		if !events.ValidEventType(e.EventType) {
			return apperr.Errorf(apperr.Invalid, "event %d: eventType %q is not CREATED, UPDATED or DELETED", i, e.EventType)
		}
	}
	return nil
}

// querier runs statements in an open transaction: a pgx.Tx, or a connection
// whose transaction was begun in a pipelined batch (SyncQuota).
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// enqueueTx stores evs and their notifications in tx. rawFor gives the raw of
// the notification carrying evs[from:to] (nil or invalid JSON: none).
func enqueueTx(ctx context.Context, tx querier, instanceID int64, evs []events.Event, rawFor func(from, to int) json.RawMessage) ([]events.NotificationID, error) {
	var batch *string
	err := tx.QueryRow(ctx, `SELECT configuration->>$2 FROM instances WHERE id = $1`, instanceID, instances.KeyEventBatchSize).Scan(&batch)
	if err != nil {
		if apperr.CodeOf(interpret(err)) == apperr.NotFound {
			return nil, notFound(instanceID)
		}
		return nil, interpret(err)
	}
	size := maxBatch
	if batch != nil {
		if n, err := strconv.Atoi(*batch); err == nil && n >= 1 && n < maxBatch {
			size = n
		}
	}
	var ids []events.NotificationID
	for start := 0; start < len(evs); start += size {
		end := min(start+size, len(evs))
		chunk := evs[start:end]
		eventID, err := newEventID()
		if err != nil {
			return nil, err
		}
		raw := rawFor(start, end)
		if len(raw) == 0 || !json.Valid(raw) {
			raw = nil
		}
		var id events.NotificationID
		if err := tx.QueryRow(ctx, `INSERT INTO notifications (event_id, instance_id, raw) VALUES ($1, $2, $3) RETURNING id`,
			eventID, instanceID, raw).Scan(&id); err != nil {
			return nil, interpret(err)
		}
		types, otypes, oids, dates, keys := make([]string, len(chunk)), make([]string, len(chunk)), make([]string, len(chunk)), make([]time.Time, len(chunk)), make([]string, len(chunk))
		for i, e := range chunk {
			types[i], otypes[i], oids[i], dates[i], keys[i] = e.EventType, e.ObjectType, e.ObjectID, e.Date, e.ElementKey
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO events (notification_id, instance_id, event_type, object_type, object_id, occurred_at, element_key)
			SELECT $1, $2, t, ot, oi, d, k FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[]) AS u(t, ot, oi, d, k)`,
			id, instanceID, types, otypes, oids, dates, keys); err != nil {
			return nil, interpret(err)
		}
		ids = append(ids, id)
	}
	return ids, signalDue(ctx, tx)
}

// newEventID is a notification's stable, opaque eventId: 128 random bits.
func newEventID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("store: event id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ClaimNotifications claims up to limit due pending notifications, skipping
// rows other workers or replicas are claiming, by moving their next try to now +
// lease, and returns them with their events. The claim commits at once: it
// lasts only as long as the lease (see events.Delivery).
func (db *DB) ClaimNotifications(ctx context.Context, limit int, lease time.Duration, skip []int64) ([]events.Claimed, error) {
	if skip == nil {
		skip = []int64{}
	}
	var out []events.Claimed
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE notifications n SET next_attempt_at = now() + make_interval(secs => $2)
			FROM (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= now()
			          AND NOT (instance_id = ANY($3))
			      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
			WHERE n.id = due.id
			RETURNING n.id, n.event_id, n.instance_id, n.failures, n.raw`, limit, lease.Seconds(), skip)
		if err != nil {
			return interpret(err)
		}
		byID := map[events.NotificationID]int{}
		ids := []int64{}
		for rows.Next() {
			var c events.Claimed
			var raw []byte
			if err := rows.Scan(&c.ID, &c.EventID, &c.InstanceID, &c.Failures, &raw); err != nil {
				rows.Close()
				return interpret(err)
			}
			c.Raw = raw
			byID[c.ID] = len(out)
			ids = append(ids, int64(c.ID))
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return interpret(err)
		}
		if len(ids) == 0 {
			return nil
		}
		return db.eventsOf(ctx, tx, ids, func(id events.NotificationID, e events.Event) {
			out[byID[id]].Events = append(out[byID[id]].Events, e)
		})
	})
	return out, err
}

func (db *DB) eventsOf(ctx context.Context, tx pgx.Tx, ids []int64, add func(events.NotificationID, events.Event)) error {
	rows, err := tx.Query(ctx, `
		SELECT notification_id, occurred_at, element_key, event_type, object_id, object_type
		FROM events WHERE notification_id = ANY($1) ORDER BY notification_id, id`, ids)
	if err != nil {
		return interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id events.NotificationID
		var e events.Event
		if err := rows.Scan(&id, &e.Date, &e.ElementKey, &e.EventType, &e.ObjectID, &e.ObjectType); err != nil {
			return interpret(err)
		}
		e.Date = e.Date.UTC()
		add(id, e)
	}
	return interpret(rows.Err())
}

// RecordDelivery records one delivery try and the notification's new state. A
// failure reported late (by a worker whose lease ran out while another
// delivered) never turns a delivered notification back.
func (db *DB) RecordDelivery(ctx context.Context, id events.NotificationID, o events.Outcome) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		var status *int
		if o.HTTPStatus != 0 {
			status = &o.HTTPStatus
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notification_attempts (notification_id, attempted_at, http_status, error, duration_ms)
			VALUES ($1, $2, $3, nullif($4, ''), $5)`, id, o.At, status, o.Error, o.Duration.Milliseconds()); err != nil {
			return interpret(err)
		}
		var err error
		switch {
		case o.Delivered:
			_, err = tx.Exec(ctx, `UPDATE notifications SET status = 'delivered', attempts = attempts + 1, last_status = $2,
				last_error = NULL, delivered_at = now() WHERE id = $1`, id, status)
		case o.Failed:
			_, err = tx.Exec(ctx, `UPDATE notifications SET status = 'failed', attempts = attempts + 1, failures = failures + 1,
				last_status = $2, last_error = nullif($3, '') WHERE id = $1 AND status = 'pending'`, id, status, o.Error)
		default:
			_, err = tx.Exec(ctx, `UPDATE notifications SET attempts = attempts + 1, failures = failures + 1,
				last_status = $2, last_error = nullif($3, ''), next_attempt_at = $4 WHERE id = $1 AND status = 'pending'`, id, status, o.Error, o.NextTry)
		}
		return interpret(err)
	})
}

// DeferNotifications hands claimed notifications back, due after d, without
// counting a try.
func (db *DB) DeferNotifications(ctx context.Context, ids []events.NotificationID, d time.Duration) error {
	raw := make([]int64, len(ids))
	for i, id := range ids {
		raw[i] = int64(id)
	}
	_, err := db.pool.Exec(ctx, `UPDATE notifications SET next_attempt_at = now() + make_interval(secs => $2)
		WHERE id = ANY($1) AND status = 'pending'`, raw, d.Seconds())
	return interpret(err)
}

// NextNotificationDue is when the earliest pending notification is due.
func (db *DB) NextNotificationDue(ctx context.Context) (time.Time, bool, error) {
	var t *time.Time
	if err := db.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM notifications WHERE status = 'pending'`).Scan(&t); err != nil {
		return time.Time{}, false, interpret(err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}

// InstanceByID returns an instance whatever its organization, for connectord's
// own background work.
func (db *DB) InstanceByID(ctx context.Context, id int64) (*instances.Instance, error) {
	inst, err := db.scanInstance(db.pool.QueryRow(ctx, `SELECT `+instanceColumns+instanceFrom+`WHERE i.id = $1`, id))
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, apperr.Errorf(apperr.NotFound, "no instance %d", id)
	}
	return inst, err
}

// checkInstance fails with NotFound unless the organization owns the instance.
func checkInstance(ctx context.Context, q pgx.Tx, orgID, id int64) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM instances WHERE organization_id = $1 AND id = $2`, orgID, id).Scan(&one)
	if apperr.CodeOf(interpret(err)) == apperr.NotFound {
		return notFound(id)
	}
	return interpret(err)
}

// Notifications returns one page of an instance's notifications, newest
// first, with their events and tries, and the cursor of the next page (0 on
// the last).
func (db *DB) Notifications(ctx context.Context, orgID, instanceID int64, f events.Filter) ([]events.Notification, events.NotificationID, error) {
	var out []events.Notification
	var next events.NotificationID
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkInstance(ctx, tx, orgID, instanceID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT n.id, n.event_id, n.instance_id, n.status, n.attempts, n.next_attempt_at, n.last_status,
				coalesce(n.last_error, ''), n.created_at, n.delivered_at
			FROM notifications n
			WHERE n.instance_id = $1 AND ($2 = '' OR n.status = $2) AND ($4::bigint = 0 OR n.id < $4)
				AND ($3 = '' OR EXISTS (SELECT 1 FROM events e WHERE e.notification_id = n.id AND e.event_type = $3))
			ORDER BY n.id DESC LIMIT $5`, instanceID, f.Status, f.EventType, int64(f.Before), f.PageSize+1)
		if err != nil {
			return interpret(err)
		}
		for rows.Next() {
			var n events.Notification
			var nextAt time.Time
			if err := rows.Scan(&n.ID, &n.EventID, &n.InstanceID, &n.Status, &n.Attempts, &nextAt, &n.LastStatus,
				&n.LastError, &n.CreatedDate, &n.DeliveredDate); err != nil {
				rows.Close()
				return interpret(err)
			}
			if n.Status == events.StatusPending {
				n.NextAttemptDate = &nextAt
			}
			n.Events, n.DeliveryAttempts = []events.Event{}, []events.Attempt{}
			out = append(out, n)
		}
		if err := rows.Err(); err != nil {
			return interpret(err)
		}
		if len(out) > f.PageSize {
			out = out[:f.PageSize]
			next = out[len(out)-1].ID
		}
		if len(out) == 0 {
			return nil
		}
		byID := map[events.NotificationID]int{}
		ids := make([]int64, len(out))
		for i, n := range out {
			byID[n.ID], ids[i] = i, int64(n.ID)
		}
		if err := db.eventsOf(ctx, tx, ids, func(id events.NotificationID, e events.Event) {
			out[byID[id]].Events = append(out[byID[id]].Events, e)
		}); err != nil {
			return err
		}
		arows, err := tx.Query(ctx, `SELECT notification_id, attempted_at, coalesce(http_status, 0), coalesce(error, ''), duration_ms
			FROM notification_attempts WHERE notification_id = ANY($1) ORDER BY notification_id, id`, ids)
		if err != nil {
			return interpret(err)
		}
		defer arows.Close()
		for arows.Next() {
			var id events.NotificationID
			var a events.Attempt
			if err := arows.Scan(&id, &a.Date, &a.Status, &a.Error, &a.DurationMs); err != nil {
				return interpret(err)
			}
			out[byID[id]].DeliveryAttempts = append(out[byID[id]].DeliveryAttempts, a)
		}
		return interpret(arows.Err())
	})
	if err != nil {
		return nil, 0, err
	}
	if out == nil {
		out = []events.Notification{}
	}
	return out, next, nil
}

// Redeliver re-queues one notification of the instance, due now, with its
// eventId and a fresh retry schedule, whatever its status.
func (db *DB) Redeliver(ctx context.Context, orgID, instanceID int64, eventID string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkInstance(ctx, tx, orgID, instanceID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE notifications SET status = 'pending', failures = 0, next_attempt_at = now(), delivered_at = NULL
			WHERE instance_id = $1 AND event_id = $2`, instanceID, eventID)
		if err != nil {
			return interpret(err)
		}
		if tag.RowsAffected() == 0 {
			return apperr.Errorf(apperr.NotFound, "instance %d has no event %s", instanceID, eventID)
		}
		return signalDue(ctx, tx)
	})
}

// RedeliverFailed re-queues every failed notification of the instance, due
// now, and returns how many.
func (db *DB) RedeliverFailed(ctx context.Context, orgID, instanceID int64) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkInstance(ctx, tx, orgID, instanceID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE notifications SET status = 'pending', failures = 0, next_attempt_at = now()
			WHERE instance_id = $1 AND status = 'failed'`, instanceID)
		if err != nil {
			return interpret(err)
		}
		if n = tag.RowsAffected(); n > 0 {
			return signalDue(ctx, tx)
		}
		return nil
	})
	return n, err
}

// PruneDelivered deletes the notifications delivered before t, with their
// events and tries, a batch at a time so no transaction grows large, and
// returns how many. Pending and failed notifications are kept whatever their
// age: they are still owed to the consumer.
func (db *DB) PruneDelivered(ctx context.Context, t time.Time) (int64, error) {
	const batch = 5000
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM notifications WHERE id IN (
			SELECT id FROM notifications WHERE status = 'delivered' AND delivered_at < $1 ORDER BY delivered_at LIMIT $2)`, t, batch)
		if err != nil {
			return total, interpret(err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			return total, nil
		}
	}
}
