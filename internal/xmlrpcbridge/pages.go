package xmlrpcbridge

import (
	"sync"
	"time"
)

// maxWalk is the most v2 pages one DataService.query follows to reach the
// page asked for; past it the call is a fault saying how to page instead.
const maxWalk = 200

// pageTokens remembers, per instance and query, the v2 page token that
// starts each XML-RPC page the bridge has seen, so that a caller paging
// through a query (page 0, 1, 2, …, as XML-RPC integrations do) costs one
// REST call per page instead of n+1. Tokens are kept a short while only,
// and a token Keap no longer takes is forgotten and the walk made again.
type pageTokens struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	now     func() time.Time
	entries map[tokenKey]tokenEntry
}

type tokenKey struct {
	instance int64
	query    string // path and parameters but the token
	page     int64
}

type tokenEntry struct {
	token string
	at    time.Time
}

func newPageTokens(ttl time.Duration, max int, now func() time.Time) *pageTokens {
	return &pageTokens{ttl: ttl, max: max, now: now, entries: map[tokenKey]tokenEntry{}}
}

// nearest returns the furthest page at or before page whose token is
// known, and its token; page 0 needs none.
func (p *pageTokens) nearest(instance int64, query string, page int64) (int64, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := page; n > 0 && page-n < maxWalk; n-- {
		e, ok := p.entries[tokenKey{instance, query, n}]
		if ok && p.now().Sub(e.at) < p.ttl {
			return n, e.token
		}
	}
	return 0, ""
}

func (p *pageTokens) put(instance int64, query string, page int64, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.entries) >= p.max {
		now := p.now()
		for k, e := range p.entries {
			if now.Sub(e.at) >= p.ttl {
				delete(p.entries, k)
			}
		}
		if len(p.entries) >= p.max {
			clear(p.entries) // a burst of distinct queries: start again
		}
	}
	p.entries[tokenKey{instance, query, page}] = tokenEntry{token: token, at: p.now()}
}

func (p *pageTokens) forget(instance int64, query string, page int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.entries, tokenKey{instance, query, page})
}
