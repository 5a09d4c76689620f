package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/connect"
	"github.com/connectord/connectord/internal/events"
)

// appAAD binds a Keap app's sealed secret to its organization and element.
func appAAD(orgID int64, elementKey string) []byte {
	return []byte("connectord/oauth-app/" + strconv.FormatInt(orgID, 10) + "/" + elementKey)
}

// sessionAAD binds a connect session's sealed configuration (what) or
// instance token to the session.
func sessionAAD(id int64, what string) []byte {
	return []byte("connectord/connect-session/" + strconv.FormatInt(id, 10) + "/" + what)
}

// PutOAuthApp stores an organization's Keap app for an element, its secret sealed.
func (db *DB) PutOAuthApp(ctx context.Context, orgID int64, app connect.App) (connect.App, error) {
	keyID, ct, err := db.ring.Seal([]byte(app.ClientSecret), appAAD(orgID, app.ElementKey))
	if err != nil {
		return connect.App{}, err
	}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		return interpret(tx.QueryRow(ctx, `
			INSERT INTO organization_oauth_apps (organization_id, element_key, client_id, key_id, ciphertext)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (organization_id, element_key) DO UPDATE SET client_id = excluded.client_id,
				key_id = excluded.key_id, ciphertext = excluded.ciphertext, updated_at = now()
			RETURNING created_at, updated_at`,
			orgID, app.ElementKey, app.ClientID, keyID, ct).Scan(&app.CreatedAt, &app.UpdatedAt))
	})
	return app, err
}

// OAuthApp returns an organization's Keap app for an element, its secret opened.
func (db *DB) OAuthApp(ctx context.Context, orgID int64, elementKey string) (connect.App, error) {
	app := connect.App{ElementKey: elementKey}
	var keyID string
	var ct []byte
	err := db.pool.QueryRow(ctx, `
		SELECT client_id, key_id, ciphertext, created_at, updated_at FROM organization_oauth_apps
		WHERE organization_id = $1 AND element_key = $2`, orgID, elementKey).
		Scan(&app.ClientID, &keyID, &ct, &app.CreatedAt, &app.UpdatedAt)
	if err != nil {
		return app, interpret(err)
	}
	plain, err := db.ring.Open(keyID, ct, appAAD(orgID, elementKey))
	if err != nil {
		return app, fmt.Errorf("store: Keap app of organization %d for %s: %w", orgID, elementKey, err)
	}
	app.ClientSecret = string(plain)
	return app, nil
}

// DeleteOAuthApp removes an organization's Keap app for an element.
func (db *DB) DeleteOAuthApp(ctx context.Context, orgID int64, elementKey string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM organization_oauth_apps WHERE organization_id = $1 AND element_key = $2`, orgID, elementKey)
	if err != nil {
		return interpret(err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.Errorf(apperr.NotFound, "not found")
	}
	return nil
}

// sessionRetention is how long a connect session is kept after it expired:
// long enough for an application to read a late outcome, short enough that an
// unread instance token does not stay forever.
const sessionRetention = 30 * 24 * time.Hour

// CreateSession stores a new connect session, its configuration sealed. It
// deletes the organization's sessions that expired more than sessionRetention
// ago, in the same transaction, so sessions do not pile up.
func (db *DB) CreateSession(ctx context.Context, s *connect.Session) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM connect_sessions WHERE organization_id = $1 AND expires_at < $2`,
			s.OrganizationID, time.Now().Add(-sessionRetention)); err != nil {
			return interpret(err)
		}
		var createdBy, instanceID any
		if s.CreatedBy != 0 {
			createdBy = s.CreatedBy
		}
		if s.InstanceID != 0 {
			instanceID = s.InstanceID
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO connect_sessions (organization_id, created_by, element_key, instance_id, reconnect, name, tags,
				redirect_url, token_hash, status, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			RETURNING id, created_at`,
			s.OrganizationID, createdBy, s.ElementKey, instanceID, s.Reconnect, s.Name, s.Tags,
			s.RedirectURL, s.TokenHash, s.Status, s.ExpiresAt).Scan(&s.ID, &s.CreatedAt)
		if err != nil {
			return interpret(err)
		}
		if len(s.Configuration) == 0 {
			return nil
		}
		plain, err := json.Marshal(s.Configuration)
		if err != nil {
			return fmt.Errorf("store: session configuration: %w", err)
		}
		keyID, ct, err := db.ring.Seal(plain, sessionAAD(s.ID, "configuration"))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE connect_sessions SET key_id = $2, ciphertext = $3 WHERE id = $1`, s.ID, keyID, ct)
		return interpret(err)
	})
}

const sessionColumns = `s.id, s.organization_id, coalesce(s.created_by, 0), s.element_key, coalesce(s.instance_id, 0),
	s.reconnect, s.name, s.tags, s.redirect_url, s.token_hash, s.browser_hash, s.status, coalesce(s.error, ''), coalesce(s.error_message, ''),
	s.key_id, s.ciphertext, s.token_key_id, s.token_ciphertext, s.token_read_at IS NOT NULL,
	s.expires_at, s.completed_at, s.created_at, o.name`

const sessionFrom = ` FROM connect_sessions s JOIN organizations o ON o.id = s.organization_id `

// scanSession reads a session row and opens its sealed parts.
func (db *DB) scanSession(row pgx.Row) (*connect.Session, error) {
	var s connect.Session
	var keyID, tokenKeyID *string
	var ct, tokenCT []byte
	err := row.Scan(&s.ID, &s.OrganizationID, &s.CreatedBy, &s.ElementKey, &s.InstanceID,
		&s.Reconnect, &s.Name, &s.Tags, &s.RedirectURL, &s.TokenHash, &s.BrowserHash, &s.Status, &s.Error, &s.ErrorMessage,
		&keyID, &ct, &tokenKeyID, &tokenCT, &s.TokenRead,
		&s.ExpiresAt, &s.CompletedAt, &s.CreatedAt, &s.OrganizationName)
	if err != nil {
		return nil, interpret(err)
	}
	if keyID != nil {
		plain, err := db.ring.Open(*keyID, ct, sessionAAD(s.ID, "configuration"))
		if err != nil {
			return nil, fmt.Errorf("store: connect session %d configuration: %w", s.ID, err)
		}
		if err := json.Unmarshal(plain, &s.Configuration); err != nil {
			return nil, fmt.Errorf("store: connect session %d configuration: %w", s.ID, err)
		}
	}
	if tokenKeyID != nil {
		plain, err := db.ring.Open(*tokenKeyID, tokenCT, sessionAAD(s.ID, "instance-token"))
		if err != nil {
			return nil, fmt.Errorf("store: connect session %d instance token: %w", s.ID, err)
		}
		s.InstanceToken = string(plain)
	}
	return &s, nil
}

// SessionByToken returns the session whose token hashes to tokenHash.
func (db *DB) SessionByToken(ctx context.Context, tokenHash []byte) (*connect.Session, error) {
	return db.scanSession(db.pool.QueryRow(ctx, `SELECT `+sessionColumns+sessionFrom+`WHERE s.token_hash = $1`, tokenHash))
}

// BindBrowser records the hash of the connect page's cookie on a pending session.
func (db *DB) BindBrowser(ctx context.Context, id int64, browserHash []byte) error {
	tag, err := db.pool.Exec(ctx, `UPDATE connect_sessions SET browser_hash = $2 WHERE id = $1 AND status = 'pending'`, id, browserHash)
	if err != nil {
		return interpret(err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.Errorf(apperr.Gone, "this connect link was already used: ask your application for a new one")
	}
	return nil
}

// StartAuthorize stores a new state hash on a pending session bound to
// browserHash. It answers NotFound when the session is not bound to that
// browser and Conflict when it is no longer pending.
func (db *DB) StartAuthorize(ctx context.Context, id int64, browserHash, stateHash []byte) (*connect.Session, error) {
	var out *connect.Session
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		s, err := db.scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+sessionFrom+`WHERE s.id = $1 AND s.browser_hash = $2 FOR UPDATE OF s`, id, browserHash))
		if err != nil {
			return err
		}
		if s.Status != connect.StatusPending {
			return apperr.Errorf(apperr.Conflict, "session %d is %s", id, s.Status)
		}
		if _, err := tx.Exec(ctx, `UPDATE connect_sessions SET state_hash = $2 WHERE id = $1`, id, stateHash); err != nil {
			return interpret(err)
		}
		out = s
		return nil
	})
	return out, err
}

// ConsumeState clears the state hash of the session holding it and, when
// check accepts the session, marks it connecting, in one transaction.
func (db *DB) ConsumeState(ctx context.Context, stateHash []byte, check func(*connect.Session) error) (*connect.Session, error) {
	var out *connect.Session
	var refused error
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		s, err := db.scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+sessionFrom+`WHERE s.state_hash = $1 FOR UPDATE OF s`, stateHash))
		if err != nil {
			return err
		}
		status := s.Status
		if refused = check(s); refused == nil && status == connect.StatusPending {
			status = connect.StatusConnecting
		}
		_, err = tx.Exec(ctx, `UPDATE connect_sessions SET state_hash = NULL, status = $2 WHERE id = $1`, s.ID, status)
		if err != nil {
			return interpret(err)
		}
		if s.Status != connect.StatusPending {
			refused = apperr.Errorf(apperr.NotFound, "session %d is %s", s.ID, s.Status)
		}
		s.Status = status
		out = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, refused
}

// FinishSession saves how a session ended and deletes its sealed
// configuration, no longer needed; with o.Notify it queues the instance's
// "created" or "reconnected" notification, when the instance has events on,
// in the same transaction.
func (db *DB) FinishSession(ctx context.Context, id int64, o connect.Outcome) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		var reconnect bool
		var instanceID any
		if o.InstanceID != 0 {
			instanceID = o.InstanceID
		}
		err := tx.QueryRow(ctx, `
			UPDATE connect_sessions SET status = $2, error = nullif($3, ''), error_message = nullif($5, ''),
				instance_id = coalesce($4, instance_id), state_hash = NULL, completed_at = now(), key_id = NULL, ciphertext = NULL
			WHERE id = $1 RETURNING reconnect`, id, o.Status, o.Error, instanceID, o.Message).Scan(&reconnect)
		if err != nil {
			return interpret(err)
		}
		if o.InstanceToken != "" {
			keyID, ct, err := db.ring.Seal([]byte(o.InstanceToken), sessionAAD(id, "instance-token"))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE connect_sessions SET token_key_id = $2, token_ciphertext = $3 WHERE id = $1`, id, keyID, ct); err != nil {
				return interpret(err)
			}
		}
		if !o.Notify || o.InstanceID == 0 {
			return nil
		}
		var elementKey string
		var enabled *string
		err = tx.QueryRow(ctx, `SELECT element_key, configuration->>'event.notification.enabled' FROM instances WHERE id = $1`, o.InstanceID).Scan(&elementKey, &enabled)
		if err != nil {
			return interpret(err)
		}
		if enabled == nil || *enabled != "true" {
			return nil
		}
		evs, raw, err := events.InstanceConnected(elementKey, o.InstanceID, reconnect, time.Now())
		if err != nil {
			return fmt.Errorf("store: instance notification: %w", err)
		}
		_, err = enqueueTx(ctx, tx, o.InstanceID, evs, func(int, int) json.RawMessage { return raw })
		return err
	})
}

// ReadSession returns one of the organization's sessions. A created
// instance's token comes with it once: reading it deletes it.
func (db *DB) ReadSession(ctx context.Context, orgID, id int64) (*connect.Session, error) {
	var out *connect.Session
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		s, err := db.scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+sessionFrom+`WHERE s.organization_id = $1 AND s.id = $2 FOR UPDATE OF s`, orgID, id))
		if err != nil {
			return err
		}
		if s.InstanceToken != "" {
			if _, err := tx.Exec(ctx, `UPDATE connect_sessions SET token_key_id = NULL, token_ciphertext = NULL, token_read_at = now() WHERE id = $1`, id); err != nil {
				return interpret(err)
			}
		}
		out = s
		return nil
	})
	return out, err
}

// resealOAuthApps re-encrypts under the current key the Keap app secrets an
// older key sealed, one app per transaction.
func (db *DB) resealOAuthApps(ctx context.Context) error {
	for {
		var org int64
		var el string
		err := db.pool.QueryRow(ctx, `SELECT organization_id, element_key FROM organization_oauth_apps WHERE key_id <> $1 LIMIT 1`,
			db.ring.CurrentID()).Scan(&org, &el)
		if apperr.CodeOf(interpret(err)) == apperr.NotFound {
			return nil
		}
		if err != nil {
			return interpret(err)
		}
		app, err := db.OAuthApp(ctx, org, el)
		if err != nil {
			return fmt.Errorf("re-encrypt the Keap app of organization %d for %s: %w", org, el, err)
		}
		if _, err := db.PutOAuthApp(ctx, org, app); err != nil {
			return fmt.Errorf("re-encrypt the Keap app of organization %d for %s: %w", org, el, err)
		}
	}
}

// resealSessions re-encrypts under the current key the sealed parts of
// connect sessions an older key sealed, one session per transaction.
func (db *DB) resealSessions(ctx context.Context) error {
	cur := db.ring.CurrentID()
	for {
		var id int64
		err := db.pool.QueryRow(ctx, `SELECT id FROM connect_sessions WHERE key_id <> $1 OR token_key_id <> $1 LIMIT 1`, cur).Scan(&id)
		if apperr.CodeOf(interpret(err)) == apperr.NotFound {
			return nil
		}
		if err != nil {
			return interpret(err)
		}
		err = db.inTx(ctx, func(tx pgx.Tx) error {
			s, err := db.scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+sessionFrom+`WHERE s.id = $1 FOR UPDATE OF s`, id))
			if err != nil {
				return err
			}
			var keyID, tokenKeyID *string
			var ct, tokenCT []byte
			if s.Configuration != nil {
				plain, err := json.Marshal(s.Configuration)
				if err != nil {
					return err
				}
				k, c, err := db.ring.Seal(plain, sessionAAD(id, "configuration"))
				if err != nil {
					return err
				}
				keyID, ct = &k, c
			}
			if s.InstanceToken != "" {
				k, c, err := db.ring.Seal([]byte(s.InstanceToken), sessionAAD(id, "instance-token"))
				if err != nil {
					return err
				}
				tokenKeyID, tokenCT = &k, c
			}
			_, err = tx.Exec(ctx, `UPDATE connect_sessions SET key_id = $2, ciphertext = $3, token_key_id = $4, token_ciphertext = $5 WHERE id = $1`,
				id, keyID, ct, tokenKeyID, tokenCT)
			return interpret(err)
		})
		if err != nil {
			return fmt.Errorf("re-encrypt connect session %d: %w", id, err)
		}
	}
}
