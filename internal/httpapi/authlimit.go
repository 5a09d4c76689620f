package httpapi

import (
	"context"
	"crypto/sha256"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
)

// maxSources bounds how many source addresses the failure limiter remembers;
// past it, the addresses whose allowance is full again are forgotten, and
// every address when none is.
const maxSources = 10000

// knownGood is how many credentials that once succeeded from a source the
// limiter remembers for it (as SHA-256 hashes).
const knownGood = 8

// failureLimiter is an authenticator that refuses, cheaply, the callers of a
// source address that keeps failing to authenticate: each failure spends one
// token of that address's bucket (perMinute a minute, as many at once), and
// an address with an empty bucket is answered 429 with Retry-After before any
// database lookup. Successes spend nothing, and credentials that already
// succeeded from that address still go through while it is refused, so a
// guessing neighbour behind the same address does not lock out the users
// who work there. IPv6 sources are counted per /64, which one host usually
// holds whole.
type failureLimiter struct {
	next  authenticator
	every rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	sources map[netip.Prefix]*source
}

type source struct {
	failures *rate.Limiter
	good     [knownGood][sha256.Size]byte
	goods    int
}

// limitAuthFailures wraps auth; perMinute ≤ 0 leaves it as it is.
func limitAuthFailures(auth authenticator, perMinute int) authenticator {
	if perMinute <= 0 || auth == nil {
		return auth
	}
	return &failureLimiter{next: auth, every: rate.Limit(float64(perMinute) / 60), burst: perMinute,
		now: time.Now, sources: map[netip.Prefix]*source{}}
}

func (l *failureLimiter) Authenticate(ctx context.Context, c tenants.Credentials, need tenants.Need) (tenants.Principal, error) {
	from, ok := sourceOf(ctx)
	if !ok {
		return l.next.Authenticate(ctx, c, need)
	}
	fp := fingerprint(c, need)
	now := l.now()
	l.mu.Lock()
	s := l.sources[from]
	if s != nil && s.failures.TokensAt(now) < 1 && !s.knows(fp) {
		wait := time.Duration((1 - s.failures.TokensAt(now)) / float64(l.every) * float64(time.Second))
		l.mu.Unlock()
		return tenants.Principal{}, &apperr.Error{Code: apperr.Throttled, RetryAfter: wait,
			Message: "too many failed authentications from this address; try again later"}
	}
	l.mu.Unlock()

	p, err := l.next.Authenticate(ctx, c, need)
	if apperr.CodeOf(err) != apperr.Unauthorized && err != nil {
		return p, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s = l.sources[from]; s == nil {
		l.makeRoom(now)
		s = &source{failures: rate.NewLimiter(l.every, l.burst)}
		l.sources[from] = s
	}
	if err != nil {
		s.failures.AllowN(now, 1)
		return p, err
	}
	if !s.knows(fp) {
		s.good[s.goods%knownGood] = fp
		s.goods++
	}
	return p, nil
}

func (s *source) knows(fp [sha256.Size]byte) bool {
	for i := range min(s.goods, knownGood) {
		if s.good[i] == fp {
			return true
		}
	}
	return false
}

func (l *failureLimiter) makeRoom(now time.Time) {
	if len(l.sources) < maxSources {
		return
	}
	for k, s := range l.sources {
		if s.failures.TokensAt(now) >= float64(l.burst) {
			delete(l.sources, k)
		}
	}
	if len(l.sources) >= maxSources {
		clear(l.sources)
	}
}

func fingerprint(c tenants.Credentials, need tenants.Need) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range []string{c.User, c.Organization, c.Element} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write([]byte{byte(need)})
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// sourceOf is the request's source address as the limiter counts it: the
// connection's peer (connectord does not trust X-Forwarded-For), an IPv6
// address by its /64.
func sourceOf(ctx context.Context) (netip.Prefix, bool) {
	i := infoOf(ctx)
	if i == nil || i.remote == "" {
		return netip.Prefix{}, false
	}
	host, _, err := net.SplitHostPort(i.remote)
	if err != nil {
		host = i.remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p, true
}
