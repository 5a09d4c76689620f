package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
)

// Options configure a Scheduler. Zero values take the defaults.
type Options struct {
	Client  Limits        // per OAuth client id; default KeapClientLimits
	Key     Limits        // per API key; default KeapKeyLimits
	MaxWait time.Duration // the longest a call waits for its turn; default 10s
	// Lease is how long a replica's slice lasts without a sync; a killed
	// replica's slice goes back to the others after it. Default 3s.
	Lease time.Duration
	// SyncEvery is how often a replica reports and renews its slices; default 250ms.
	SyncEvery time.Duration
	Replica   string // this replica's name in the leases; default random
	Ledger    Ledger // the shared rows; nil: this process alone (kept in memory)
	Log       zerolog.Logger
}

func (o *Options) defaults() {
	if o.Client == (Limits{}) {
		o.Client = KeapClientLimits
	}
	if o.Key == (Limits{}) {
		o.Key = KeapKeyLimits
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 10 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 3 * time.Second
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = 250 * time.Millisecond
	}
	if o.Replica == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		o.Replica = hex.EncodeToString(b)
	}
	if o.Ledger == nil {
		o.Ledger = NewMemLedger()
	}
}

// margin keeps a second's calls away from its edges, so a call sent late in
// one second does not reach Keap in the next.
const margin = 50 * time.Millisecond

// maxPause bounds the pause one 429 imposes on a whole quota.
const maxPause = 10 * time.Second

// idleAfter is how long a quota without calls keeps syncing (and its slice).
const idleAfter = 5 * time.Second

// Scheduler hands out the turns of every quota this replica draws on.
type Scheduler struct {
	opt  Options
	kick chan struct{}

	// What the syncs cost, for the log line Run ends with.
	syncs, failed, rows int64

	mu      sync.Mutex
	quotas  map[Key]*quota
	stopped bool // Run ended: no lease is held any more, so no turn can come
}

// New returns a Scheduler; Run must run for it to hold leases.
func New(opt Options) *Scheduler {
	opt.defaults()
	return &Scheduler{opt: opt, kick: make(chan struct{}, 1), quotas: map[Key]*quota{}}
}

// Call is one call that needs a turn.
type Call struct {
	Key      Key
	Instance int64
	Class    Class
}

type waiter struct {
	inst    int64
	class   Class
	ready   chan struct{}
	granted bool
	second  int64 // the second its turn was counted in
	err     error // set instead of a turn: the quota cannot be kept
}

// flow is one instance's waiting calls of one class.
type flow struct {
	queue []*waiter
	pass  float64 // stride scheduling: served next when lowest
	// drained: its queue was empty after its last turn. sparse: its call
	// came to an empty queue while it takes less than its fair share, so
	// it goes ahead of the backlogged flows (as FQ-CoDel's new flows do):
	// a quiet instance is not kept waiting for a round of busy ones.
	drained, sparse bool
	drainedAt       time.Time
}

type flowKey struct {
	inst  int64
	class Class
}

// classStride: a background turn costs four interactive ones, so background
// work gets a fifth of the turns when both wait, and never none.
var classStride = [2]float64{1, 4}

type quota struct {
	key    Key
	limits Limits
	rate   int

	grant      int   // calls this second may carry
	nextGrant  int   // a raise, in effect from the second nextFrom
	nextFrom   int64 // 0: none pending
	leaseUntil time.Time
	synced     bool
	syncErr    error
	dayLeft    int // calls of today's reservation left
	pausedTill time.Time

	second int64 // the current second and its calls sent
	inSec  int

	flows     map[flowKey]*flow
	classPass [2]float64
	vtime     [2]float64 // the pass of the last flow served, per class
	waiting   int
	waitingBy map[int64]int
	weight    map[int64]float64 // an instance's weight here: 1 / replicas it is active on
	instRate  map[int64]float64 // an instance's turns a second here, smoothed
	lastSeen  map[int64]time.Time

	sent, sentTotal int
	sentBy          map[int64]int
	arrivals        int
	arrivalRate     float64
	lastSync        time.Time
	lastActive      time.Time
	keapDayUsed     int
	pauseReport     time.Time
	shared          Shared

	wake    chan struct{}
	running bool
}

func (s *Scheduler) quotaLocked(k Key) *quota {
	q := s.quotas[k]
	if q == nil {
		l := s.opt.Client
		if k.Kind == APIKey {
			l = s.opt.Key
		}
		q = &quota{key: k, limits: l, rate: l.rate(), flows: map[flowKey]*flow{}, waitingBy: map[int64]int{},
			weight: map[int64]float64{}, instRate: map[int64]float64{}, lastSeen: map[int64]time.Time{}, sentBy: map[int64]int{}, wake: make(chan struct{}, 1)}
		s.quotas[k] = q
	}
	return q
}

// Ticket is a turn that was used: the caller reports Keap's answer on it.
type Ticket struct {
	s *Scheduler
	q *quota
}

// ErrQuotaSpent is the cause of the 429 a call gets when its turn did not come in time.
var ErrQuotaSpent = errors.New("quota spent")

// Wait blocks until c may be sent, at most MaxWait or until ctx ends. It
// answers a 429 apperr naming the quota (with a Retry-After) when the turn
// does not come in time or today's quota is spent, a 503 when the quota
// cannot be coordinated (the database is unreachable), and ctx's error when
// the caller gave up; a call that did not get its turn consumed nothing.
func (s *Scheduler) Wait(ctx context.Context, c Call) (*Ticket, error) {
	now := time.Now()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil, errStopped(c.Key)
	}
	q := s.quotaLocked(c.Key)
	if err := s.refusalLocked(q, now); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	w := &waiter{inst: c.Instance, class: c.Class, ready: make(chan struct{})}
	q.enqueue(w)
	q.arrivals++
	q.lastActive, q.lastSeen[c.Instance] = now, now
	if !q.synced {
		s.kickSync()
	}
	if !q.running {
		q.running = true
		go s.dispatch(q)
	} else {
		q.signal()
	}
	s.mu.Unlock()

	timer := time.NewTimer(s.opt.MaxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		if w.err != nil {
			return nil, w.err
		}
		return &Ticket{s: s, q: q}, nil
	case <-ctx.Done():
		s.mu.Lock()
		q.leave(w)
		s.mu.Unlock()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, s.spent(q, now)
		}
		return nil, ctx.Err()
	case <-timer.C:
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.granted && w.err == nil {
			return &Ticket{s: s, q: q}, nil // the turn came just now
		}
		q.leave(w)
		return nil, s.spentLocked(q, now)
	}
}

// refusalLocked fails a call at once when waiting cannot help: today's
// quota is spent, or the quota's lease lapsed because the database cannot
// be reached.
func (s *Scheduler) refusalLocked(q *quota, now time.Time) error {
	if q.synced && q.shared.DayUsed+q.sent >= q.limits.PerDay {
		reset := nextMidnight(now)
		return &apperr.Error{Code: apperr.ProviderThrottled, RetryAfter: reset.Sub(now), Err: ErrQuotaSpent,
			Message: fmt.Sprintf("%s is spent for today: %d calls a day; it resets at %s", q.key.Describe(), q.limits.PerDay, reset.Format(time.RFC3339))}
	}
	if q.syncErr != nil && !now.Before(q.leaseUntil) {
		return unavailable(q)
	}
	return nil
}

// errStopped answers a call that needs a turn once Run has ended (the
// process is shutting down): waiting could only last until MaxWait, and a
// worker finishing its work on the way out must not hold shutdown up that
// long for each call it still tries.
func errStopped(k Key) error {
	return &apperr.Error{Code: apperr.Unavailable, Err: ErrStopped,
		Message: fmt.Sprintf("%s: connectord is shutting down; try again shortly", k.Describe())}
}

// ErrStopped is the cause of the 503 a call gets when it needs a turn after Run ended.
var ErrStopped = errors.New("quota scheduler stopped")

func unavailable(q *quota) error {
	return &apperr.Error{Code: apperr.Unavailable, Err: q.syncErr,
		Message: fmt.Sprintf("%s cannot be shared with the other replicas: the database is unreachable; try again shortly", q.key.Describe())}
}

func (s *Scheduler) spent(q *quota, since time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spentLocked(q, since)
}

func (s *Scheduler) spentLocked(q *quota, since time.Time) error {
	if err := s.refusalLocked(q, time.Now()); err != nil {
		return err
	}
	// Retry-After: about when the calls now waiting will have had their turns.
	retry := time.Second
	if g := max(q.grant, 1); q.waiting > g {
		retry = time.Duration(math.Ceil(float64(q.waiting)/float64(g))) * time.Second
	}
	return &apperr.Error{Code: apperr.ProviderThrottled, RetryAfter: retry, Err: ErrQuotaSpent,
		Message: fmt.Sprintf("%s is spent: %d calls a second, %d a minute; this call waited %s for a turn with %d others waiting; retry after %ds",
			q.key.Describe(), q.rate, q.limits.PerMinute, time.Since(since).Round(time.Millisecond), q.waiting, int(retry.Seconds()))}
}

func nextMidnight(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func (q *quota) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) kickSync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (q *quota) enqueue(w *waiter) {
	k := flowKey{w.inst, w.class}
	f := q.flows[k]
	if f == nil {
		f = &flow{}
		q.flows[k] = f
	}
	if len(f.queue) == 0 {
		// A flow that was idle starts level with the others: it gets no
		// credit for the time it did not call.
		f.pass = max(f.pass, q.vtime[w.class])
		f.sparse = f.drained && q.sparse(w.inst, f.drainedAt)
	}
	f.queue = append(f.queue, w)
	q.waiting++
	q.waitingBy[w.inst]++
}

// leave takes w out: a caller that gave up. A turn it was given and did not
// use is handed back.
func (q *quota) leave(w *waiter) {
	if w.granted {
		if w.err != nil {
			return
		}
		if w.second == q.second && q.inSec > 0 {
			q.inSec--
		}
		q.dayLeft++
		q.sent--
		q.sentTotal--
		q.sentBy[w.inst]--
		return
	}
	f := q.flows[flowKey{w.inst, w.class}]
	for i, x := range f.queue {
		if x == w {
			f.queue = append(f.queue[:i], f.queue[i+1:]...)
			q.waiting--
			q.waitingBy[w.inst]--
			if q.waitingBy[w.inst] <= 0 {
				delete(q.waitingBy, w.inst)
			}
			return
		}
	}
}

// pick takes the next waiter: the class, then the flow, with the lowest pass.
func (q *quota) pick() *waiter {
	var best [2]*flow
	for k, f := range q.flows {
		if len(f.queue) == 0 {
			continue
		}
		b := best[k.class]
		if b == nil || f.sparse && !b.sparse || f.sparse == b.sparse && (f.pass < b.pass || f.pass == b.pass && f.queue[0].inst < b.queue[0].inst) {
			best[k.class] = f
		}
	}
	c := Interactive
	switch {
	case best[Interactive] == nil:
		c = Background
	case best[Background] != nil && q.classPass[Background] < q.classPass[Interactive]:
		c = Background
	}
	f := best[c]
	if best[1-c] == nil {
		// Alone, a class does not bank turns against the other.
		q.classPass[1-c] = max(q.classPass[1-c], q.classPass[c])
	}
	q.classPass[c] += classStride[c]
	w := f.queue[0]
	f.queue = f.queue[1:]
	f.drained, f.sparse, f.drainedAt = len(f.queue) == 0, false, time.Now()
	q.vtime[c] = f.pass
	wt := q.weight[w.inst]
	if wt <= 0 {
		wt = 1
	}
	f.pass += 1 / wt
	q.waiting--
	q.waitingBy[w.inst]--
	if q.waitingBy[w.inst] <= 0 {
		delete(q.waitingBy, w.inst)
	}
	return w
}

// sparse says whether an instance whose queue emptied at drained calls
// sparsely: it stayed away for at least two turns of this replica's slice
// (a caller looping on one connection comes back sooner), and its recent
// turns here are at most its fair share of the slice.
func (q *quota) sparse(inst int64, drained time.Time) bool {
	if q.grant <= 0 || time.Since(drained) < 2*time.Second/time.Duration(q.grant) {
		return false
	}
	active := max(len(q.lastSeen), 1)
	return q.instRate[inst] <= 1.2*float64(q.grant)/float64(active)
}

// nextTurn says when the next call may go, or false when none may until the
// next sync (no lease, or nothing left of today's reservation).
func (q *quota) nextTurn(now time.Time) (time.Time, bool) {
	sec := now.Unix()
	if sec != q.second {
		q.second, q.inSec = sec, 0
	}
	if q.nextFrom != 0 && sec >= q.nextFrom {
		q.grant, q.nextFrom = q.nextGrant, 0
	}
	if now.Before(q.pausedTill) {
		return q.pausedTill, true
	}
	if !now.Before(q.leaseUntil) || q.grant <= 0 || q.dayLeft <= 0 {
		return time.Time{}, false
	}
	// The second's calls are spread over it, so a call arriving late in
	// the second still finds a turn and none reaches Keap in the next.
	start := time.Unix(sec, 0)
	span := time.Second - 2*margin
	step := span / time.Duration(q.grant)
	if el := now.Sub(start.Add(margin)); el > 0 {
		// Turns whose time passed with nobody to take them are lost, but
		// for two: calls arriving after a gap (or a grant starting
		// mid-second) do not get a burst of the second's past turns.
		due := min(int(el/step)+1, q.grant)
		q.inSec = max(q.inSec, due-2)
	}
	if q.inSec >= q.grant {
		return start.Add(time.Second + margin), true
	}
	return start.Add(margin + step*time.Duration(q.inSec)), true
}

// dispatch hands out turns while calls wait.
func (s *Scheduler) dispatch(q *quota) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if q.waiting == 0 {
			q.running = false
			s.mu.Unlock()
			return
		}
		now := time.Now()
		if q.syncErr != nil && !now.Before(q.leaseUntil) {
			q.failAll(unavailable(q))
			s.mu.Unlock()
			continue
		}
		at, ok := q.nextTurn(now)
		if ok && !at.After(now) {
			w := q.pick()
			w.granted, w.second = true, q.second
			q.inSec++
			q.dayLeft--
			q.sent++
			q.sentTotal++
			q.sentBy[w.inst]++
			close(w.ready)
			s.mu.Unlock()
			continue
		}
		wait := s.opt.SyncEvery
		if ok {
			wait = at.Sub(now)
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-q.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

// failAll answers every waiting call with err.
func (q *quota) failAll(err error) {
	for k, f := range q.flows {
		for _, w := range f.queue {
			w.granted, w.err = true, err
			close(w.ready)
		}
		delete(q.flows, k)
	}
	q.waiting = 0
	clear(q.waitingBy)
}

// Observe reads Keap's answer to the call: its throttle and quota headers,
// and a 429, correct what every replica knows of the quota.
func (t *Ticket) Observe(status int, h http.Header) {
	if t == nil {
		return
	}
	now := time.Now()
	var pause time.Duration
	shared := true
	switch {
	case status == http.StatusTooManyRequests:
		// Every caller of the quota waits what Keap asks, up to maxPause:
		// one answer does not stop every instance for longer (the day's
		// quota is tracked through Keap's quota headers instead).
		pause = time.Second
		if ra, ok := retryAfter(h.Get("Retry-After"), now); ok {
			pause = min(max(ra, pause), maxPause)
		}
	case exhausted(h, "x-keap-product-throttle"), exhausted(h, "x-keap-tenant-throttle"):
		// Nothing is left in Keap's current interval: everyone waits for
		// the next (Keap's minute windows slide: wait a little, then ask again).
		// The second's calls are all used: a replica's own business (the
		// slices add up to the quota), not the others'.
		pause, shared = time.Until(now.Truncate(time.Second).Add(time.Second)), false
		if strings.Contains(strings.ToLower(h.Get("x-keap-product-throttle-time-unit")+h.Get("x-keap-tenant-throttle-time-unit")), "minute") {
			pause, shared = 5*time.Second, true
		}
	}
	used, _ := strconv.Atoi(h.Get("x-keap-product-quota-used"))
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	q := t.q
	if used > q.keapDayUsed && strings.EqualFold(h.Get("x-keap-product-quota-time-unit"), "day") {
		q.keapDayUsed = used
		// Keap counted calls this replica did not send (a key check, another
		// tool on the same app): what it says is left bounds today's turns here too.
		q.dayLeft = min(q.dayLeft, q.limits.PerDay-used)
	}
	if pause > 0 {
		until := now.Add(pause)
		if until.After(q.pausedTill) {
			q.pausedTill = until
		}
		if shared && until.After(q.pauseReport) {
			q.pauseReport = until
		}
		if status == http.StatusTooManyRequests {
			t.s.kickSync() // every replica pauses, not only this one
		}
	}
}

func exhausted(h http.Header, prefix string) bool {
	v := h.Get(prefix + "-available")
	if v == "" {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.Split(v, "|")[0]))
	return err == nil && n <= 0
}

func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
