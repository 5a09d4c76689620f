package instances

import (
	"context"
	"sync"
	"time"

	"github.com/connectord/connectord/internal/elements"
)

// maxResolved bounds the resolve cache; past it, expired entries are dropped,
// and everything when none has expired.
const maxResolved = 10000

type resolved struct {
	inst    *Instance
	el      *elements.Element
	expires time.Time
}

// resolveCache holds resolved instances by id. A nil cache holds nothing.
type resolveCache struct {
	ttl time.Duration
	now func() time.Time

	mu  sync.Mutex
	gen uint64 // bumped by every forget, so a load that raced a change is not kept
	m   map[int64]resolved
}

func (c *resolveCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *resolveCache) get(orgID, id int64) (*Instance, *elements.Element, bool) {
	if c == nil {
		return nil, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[id]
	if !ok || r.inst.OrganizationID != orgID || !c.now().Before(r.expires) {
		return nil, nil, false
	}
	return r.inst, r.el, true
}

// put keeps inst unless the cache was told of a change since gen.
func (c *resolveCache) put(gen uint64, inst *Instance, el *elements.Element) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	now := c.now()
	if len(c.m) >= maxResolved {
		for id, r := range c.m {
			if !now.Before(r.expires) {
				delete(c.m, id)
			}
		}
		if len(c.m) >= maxResolved {
			clear(c.m)
		}
	}
	c.m[inst.ID] = resolved{inst: inst, el: el, expires: now.Add(c.ttl)}
}

func (c *resolveCache) forget(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, id)
}

// forgetting is the Service's store with the resolve cache told of every change.
type forgetting struct {
	Store
	cache *resolveCache
}

func (f forgetting) UpdateInstance(ctx context.Context, orgID, id int64, fn func(*Instance) error) (*Instance, error) {
	f.cache.forget(id)
	defer f.cache.forget(id) // and after the commit, for a Resolve that read the old row meanwhile
	return f.Store.UpdateInstance(ctx, orgID, id, fn)
}

func (f forgetting) DeleteInstance(ctx context.Context, orgID, id int64) error {
	f.cache.forget(id)
	defer f.cache.forget(id)
	return f.Store.DeleteInstance(ctx, orgID, id)
}
