// Package tenants owns organizations (connectord's tenants), their users, and the
// authentication of API callers from the Open Connectors Authorization header:
// `User <secret>, Organization <secret>` or `User <secret>, Element <token>`.
//
// It must not keep any secret in clear beyond the call that creates it: secrets
// are generated here, shown once, and stored as hashes.
package tenants

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/secrets"
)

// Organization is a tenant.
type Organization struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// User belongs to one organization.
type User struct {
	ID             int64  `json:"id"`
	OrganizationID int64  `json:"-"`
	Email          string `json:"email"`
}

// Principal is who an authenticated request acts as.
type Principal struct {
	OrganizationID int64
	UserID         int64
	InstanceID     int64 // set when the request carried an Element token
}

// UserRecord is a user as stored, with the hashes authentication checks.
type UserRecord struct {
	User
	OrganizationSecretHash []byte
}

// Store is what this package needs from the database.
type Store interface {
	CreateOrganization(ctx context.Context, name string, orgSecretHash []byte, email string, userSecretHash []byte) (Organization, User, error)
	UserBySecretHash(ctx context.Context, hash []byte) (UserRecord, error)
	// InstanceByTokenHash returns the instance id and organization id for an instance token.
	InstanceByTokenHash(ctx context.Context, hash []byte) (instanceID, organizationID int64, err error)
}

// Service creates organizations and authenticates callers.
type Service struct {
	store Store
}

// NewService returns a Service over store.
func NewService(store Store) *Service { return &Service{store: store} }

// CreatedOrganization is the one-time view of a new organization and its first user,
// with their secrets.
type CreatedOrganization struct {
	Organization struct {
		Organization
		Secret string `json:"secret"`
	} `json:"organization"`
	User struct {
		User
		Secret string `json:"secret"`
	} `json:"user"`
}

// CreateOrganization creates an organization with one user and returns both
// secrets; this is the only time they exist in clear.
func (s *Service) CreateOrganization(ctx context.Context, name, email string) (CreatedOrganization, error) {
	var out CreatedOrganization
	name = strings.TrimSpace(name)
	if name == "" {
		return out, apperr.Errorf(apperr.Invalid, "organization name is required (--name)")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != strings.TrimSpace(email) {
		return out, apperr.Errorf(apperr.Invalid, "user email %q is not a valid email address (--email)", email)
	}
	orgSecret, userSecret := secrets.NewToken(), secrets.NewToken()
	org, user, err := s.store.CreateOrganization(ctx, name, secrets.Hash(orgSecret), addr.Address, secrets.Hash(userSecret))
	if err != nil {
		return out, fmt.Errorf("create organization: %w", err)
	}
	out.Organization.Organization, out.Organization.Secret = org, orgSecret
	out.User.User, out.User.Secret = user, userSecret
	return out, nil
}

// Need says which parts of the Authorization header a call requires.
type Need int

// The kinds of calls.
const (
	NeedOrganization Need = iota // platform calls: User and Organization
	NeedElement                  // instance calls: User and Element (Organization optional)
)

// Authenticate checks credentials parsed from an Authorization header.
func (s *Service) Authenticate(ctx context.Context, c Credentials, need Need) (Principal, error) {
	switch need {
	case NeedOrganization:
		if c.Organization == "" {
			return Principal{}, apperr.Errorf(apperr.Unauthorized, "the Authorization header has no Organization part: send 'User <user secret>, Organization <organization secret>'")
		}
	case NeedElement:
		if c.Element == "" {
			return Principal{}, apperr.Errorf(apperr.Unauthorized, "the Authorization header has no Element part: send 'User <user secret>, Element <instance token>'")
		}
	}
	u, err := s.store.UserBySecretHash(ctx, secrets.Hash(c.User))
	if apperr.CodeOf(err) == apperr.NotFound {
		return Principal{}, apperr.Errorf(apperr.Unauthorized, "the User secret in the Authorization header is not valid")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	p := Principal{OrganizationID: u.OrganizationID, UserID: u.ID}
	if c.Organization != "" && !secrets.Equal(secrets.Hash(c.Organization), u.OrganizationSecretHash) {
		return Principal{}, apperr.Errorf(apperr.Unauthorized, "the Organization secret in the Authorization header is not valid for this user")
	}
	if c.Element != "" {
		id, orgID, err := s.store.InstanceByTokenHash(ctx, secrets.Hash(c.Element))
		if apperr.CodeOf(err) == apperr.NotFound || (err == nil && orgID != u.OrganizationID) {
			return Principal{}, apperr.Errorf(apperr.Unauthorized, "the Element token in the Authorization header is not valid for this user's organization")
		}
		if err != nil {
			return Principal{}, fmt.Errorf("authenticate element: %w", err)
		}
		p.InstanceID = id
	}
	return p, nil
}
