package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// dueChannel is the PostgreSQL NOTIFY channel that says a notification became
// due now: new events were stored, or notifications were queued for
// redelivery. Every replica's delivery listens on it, so a notification stored
// by one replica is picked up at once by whichever is free, instead of at its
// next poll.
const dueChannel = "connectord_notifications_due"

// signalDue tells every listening replica, when tx commits, that notifications
// are due now. PostgreSQL folds identical signals of one transaction into one.
func signalDue(ctx context.Context, tx querier) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, dueChannel)
	return interpret(err)
}

// ListenNotificationsDue calls wake each time notifications become due now,
// until ctx ends. It holds one connection of its own (taken out of the pool);
// when that connection is lost it reconnects after retry and calls wake, since
// a signal may have been missed meanwhile. Signals only shorten waits: the
// delivery's own polling still finds everything due without them.
func (db *DB) ListenNotificationsDue(ctx context.Context, retry time.Duration, wake func(), onError func(error)) {
	for ctx.Err() == nil {
		err := db.listenDue(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		onError(err)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (db *DB) listenDue(ctx context.Context, wake func()) error {
	pc, err := db.pool.Acquire(ctx)
	if err != nil {
		return interpret(err)
	}
	// A listening connection must not go back to the pool for other work.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{dueChannel}.Sanitize()); err != nil {
		return interpret(err)
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return interpret(err)
		}
		wake()
	}
}
