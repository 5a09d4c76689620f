package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
)

// CreateOrganization stores an organization and its first user together.
func (db *DB) CreateOrganization(ctx context.Context, name string, orgSecretHash []byte, email string, userSecretHash []byte) (tenants.Organization, tenants.User, error) {
	var org tenants.Organization
	var user tenants.User
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO organizations (name, secret_hash) VALUES ($1, $2) RETURNING id, name`,
			name, orgSecretHash).Scan(&org.ID, &org.Name); err != nil {
			return interpret(err)
		}
		user.OrganizationID = org.ID
		if err := tx.QueryRow(ctx, `INSERT INTO users (organization_id, email, secret_hash) VALUES ($1, $2, $3) RETURNING id, email`,
			org.ID, email, userSecretHash).Scan(&user.ID, &user.Email); err != nil {
			return interpret(err)
		}
		return auditTx(ctx, tx, org.ID, org.ID)
	})
	return org, user, err
}

// UserBySecretHash finds a user by the hash of their secret.
func (db *DB) UserBySecretHash(ctx context.Context, hash []byte) (tenants.UserRecord, error) {
	var u tenants.UserRecord
	err := db.pool.QueryRow(ctx, `
		SELECT u.id, u.organization_id, u.email, o.secret_hash
		FROM users u JOIN organizations o ON o.id = u.organization_id
		WHERE u.secret_hash = $1`, hash).Scan(&u.ID, &u.OrganizationID, &u.Email, &u.OrganizationSecretHash)
	return u, interpret(err)
}

// InstanceByTokenHash finds an instance by the hash of its token.
func (db *DB) InstanceByTokenHash(ctx context.Context, hash []byte) (int64, int64, error) {
	var id, org int64
	err := db.pool.QueryRow(ctx, `SELECT id, organization_id FROM instances WHERE token_hash = $1`, hash).Scan(&id, &org)
	if err := interpret(err); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return 0, 0, apperr.Errorf(apperr.NotFound, "no instance has that token")
		}
		return 0, 0, err
	}
	return id, org, nil
}
