package store

import (
	"context"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
)

// CreateConsoleSession stores a console session by the hash of its token, and
// deletes the sessions that have expired, so the table holds live ones only.
func (db *DB) CreateConsoleSession(ctx context.Context, tokenHash []byte, p tenants.Principal, expires time.Time) error {
	_, err := db.pool.Exec(ctx, `
		WITH gone AS (DELETE FROM console_sessions WHERE expires_at < now())
		INSERT INTO console_sessions (token_hash, user_id, organization_id, expires_at) VALUES ($1, $2, $3, $4)`,
		tokenHash, p.UserID, p.OrganizationID, expires)
	return interpret(err)
}

// ConsoleSession finds a session that has not expired by the hash of its
// token, with the email of its user.
func (db *DB) ConsoleSession(ctx context.Context, tokenHash []byte, now time.Time) (tenants.ConsoleSession, error) {
	var s tenants.ConsoleSession
	err := db.pool.QueryRow(ctx, `
		SELECT s.user_id, s.organization_id, u.email, o.name, s.expires_at
		FROM console_sessions s JOIN users u ON u.id = s.user_id JOIN organizations o ON o.id = s.organization_id
		WHERE s.token_hash = $1 AND s.expires_at > $2`, tokenHash, now).
		Scan(&s.Principal.UserID, &s.Principal.OrganizationID, &s.Email, &s.OrganizationName, &s.ExpiresAt)
	if err := interpret(err); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return s, apperr.Errorf(apperr.Unauthorized, "no console session has that token, or it expired")
		}
		return s, err
	}
	return s, nil
}

// DeleteConsoleSession ends a session; ending one that is gone is not an error.
func (db *DB) DeleteConsoleSession(ctx context.Context, tokenHash []byte) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, tokenHash)
	return interpret(err)
}
