package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/instances"
)

const instanceColumns = `i.id, i.organization_id, coalesce(i.created_by, 0), i.element_key, i.name, i.auth_type,
	i.token_hash, i.tags, i.disabled, i.valid, coalesce(i.invalid_reason, ''), i.configuration,
	i.created_at, i.updated_at, c.key_id, c.ciphertext, c.token_expires_at, c.refreshed_at,
	c.due_at, coalesce(c.refresh_failures, 0), coalesce(c.last_refresh_error, ''), c.last_refresh_error_at`

const instanceFrom = ` FROM instances i LEFT JOIN instance_credentials c ON c.instance_id = i.id `

// aad binds a credentials ciphertext to its instance, so a ciphertext copied
// onto another row does not decrypt.
func aad(id int64) []byte { return []byte("connectord/instance/" + strconv.FormatInt(id, 10)) }

// CreateInstance stores a new instance and its sealed credentials in one transaction.
func (db *DB) CreateInstance(ctx context.Context, inst *instances.Instance) error {
	cfg, err := json.Marshal(inst.Config)
	if err != nil {
		return fmt.Errorf("store: configuration: %w", err)
	}
	return db.inTx(ctx, func(tx pgx.Tx) error {
		var createdBy any
		if inst.CreatedBy != 0 {
			createdBy = inst.CreatedBy
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO instances (organization_id, created_by, element_key, name, auth_type, token_hash, tags, disabled, valid, invalid_reason, configuration)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''), $11)
			RETURNING id, created_at, updated_at`,
			inst.OrganizationID, createdBy, inst.ElementKey, inst.Name, inst.AuthType, inst.TokenHash, inst.Tags,
			inst.Disabled, inst.Valid, inst.InvalidReason, cfg).Scan(&inst.ID, &inst.CreatedAt, &inst.UpdatedAt)
		if err != nil {
			return interpret(err)
		}
		return db.saveCredentials(ctx, tx, inst)
	})
}

// saveCredentials seals the instance's secrets under the current key.
func (db *DB) saveCredentials(ctx context.Context, tx pgx.Tx, inst *instances.Instance) error {
	plain, err := json.Marshal(inst.Secrets)
	if err != nil {
		return fmt.Errorf("store: credentials: %w", err)
	}
	keyID, ct, err := db.ring.Seal(plain, aad(inst.ID))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO instance_credentials (instance_id, key_id, ciphertext, token_expires_at, refreshed_at,
			due_at, refresh_failures, last_refresh_error, last_refresh_error_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), $9, now())
		ON CONFLICT (instance_id) DO UPDATE SET key_id = excluded.key_id, ciphertext = excluded.ciphertext,
			token_expires_at = excluded.token_expires_at, refreshed_at = excluded.refreshed_at,
			due_at = excluded.due_at, refresh_failures = excluded.refresh_failures,
			last_refresh_error = excluded.last_refresh_error, last_refresh_error_at = excluded.last_refresh_error_at,
			updated_at = now()`,
		inst.ID, keyID, ct, inst.TokenExpiresAt, inst.RefreshedAt,
		inst.RefreshDueAt, inst.RefreshFailures, inst.LastRefreshError, inst.LastRefreshErrorAt)
	return interpret(err)
}

func (db *DB) scanInstance(row pgx.Row) (*instances.Instance, error) {
	var inst instances.Instance
	var cfg []byte
	var keyID *string
	var ct []byte
	var expires, refreshed *time.Time
	err := row.Scan(&inst.ID, &inst.OrganizationID, &inst.CreatedBy, &inst.ElementKey, &inst.Name, &inst.AuthType,
		&inst.TokenHash, &inst.Tags, &inst.Disabled, &inst.Valid, &inst.InvalidReason, &cfg,
		&inst.CreatedAt, &inst.UpdatedAt, &keyID, &ct, &expires, &refreshed,
		&inst.RefreshDueAt, &inst.RefreshFailures, &inst.LastRefreshError, &inst.LastRefreshErrorAt)
	if err != nil {
		return nil, interpret(err)
	}
	inst.Config = map[string]*string{}
	if err := json.Unmarshal(cfg, &inst.Config); err != nil {
		return nil, fmt.Errorf("store: instance %d configuration: %w", inst.ID, err)
	}
	inst.Secrets = map[string]string{}
	if keyID != nil {
		plain, err := db.ring.Open(*keyID, ct, aad(inst.ID))
		if err != nil {
			return nil, fmt.Errorf("store: instance %d credentials: %w", inst.ID, err)
		}
		if err := json.Unmarshal(plain, &inst.Secrets); err != nil {
			return nil, fmt.Errorf("store: instance %d credentials: %w", inst.ID, err)
		}
	}
	inst.TokenExpiresAt, inst.RefreshedAt = expires, refreshed
	return &inst, nil
}

func notFound(id int64) error {
	return apperr.Errorf(apperr.NotFound, "no instance %d in this organization", id)
}

// Instance returns one instance of the organization.
func (db *DB) Instance(ctx context.Context, orgID, id int64) (*instances.Instance, error) {
	inst, err := db.scanInstance(db.pool.QueryRow(ctx, `SELECT `+instanceColumns+instanceFrom+`WHERE i.organization_id = $1 AND i.id = $2`, orgID, id))
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, notFound(id)
	}
	return inst, err
}

// Instances lists the organization's instances that carry every tag in tags.
func (db *DB) Instances(ctx context.Context, orgID int64, tags []string) ([]*instances.Instance, error) {
	if tags == nil {
		tags = []string{}
	}
	rows, err := db.pool.Query(ctx, `SELECT `+instanceColumns+instanceFrom+`WHERE i.organization_id = $1 AND i.tags @> $2 ORDER BY i.id`, orgID, tags)
	if err != nil {
		return nil, interpret(err)
	}
	defer rows.Close()
	var out []*instances.Instance
	for rows.Next() {
		inst, err := db.scanInstance(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, interpret(rows.Err())
}

// UpdateInstance locks the instance row, applies fn, and saves the instance and
// its credentials in the same transaction.
func (db *DB) UpdateInstance(ctx context.Context, orgID, id int64, fn func(*instances.Instance) error) (*instances.Instance, error) {
	var out *instances.Instance
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = db.updateLocked(ctx, tx, `SELECT id FROM instances WHERE organization_id = $1 AND id = $2 FOR UPDATE`, []any{orgID, id}, fn)
		if apperr.CodeOf(err) == apperr.NotFound {
			return notFound(id)
		}
		return err
	})
	return out, err
}

// UpdateInstanceByID is UpdateInstance for connectord's own background work,
// which acts for every organization.
func (db *DB) UpdateInstanceByID(ctx context.Context, id int64, fn func(*instances.Instance) error) (*instances.Instance, error) {
	var out *instances.Instance
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = db.updateLocked(ctx, tx, `SELECT id FROM instances WHERE id = $1 FOR UPDATE`, []any{id}, fn)
		return err
	})
	return out, err
}

// UpdateDueInstance claims one instance whose refresh is due at now,
// skipping instances another transaction holds (another worker or replica is on
// them), applies fn under the lock and saves what fn left. It reports whether
// there was one.
func (db *DB) UpdateDueInstance(ctx context.Context, now time.Time, fn func(*instances.Instance) error) (bool, error) {
	found := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		// The earliest due candidates come from the partial due_at index alone, so
		// the plan stays an index range scan whatever the statistics say; one of
		// them not locked by another worker or replica is then locked. The window
		// is wider than all the workers that can hold a lock at once.
		_, err := db.updateLocked(ctx, tx, `
			SELECT i.id
			FROM (SELECT instance_id, due_at FROM instance_credentials
			      WHERE due_at <= $1 ORDER BY due_at LIMIT 256) d
			JOIN instances i ON i.id = d.instance_id
			ORDER BY d.due_at
			LIMIT 1
			FOR UPDATE OF i SKIP LOCKED`, []any{now}, fn)
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// updateLocked runs lockQuery (which must lock and return one instance id),
// reads that instance, applies fn and saves the result, all in tx.
//
// It locks first and reads after: a SELECT … FOR UPDATE that waits re-reads only
// the locked row, not the credentials joined to it, so reading in the same
// statement could return credentials another transaction just replaced.
func (db *DB) updateLocked(ctx context.Context, tx pgx.Tx, lockQuery string, args []any, fn func(*instances.Instance) error) (*instances.Instance, error) {
	var id int64
	if err := tx.QueryRow(ctx, lockQuery, args...).Scan(&id); err != nil {
		return nil, interpret(err)
	}
	inst, err := db.scanInstance(tx.QueryRow(ctx, `SELECT `+instanceColumns+instanceFrom+`WHERE i.id = $1`, id))
	if err != nil {
		return nil, err
	}
	wasValid := inst.Valid
	if err := fn(inst); errors.Is(err, instances.ErrUnchanged) {
		return inst, nil
	} else if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(inst.Config)
	if err != nil {
		return nil, fmt.Errorf("store: configuration: %w", err)
	}
	err = tx.QueryRow(ctx, `
		UPDATE instances SET name = $2, auth_type = $3, tags = $4, disabled = $5, valid = $6,
			invalid_reason = nullif($7, ''), configuration = $8, updated_at = now()
		WHERE id = $1 RETURNING updated_at`,
		inst.ID, inst.Name, inst.AuthType, inst.Tags, inst.Disabled, inst.Valid, inst.InvalidReason, cfg).Scan(&inst.UpdatedAt)
	if err != nil {
		return nil, interpret(err)
	}
	if err := db.saveCredentials(ctx, tx, inst); err != nil {
		return nil, err
	}
	if wasValid && !inst.Valid && eventsEnabled(inst) {
		// The consumer hears once, in the same transaction, that no more
		// events will come until the instance is repaired.
		evs, raw, err := events.InstanceInvalid(inst.ElementKey, inst.ID, inst.InvalidReason, time.Now())
		if err != nil {
			return nil, fmt.Errorf("store: invalid-instance notification: %w", err)
		}
		if _, err := enqueueTx(ctx, tx, inst.ID, evs, func(int, int) json.RawMessage { return raw }); err != nil {
			return nil, err
		}
	}
	return inst, nil
}

func eventsEnabled(inst *instances.Instance) bool {
	v := inst.Config[instances.KeyEventsEnabled]
	return v != nil && *v == "true"
}

// DeleteInstance removes an instance; its credentials go with it.
func (db *DB) DeleteInstance(ctx context.Context, orgID, id int64) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM instances WHERE organization_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return interpret(err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(id)
	}
	return nil
}

// KeyIDsInUse lists the encryption key ids that sealed stored credentials, with
// how many instances each sealed.
func (db *DB) KeyIDsInUse(ctx context.Context) (map[string]int, error) {
	// Keap apps and connect sessions are sealed with the same ring; their
	// keys count as "sealed instances" in the startup check's message.
	rows, err := db.pool.Query(ctx, `
		SELECT key_id, count(*) FROM (
			SELECT key_id FROM instance_credentials
			UNION ALL SELECT key_id FROM organization_oauth_apps
			UNION ALL SELECT key_id FROM connect_sessions WHERE key_id IS NOT NULL
			UNION ALL SELECT token_key_id FROM connect_sessions WHERE token_key_id IS NOT NULL) k
		GROUP BY key_id`)
	if err != nil {
		return nil, interpret(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, interpret(err)
		}
		out[id] = n
	}
	return out, interpret(rows.Err())
}

// ResealCredentials re-encrypts, under the current key, every instance's
// credentials that an older key sealed, one instance per transaction, and the
// organizations' Keap app secrets and connect sessions. It returns how many instances it re-encrypted.
func (db *DB) ResealCredentials(ctx context.Context) (int, error) {
	if err := db.resealOAuthApps(ctx); err != nil {
		return 0, err
	}
	if err := db.resealSessions(ctx); err != nil {
		return 0, err
	}
	n := 0
	for {
		var id, org int64
		err := db.pool.QueryRow(ctx, `
			SELECT i.id, i.organization_id FROM instance_credentials c JOIN instances i ON i.id = c.instance_id
			WHERE c.key_id <> $1 ORDER BY i.id LIMIT 1`, db.ring.CurrentID()).Scan(&id, &org)
		if apperr.CodeOf(interpret(err)) == apperr.NotFound {
			return n, nil
		}
		if err != nil {
			return n, interpret(err)
		}
		if _, err := db.UpdateInstance(ctx, org, id, func(*instances.Instance) error { return nil }); err != nil {
			return n, fmt.Errorf("re-encrypt instance %d: %w", id, err)
		}
		n++
	}
}
