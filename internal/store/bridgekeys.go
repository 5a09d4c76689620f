package store

import (
	"context"
	"time"

	"github.com/connectord/connectord/internal/apperr"
)

// SetBridgeKey stores the hash of an instance's new bridge key, replacing the
// one it had; the instance must be the organization's.
func (db *DB) SetBridgeKey(ctx context.Context, orgID, instanceID int64, hash []byte) (time.Time, error) {
	var created time.Time
	err := db.pool.QueryRow(ctx, `
		INSERT INTO instance_bridge_keys (instance_id, key_hash)
		SELECT id, $3 FROM instances WHERE id = $1 AND organization_id = $2
		ON CONFLICT (instance_id) DO UPDATE SET key_hash = EXCLUDED.key_hash, created_at = now()
		RETURNING created_at`, instanceID, orgID, hash).Scan(&created)
	if err := interpret(err); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return time.Time{}, notFound(instanceID)
		}
		return time.Time{}, err
	}
	return created, nil
}

// InstanceByBridgeKeyHash finds the instance, and its organization, a bridge key belongs to.
func (db *DB) InstanceByBridgeKeyHash(ctx context.Context, hash []byte) (int64, int64, error) {
	var id, org int64
	err := db.pool.QueryRow(ctx, `
		SELECT i.id, i.organization_id FROM instance_bridge_keys k JOIN instances i ON i.id = k.instance_id
		WHERE k.key_hash = $1`, hash).Scan(&id, &org)
	if err := interpret(err); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return 0, 0, apperr.Errorf(apperr.NotFound, "no instance has that bridge key")
		}
		return 0, 0, err
	}
	return id, org, nil
}
