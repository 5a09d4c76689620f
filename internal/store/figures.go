package store

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolStats is the connection pool's state, for the metrics.
type PoolStats struct {
	InUse, Idle, Total, Max int32
	// Waiting is the number of callers asking for a connection right now:
	// those the pool has none for wait, the others pass in microseconds.
	Waiting int64
	// Waited counts acquisitions that found no idle connection, and
	// WaitedFor their total wait.
	Waited    int64
	WaitedFor time.Duration
	Acquired  int64
}

// PoolStats returns the pool's state.
func (db *DB) PoolStats() PoolStats {
	s := db.pool.Stat()
	var waiting int64
	if db.acquiring != nil {
		waiting = db.acquiring.n.Load()
	}
	return PoolStats{
		InUse: s.AcquiredConns(), Idle: s.IdleConns(), Total: s.TotalConns(), Max: s.MaxConns(),
		Waiting: waiting, Waited: s.EmptyAcquireCount(), WaitedFor: s.EmptyAcquireWaitTime(), Acquired: s.AcquireCount(),
	}
}

// acquireTracer counts Acquire calls in progress (pgxpool.AcquireTracer).
// pgxpool finds it on the connection configuration's Tracer, which must be
// a pgx.QueryTracer too: those methods do nothing.
type acquireTracer struct{ n atomic.Int64 }

func (t *acquireTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (t *acquireTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *acquireTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	t.n.Add(1)
	return ctx
}

func (t *acquireTracer) TraceAcquireEnd(_ context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	t.n.Add(-1)
}

// Figures are what the metrics read from the database on each scrape.
type Figures struct {
	InvalidInstances     int64
	DisabledInstances    int64
	PendingNotifications int64
	// OldestPending is the age of the oldest pending notification (the
	// delivery lag); zero when none is pending.
	OldestPending time.Duration
	// PollOverdue is, per polled resource, how late its most overdue poll
	// is (zero when every poll is on time); PollSince is how long ago its
	// least recently polled instance was polled.
	PollOverdue map[string]time.Duration
	PollSince   map[string]time.Duration
}

// Figures reads the figures, in a few queries each using an index or a
// small table; ctx bounds them (the metrics give each scrape a time-out).
func (db *DB) Figures(ctx context.Context) (Figures, error) {
	f := Figures{PollOverdue: map[string]time.Duration{}, PollSince: map[string]time.Duration{}}
	err := db.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT valid), count(*) FILTER (WHERE disabled) FROM instances`).
		Scan(&f.InvalidInstances, &f.DisabledInstances)
	if err != nil {
		return f, interpret(err)
	}
	// Pending notifications are few and indexed (notifications_due);
	// delivered and failed ones are counted as they happen, not here.
	var oldest float64
	if err := db.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM notifications WHERE status = 'pending'`).Scan(&f.PendingNotifications, &oldest); err != nil {
		return f, interpret(err)
	}
	f.OldestPending = seconds(oldest)
	rows, err := db.pool.Query(ctx, `SELECT resource,
		greatest(extract(epoch FROM now() - min(next_poll_at)), 0)::float8,
		coalesce(extract(epoch FROM now() - min(coalesce(last_polled_at, created_at))), 0)::float8
		FROM poll_cursors WHERE stopped_at IS NULL GROUP BY resource`)
	if err != nil {
		return f, interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		var res string
		var overdue, since float64
		if err := rows.Scan(&res, &overdue, &since); err != nil {
			return f, interpret(err)
		}
		f.PollOverdue[res], f.PollSince[res] = seconds(overdue), seconds(since)
	}
	return f, interpret(rows.Err())
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
