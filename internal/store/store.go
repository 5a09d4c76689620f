// Package store is connectord's PostgreSQL store: the connection pool, the
// schema migrations, and every query. It encrypts instance credentials on the
// way in and decrypts them on the way out, so no secret reaches a row in clear.
//
// pgx types stop here: callers get domain types and apperr errors, never
// pgx.ErrNoRows or a *pgconn.PgError.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/migrations"
)

// DB is the store over one pool.
type DB struct {
	pool      *pgxpool.Pool
	ring      *secrets.Ring
	acquiring *acquireTracer // counts the callers waiting for a connection
}

// Open connects to databaseURL. ring may be nil for commands that never touch
// credentials (migrate, orgs create).
func Open(ctx context.Context, databaseURL string, ring *secrets.Ring) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (the number of CPUs, at least 4) is too few for a
		// server whose token refreshes hold a connection through a Keap call.
		cfg.MaxConns = 20
	}
	acquiring := &acquireTracer{}
	cfg.ConnConfig.Tracer = acquiring
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL at %s is not reachable: %w", redactURL(cfg.ConnConfig), err)
	}
	return &DB{pool: pool, ring: ring, acquiring: acquiring}, nil
}

func redactURL(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Close closes the pool.
func (db *DB) Close() { db.pool.Close() }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Pool exposes the pool to packages that share transactions with the store.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Migrate applies every pending migration. golang-migrate holds a PostgreSQL
// advisory lock meanwhile, so replicas starting together apply each one once.
func (db *DB) Migrate(ctx context.Context) error {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close()
	drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		drv.Close()
		return fmt.Errorf("migrations: %w", err)
	}
	// Close hands the driver's connection back to the pool; without it the
	// pool's Close would wait for it forever.
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction, rolled back with a context that outlives the
// caller's cancellation.
func (db *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return interpret(err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	rec := audit.From(ctx)
	if err := fn(tx); err != nil {
		rec.RolledBack()
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		rec.RolledBack()
		return interpret(err)
	}
	rec.Committed()
	return nil
}

// interpret converts pgx errors into apperr errors at the edge.
func interpret(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return apperr.Errorf(apperr.NotFound, "not found")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return &apperr.Error{Code: apperr.Conflict, Message: "already exists", Err: err}
		case "57014", "40001", "40P01": // query_canceled, serialization_failure, deadlock_detected
			return &apperr.Error{Code: apperr.Unavailable, Message: "the database could not complete the request; retry", Err: err}
		}
	}
	if pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return &apperr.Error{Code: apperr.Unavailable, Message: "the database is not reachable; retry", Err: err}
	}
	return err
}
