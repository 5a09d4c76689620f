package tenants

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// maxCached bounds the authentication cache; past it, expired entries are
// dropped, and everything when none has expired.
const maxCached = 10000

// authenticator is what AuthCache remembers the answers of (a *Service).
type authenticator interface {
	Authenticate(ctx context.Context, c Credentials, need Need) (Principal, error)
}

// AuthCache remembers successful authentications for a short time, so that
// calls sent all day with the same Authorization header (the hubs, the proxy)
// do not each cost the database queries that check the secrets. A secret or
// instance token that stops being valid keeps authenticating in this process
// for up to the TTL; refusals are never remembered. Entries are keyed by a
// SHA-256 of the credentials, never the credentials themselves.
type AuthCache struct {
	next authenticator
	ttl  time.Duration
	now  func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedPrincipal
}

type cachedPrincipal struct {
	p       Principal
	expires time.Time
}

// NewAuthCache returns next with successful answers remembered for ttl.
func NewAuthCache(next authenticator, ttl time.Duration, now func() time.Time) *AuthCache {
	return &AuthCache{next: next, ttl: ttl, now: now, m: map[[sha256.Size]byte]cachedPrincipal{}}
}

// Authenticate answers from the cache when it can, else asks next.
func (c *AuthCache) Authenticate(ctx context.Context, cr Credentials, need Need) (Principal, error) {
	if c.ttl <= 0 {
		return c.next.Authenticate(ctx, cr, need)
	}
	h := sha256.New()
	for _, part := range []string{cr.User, cr.Organization, cr.Element} {
		h.Write([]byte(part))
		h.Write([]byte{0}) // header values cannot hold NUL, so parts cannot run together
	}
	h.Write([]byte{byte(need)})
	var key [sha256.Size]byte
	h.Sum(key[:0])

	c.mu.Lock()
	hit, ok := c.m[key]
	c.mu.Unlock()
	if ok && c.now().Before(hit.expires) {
		return hit.p, nil
	}
	p, err := c.next.Authenticate(ctx, cr, need)
	if err != nil {
		return p, err
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCached {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCached {
			clear(c.m)
		}
	}
	c.m[key] = cachedPrincipal{p: p, expires: now.Add(c.ttl)}
	return p, nil
}
