package events

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/trace"
	"github.com/connectord/connectord/internal/upstream"
)

// PollStore is what polling needs from the database. Each method is one
// transaction.
type PollStore interface {
	// SyncPollCursors creates and deletes cursor rows as want says, from the
	// instances with events enabled; false when another replica was syncing.
	SyncPollCursors(ctx context.Context, now time.Time, want func([]*instances.Instance) []PollWant) (bool, error)
	// ClaimPolls leases up to limit instances with due cursors to owner.
	ClaimPolls(ctx context.Context, owner string, limit int, lease time.Duration) ([]PollClaim, error)
	// SavePollPage stores a page's events and advances its cursor together.
	SavePollPage(ctx context.Context, p PollPage) error
	// ReleasePoll records the results and hands the instance's lease back.
	ReleasePoll(ctx context.Context, instanceID int64, owner string, results []PollResult) error
	InstanceByID(ctx context.Context, id int64) (*instances.Instance, error)
}

// PollerOptions tune polling. Zero values take the defaults.
type PollerOptions struct {
	// IntervalOverride, when set, replaces every instance's
	// event.poller.refresh_interval (CONNECTORD_POLLER_INTERVAL_OVERRIDE).
	IntervalOverride time.Duration
	SyncInterval     time.Duration // how often the configuration is re-read; default 5s (at most the override)
	Lease            time.Duration // how long a claimed instance is kept from other replicas, renewed every page; default 2m
	Workers          int           // instances polled at once per process; default 4
	MaxPages         int           // pages per poll before yielding to other instances; default 50
	Now              func() time.Time
	Log              zerolog.Logger
	// Observer is told how many events each stored page held
	// (internal/metrics); nil tells no one.
	Observer PollObserver
}

// PollObserver is told of the events polls store.
type PollObserver interface {
	EventsPolled(n int)
}

type nopPollObserver struct{}

func (nopPollObserver) EventsPolled(int) {}

func (o *PollerOptions) defaults() {
	if o.Observer == nil {
		o.Observer = nopPollObserver{}
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 5 * time.Second
	}
	if o.IntervalOverride > 0 {
		o.SyncInterval = min(o.SyncInterval, o.IntervalOverride)
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxPages <= 0 {
		o.MaxPages = 50
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Poller asks Keap what changed for every instance whose events come by
// polling, and stores the changes as events.
//
// Per instance and resource there is a cursor row: the newest change time
// reported and the ids reported at exactly that time. A poll asks Keap for
// the records changed since the cursor, oldest first, page by page, and each
// page's events are stored in the same transaction that advances the cursor,
// so a crash repeats at most the page under way and never leaves a gap. A
// replica polls an instance only while it holds the instance's lease, taken
// in ClaimPolls and renewed with every page, so no two replicas poll one
// instance at once; a replica that dies leaves a lease that runs out.
type Poller struct {
	store   PollStore
	catalog *elements.Catalog
	keap    KeapCaller
	opt     PollerOptions
	owner   string
}

// NewPoller returns a Poller.
func NewPoller(store PollStore, catalog *elements.Catalog, keap KeapCaller, opt PollerOptions) *Poller {
	opt.defaults()
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return &Poller{store: store, catalog: catalog, keap: keap, opt: opt, owner: "poller-" + hex.EncodeToString(b)}
}

// Run polls until ctx is cancelled; polls under way then finish the page they
// are on, store it and hand their lease back before Run returns.
func (p *Poller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, p.opt.Workers)
	tick := min(time.Second, p.opt.SyncInterval)
	var nextSync time.Time
	for ctx.Err() == nil {
		if now := p.opt.Now(); !now.Before(nextSync) {
			// New cursors start now, at Keap's millisecond precision, so a
			// record changed in this very millisecond is not lost.
			if _, err := p.store.SyncPollCursors(ctx, now.Truncate(time.Millisecond), p.want); err != nil && ctx.Err() == nil {
				p.opt.Log.Error().Err(err).Msg("sync poll cursors")
			}
			nextSync = now.Add(p.opt.SyncInterval)
		}
		if free := p.opt.Workers - len(slots); free > 0 {
			claims, err := p.store.ClaimPolls(ctx, p.owner, free, p.opt.Lease)
			if err != nil && ctx.Err() == nil {
				p.opt.Log.Error().Err(err).Msg("claim polls")
			}
			for _, c := range claims {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-slots }()
					p.poll(ctx, c)
				}()
			}
			if len(claims) == free {
				continue // more may be due
			}
		}
		t := time.NewTimer(tick)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// want says what each instance with events enabled polls now: nothing unless
// its events come by polling.
func (p *Poller) want(list []*instances.Instance) []PollWant {
	var out []PollWant
	for _, inst := range list {
		el, ok := p.catalog.Lookup(inst.ElementKey)
		if !ok || instances.EventMode(el, inst) != instances.EventsPolling {
			continue
		}
		prs, err := instances.PollResources(el, inst)
		if err != nil {
			continue // refused at configuration time; the element data changed since
		}
		w := PollWant{InstanceID: inst.ID, Interval: p.interval(el, inst)}
		for _, pr := range prs {
			w.Resources = append(w.Resources, pr.Object)
		}
		out = append(out, w)
	}
	return out
}

// interval is the instance's event.poller.refresh_interval (minutes), or the
// operator's override.
func (p *Poller) interval(el *elements.Element, inst *instances.Instance) time.Duration {
	if p.opt.IntervalOverride > 0 {
		return p.opt.IntervalOverride
	}
	n, err := strconv.Atoi(instances.Value(el, inst, instances.KeyPollerInterval))
	if err != nil || n < 1 {
		n = 15
	}
	return time.Duration(n) * time.Minute
}

// next is when a cursor polled now is due again: the interval, ±10 %, so
// instances enabled together drift apart.
func (p *Poller) next(interval time.Duration) time.Time {
	return p.opt.Now().Add(interval*9/10 + rand.N(interval/5+1))
}

// poll polls the due cursors of one claimed instance and hands its lease back.
// It reads the instance's configuration as it is now.
func (p *Poller) poll(ctx context.Context, c PollClaim) {
	// Each poll is a trace of its own: its calls to Keap and the callbacks
	// of the events it stores carry it.
	ctx = trace.With(ctx, trace.New())
	// The work outlives ctx so that a shutdown stores the page under way;
	// pollCursor stops between pages once ctx ends.
	work := context.WithoutCancel(ctx)
	results := make([]PollResult, 0, len(c.Cursors))
	fail := func(msg string) {
		for _, cur := range c.Cursors {
			if cur.Due {
				results = append(results, PollResult{Resource: cur.Resource, NextPoll: p.next(p.opt.SyncInterval), Error: msg})
			}
		}
	}
	inst, err := p.store.InstanceByID(work, c.InstanceID)
	el, known := (*elements.Element)(nil), false
	if err == nil {
		el, known = p.catalog.Lookup(inst.ElementKey)
	}
	switch {
	case err != nil:
		fail("load the instance: " + err.Error())
	case !known:
		fail("unknown element " + inst.ElementKey)
	case !inst.Valid || inst.Disabled:
		fail("the instance is not valid or is disabled; polling resumes when it is usable again")
	case instances.Value(el, inst, instances.KeyEventsEnabled) != "true" || instances.EventMode(el, inst) != instances.EventsPolling:
		fail("events are no longer polled for this instance")
	default:
		prs, err := instances.PollResources(el, inst)
		if err != nil {
			fail(err.Error())
			break
		}
		byObject := map[string]instances.PollResource{}
		for _, pr := range prs {
			byObject[pr.Object] = pr
		}
		interval := p.interval(el, inst)
		for _, cur := range c.Cursors {
			if !cur.Due {
				continue
			}
			pr, ok := byObject[cur.Resource]
			if !ok {
				results = append(results, PollResult{Resource: cur.Resource, NextPoll: p.next(interval), Error: cur.Resource + " is no longer in event.objects"})
				continue
			}
			results = append(results, p.pollCursor(ctx, work, el, inst, pr, cur, interval))
		}
	}
	if err := p.store.ReleasePoll(work, c.InstanceID, p.owner, results); err != nil {
		p.opt.Log.Error().Err(err).Int64("instance_id", c.InstanceID).Msg("release poll lease; it runs out instead")
	}
}

// pollCursor reads every change since the cursor, page by page, storing each
// page with the cursor after it.
func (p *Poller) pollCursor(ctx, work context.Context, el *elements.Element, inst *instances.Instance, pr instances.PollResource, cur PollCursor, interval time.Duration) PollResult {
	start := time.Now()
	limit := pageSize(el, inst)
	from := cur.At
	// The records already reported at exactly the sweep's start: a record
	// created in that millisecond and reported then is UPDATED when it
	// changes again, not CREATED. A sweep resumed after a restart no
	// longer knows them (its cursor moved on), and reports such a record
	// CREATED, as it would one created in that millisecond after the list.
	reportedAtFrom := map[string]bool{}
	if cur.SweepFrom != nil {
		from = *cur.SweepFrom
	} else {
		for _, id := range cur.IDs {
			reportedAtFrom[id] = true
		}
	}
	res := PollResult{Resource: cur.Resource}
	found, pages, offset := 0, 0, 0
	var err error
	for {
		if pages >= p.opt.MaxPages || (pages > 0 && ctx.Err() != nil) {
			res.NextPoll = p.opt.Now() // not done: due again at once, after other instances had their turn
			break
		}
		pages++
		var pg page
		// One page must come back within the lease, which each stored page renews.
		fctx, cancel := context.WithTimeout(work, p.opt.Lease)
		pg, err = p.fetch(fctx, el, inst, pr, cur, limit, offset)
		cancel()
		if err != nil {
			break
		}
		next, evs, objects := advance(cur, pg, from, reportedAtFrom, el.Key, pr.Object)
		if len(evs) > 0 {
			after := next
			after.SweepFrom = &from
			if err = p.store.SavePollPage(work, PollPage{
				InstanceID: inst.ID, Owner: p.owner, Lease: p.opt.Lease, Cursor: after,
				Events: evs, Objects: objects, ListKey: pr.Resource.ListKey,
			}); err != nil {
				break
			}
			found += len(evs)
			p.opt.Observer.EventsPolled(len(evs))
			offset = 0
		} else {
			// Nothing new on a full page: every record on it was reported at
			// the cursor's time. Look further along the same list.
			offset += limit
		}
		cur = next
		if len(pg.records) < limit {
			res.SweepDone, res.NextPoll = true, p.next(interval)
			break
		}
	}
	log := p.opt.Log.Info()
	if err != nil {
		res.Error, res.NextPoll = err.Error(), p.next(interval)
		var pe *pollError
		if errors.As(err, &pe) && pe.stop {
			res.Stop = true
		}
		log = p.opt.Log.Warn().Str("error", res.Error).Bool("stopped", res.Stop)
	}
	log.Int64("instance_id", inst.ID).Str("resource", cur.Resource).Int("events", found).Int("pages", pages).
		Dur("took", time.Since(start)).Time("cursor", cur.At).Msg("poll")
	return res
}

// pollError is a poll that Keap answered with an error.
type pollError struct {
	msg  string
	stop bool // the credentials were refused and a renewal did not help
}

func (e *pollError) Error() string { return e.msg }

// record is one listed record: its id, dates and bytes.
type record struct {
	id               string
	updated, created time.Time
	hasCreated       bool
	raw              json.RawMessage
}

type page struct{ records []record }

// pageSize is the instance's pagination.max, within Keap's 1..1000.
func pageSize(el *elements.Element, inst *instances.Instance) int {
	n, err := strconv.Atoi(instances.Value(el, inst, "pagination.max"))
	if err != nil || n < 1 {
		return 200
	}
	return min(n, 1000)
}

// fetch lists one page of the records changed since the cursor, oldest first.
// since is a millisecond before the cursor, so the cursor's own time is
// included whether Keap's since is inclusive or not; advance drops what was
// reported already.
func (p *Poller) fetch(ctx context.Context, el *elements.Element, inst *instances.Instance, pr instances.PollResource, cur PollCursor, limit, offset int) (page, error) {
	t := upstream.TargetFor(el, inst)
	t.Background = true // nobody waits for it: interactive calls go first on the quota
	if t.Legacy {
		return page{}, &pollError{msg: "with CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL set, a legacy key reaches only Keap's XML-RPC API; polling needs the REST API (unset it, or use an OAuth instance or a service account key)", stop: true}
	}
	ev := pr.Resource.Events
	q := url.Values{}
	q.Set(ev.PollSince, cur.At.Add(-time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z"))
	q.Set("order", ev.PollOrder)
	if pr.Resource.OrderDirection != "" {
		q.Set(pr.Resource.OrderDirection, "ASCENDING")
	}
	q.Set("limit", strconv.Itoa(limit))
	q.Set("offset", strconv.Itoa(offset))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.RESTBase+pr.Resource.Path+"?"+q.Encode(), nil)
	if err != nil {
		return page{}, fmt.Errorf("build the poll request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.keap.Do(ctx, t, req, nil)
	if err != nil {
		if e, ok := apperr.As(err); ok {
			return page{}, &pollError{msg: "Keap: " + e.Message}
		}
		return page{}, fmt.Errorf("Keap: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return page{}, &pollError{msg: "read Keap's answer: " + err.Error()}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return page{}, &pollError{stop: true, msg: fmt.Sprintf("Keap refused the instance's credentials (%d %s); polling stops until the instance is changed (PATCH or PUT /instances/%d)",
			resp.StatusCode, snippet(body), inst.ID)}
	case resp.StatusCode != http.StatusOK:
		return page{}, &pollError{msg: fmt.Sprintf("Keap answered %d to GET %s: %s", resp.StatusCode, pr.Resource.Path, snippet(body))}
	}
	return parsePage(body, pr)
}

// parsePage reads a Keap v1 list: the records under the resource's list key.
func parsePage(body []byte, pr instances.PollResource) (page, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return page{}, &pollError{msg: "Keap's list is not a JSON object: " + err.Error()}
	}
	var items []json.RawMessage
	if raw, ok := env[pr.Resource.ListKey]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &items); err != nil {
			return page{}, &pollError{msg: fmt.Sprintf("Keap's list has no %s array", pr.Resource.ListKey)}
		}
	}
	out := page{records: make([]record, 0, len(items))}
	for i, raw := range items {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return page{}, &pollError{msg: fmt.Sprintf("record %d of the page is not an object", i)}
		}
		rec := record{raw: raw}
		id, ok := lookup(m, pr.IDField)
		if !ok || id == "" {
			return page{}, &pollError{msg: fmt.Sprintf("a %s record has no %s (the idField)", pr.Object, pr.IDField)}
		}
		rec.id = id
		updated, _ := lookup(m, pr.UpdatedField)
		t, ok := parseTime(updated)
		if !ok {
			return page{}, &pollError{msg: fmt.Sprintf("%s record %s has no date in %s (the updatedDateField): %q", pr.Object, id, pr.UpdatedField, updated)}
		}
		rec.updated = t
		if pr.CreatedField != "" {
			if created, ok := lookup(m, pr.CreatedField); ok {
				rec.created, rec.hasCreated = parseTime(created)
			}
		}
		out.records = append(out.records, rec)
	}
	return out, nil
}

// advance drops the records already reported, turns the rest into events
// and returns the cursor after them. A record is CREATED when it was created
// at or after the start of the sweep (from) and is not among the records
// reported at exactly from before the sweep (reportedAtFrom), else UPDATED.
func advance(cur PollCursor, pg page, from time.Time, reportedAtFrom map[string]bool, elementKey, object string) (PollCursor, []Event, []json.RawMessage) {
	next := PollCursor{Resource: cur.Resource, At: cur.At, IDs: append([]string(nil), cur.IDs...), SweepFrom: cur.SweepFrom}
	seen, reported := map[string]bool{}, map[string]bool{}
	for _, id := range cur.IDs {
		seen[id] = true
	}
	var evs []Event
	var objects []json.RawMessage
	for _, r := range pg.records {
		if r.updated.Before(cur.At) || r.updated.Equal(cur.At) && seen[r.id] || reported[r.id] {
			continue
		}
		reported[r.id] = true // a record Keap lists twice on one page is one change
		typ := Updated
		if r.hasCreated && (r.created.After(from) || r.created.Equal(from) && !reportedAtFrom[r.id]) {
			typ = Created
		}
		evs = append(evs, Event{Date: r.updated, ElementKey: elementKey, EventType: typ, ObjectID: r.id, ObjectType: object})
		objects = append(objects, r.raw)
		switch {
		case r.updated.After(next.At):
			next.At, next.IDs = r.updated, []string{r.id}
		case r.updated.Equal(next.At):
			next.IDs = append(next.IDs, r.id)
		}
	}
	return next, evs, objects
}

// lookup reads a member of a record by a dotted path (tag.id), as text.
func lookup(m map[string]any, path string) (string, bool) {
	var v any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = obj[part]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case nil:
		return "", false
	default:
		return fmt.Sprint(x), true
	}
}

// parseTime reads the dates Keap writes: RFC 3339 with or without the colon in
// the offset, with or without fractions.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// snippet is the start of Keap's error body, for last_error and the log.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
