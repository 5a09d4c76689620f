package tenants

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/secrets"
)

// ConsoleSession is a person signed in to the web console.
type ConsoleSession struct {
	Principal        Principal
	Email            string
	OrganizationName string
	ExpiresAt        time.Time
}

// SessionStore is what console sessions need from the database.
type SessionStore interface {
	UserBySecretHash(ctx context.Context, hash []byte) (UserRecord, error)
	CreateConsoleSession(ctx context.Context, tokenHash []byte, p Principal, expires time.Time) error
	ConsoleSession(ctx context.Context, tokenHash []byte, now time.Time) (ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, tokenHash []byte) error
}

// Sessions signs people in to the console with the same user and
// organization secrets the API takes, and keeps their sessions: a random
// token the browser holds in a cookie, stored here as its hash only, which
// ends after a fixed lifetime or at sign-out.
type Sessions struct {
	store SessionStore
	ttl   time.Duration
	now   func() time.Time
}

// NewSessions returns Sessions whose sessions last ttl.
func NewSessions(store SessionStore, ttl time.Duration, now func() time.Time) *Sessions {
	return &Sessions{store: store, ttl: ttl, now: now}
}

// errSignIn is the one answer to every failed sign-in: it does not say which
// secret was wrong, so the form cannot be used to test one secret at a time.
var errSignIn = apperr.Errorf(apperr.Unauthorized, "the user secret and organization secret do not match a user of an organization; paste both as `connectord orgs create` printed them")

// SignIn checks a user secret and its organization's secret and starts a
// session. The returned token is the session's only copy in clear: the caller
// puts it in the cookie and forgets it. A refused sign-in whose user secret
// is one of an organization's users returns that organization (and nothing
// else) in sess.Principal, for its audit log; the answer to the person stays
// errSignIn.
func (s *Sessions) SignIn(ctx context.Context, userSecret, orgSecret string) (token string, sess ConsoleSession, err error) {
	userSecret, orgSecret = strings.TrimSpace(userSecret), strings.TrimSpace(orgSecret)
	if userSecret == "" || orgSecret == "" {
		var missing []string
		if userSecret == "" {
			missing = append(missing, "user secret")
		}
		if orgSecret == "" {
			missing = append(missing, "organization secret")
		}
		return "", sess, apperr.Errorf(apperr.Invalid, "sign in needs the %s", strings.Join(missing, " and the "))
	}
	u, err := s.store.UserBySecretHash(ctx, secrets.Hash(userSecret))
	if apperr.CodeOf(err) == apperr.NotFound {
		return "", sess, errSignIn
	}
	if err != nil {
		return "", sess, fmt.Errorf("sign in: %w", err)
	}
	if !secrets.Equal(secrets.Hash(orgSecret), u.OrganizationSecretHash) {
		sess.Principal.OrganizationID = u.OrganizationID
		return "", sess, errSignIn
	}
	token = secrets.NewToken()
	p := Principal{OrganizationID: u.OrganizationID, UserID: u.ID}
	expires := s.now().Add(s.ttl)
	if err := s.store.CreateConsoleSession(ctx, secrets.Hash(token), p, expires); err != nil {
		return "", sess, fmt.Errorf("sign in: %w", err)
	}
	sess, err = s.store.ConsoleSession(ctx, secrets.Hash(token), s.now())
	if err != nil {
		return "", sess, fmt.Errorf("sign in: %w", err)
	}
	return token, sess, nil
}

// Session returns the live session a token names; an unknown or expired one
// is apperr.Unauthorized.
func (s *Sessions) Session(ctx context.Context, token string) (ConsoleSession, error) {
	if token == "" {
		return ConsoleSession{}, apperr.Errorf(apperr.Unauthorized, "not signed in")
	}
	return s.store.ConsoleSession(ctx, secrets.Hash(token), s.now())
}

// SignOut ends the session a token names.
func (s *Sessions) SignOut(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	return s.store.DeleteConsoleSession(ctx, secrets.Hash(token))
}

// CSRFToken is the anti-forgery token of the session a token names: every
// console form carries it and every POST must send it back. It is derived
// from the session token by a one-way hash, so a page that shows it gives
// nothing away, and it needs no storage of its own.
func CSRFToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("connectord console csrf\x00" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
