package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/trace"
)

// DeliveryStore is what delivery needs from the database. Each method is one
// transaction.
type DeliveryStore interface {
	// ClaimNotifications claims due pending notifications as c allows (FOR
	// UPDATE SKIP LOCKED) by moving their next try lease into the future, and
	// commits: the claim survives only as that lease.
	ClaimNotifications(ctx context.Context, c Claim) ([]Claimed, error)
	// RecordDelivery records one try and the notification's new state.
	RecordDelivery(ctx context.Context, id NotificationID, o Outcome) error
	// DeferNotifications hands claimed notifications back, due after d, without
	// counting a try.
	DeferNotifications(ctx context.Context, ids []NotificationID, d time.Duration) error
	// NextNotificationDue is when the earliest pending notification is due.
	NextNotificationDue(ctx context.Context) (time.Time, bool, error)
	InstanceByID(ctx context.Context, id int64) (*instances.Instance, error)
}

// Claim says which due notifications a claim may take: at most Limit, at most
// PerInstance of one instance and PerOrganization of one organization (0: no
// cap), none of the instances or organizations listed, earliest due first.
type Claim struct {
	Limit                        int
	Lease                        time.Duration
	SkipInstances                []int64
	SkipOrganizations            []int64
	PerInstance, PerOrganization int
}

// DeliveryOptions tune delivery. Zero values take the defaults.
type DeliveryOptions struct {
	BackoffBase     time.Duration // the n-th retry waits about BackoffBase·4^n; default 1s
	MaxRetries      int           // retries after the first try before failing; default 9
	Lease           time.Duration // how long a claim keeps others off; default 30s
	Timeout         time.Duration // one POST, connect to last byte; default 10s
	Workers         int           // deliveries in flight per process; default 128
	PerHost         int           // deliveries in flight per callback host per process; default 4
	PerInstance     int           // deliveries in flight per instance per process; default 4
	PerOrganization int           // deliveries in flight per organization per process; default 8
	// BreakerAfter is how many failures in a row open an endpoint's
	// breaker (default 5); BreakerPause is how long it then rests before one
	// try, doubling with every failure after, at most 20 times as long
	// (default 30·BackoffBase: 30 s, at most 10 min).
	BreakerAfter int
	BreakerPause time.Duration
	PollInterval time.Duration // the longest an idle dispatcher sleeps; default 500ms
	Policy       CallbackPolicy
	Log          zerolog.Logger
	// Observer is told each try's outcome (internal/metrics); nil tells no one.
	Observer DeliveryObserver
}

// DeliveryObserver is told each delivery try's outcome: delivered, retrying
// (failed, tried again later) or failed (no retry left).
type DeliveryObserver interface {
	NotificationTried(outcome string)
}

type nopDeliveryObserver struct{}

func (nopDeliveryObserver) NotificationTried(string) {}

func (o *DeliveryOptions) defaults() {
	if o.Observer == nil {
		o.Observer = nopDeliveryObserver{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defN := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&o.BackoffBase, time.Second)
	def(&o.Lease, 30*time.Second)
	def(&o.Timeout, 10*time.Second)
	def(&o.PollInterval, 500*time.Millisecond)
	def(&o.BreakerPause, 30*o.BackoffBase)
	defN(&o.MaxRetries, 9)
	defN(&o.Workers, 128)
	defN(&o.PerHost, 4)
	defN(&o.PerInstance, 4)
	defN(&o.PerOrganization, 8)
	defN(&o.BreakerAfter, 5)
}

// Delivery posts stored notifications to their instances' callback URLs.
//
// A claim is a lease, not a held row lock: the dispatcher claims due
// notifications by setting their next_attempt_at to now + Lease in a short
// transaction that commits at once, POSTs without holding any database
// connection, and records the outcome in a second transaction. A process that
// dies (SIGKILL, power loss) between the two leaves the notification pending
// with a lease that simply runs out, and any replica delivers it again: only
// what was in flight is delivered twice. Holding the row lock through the POST
// would give the same guarantee but pin one pooled connection per in-flight
// delivery for up to the 10 s time-out, which a slow consumer would turn into
// pool exhaustion for the whole service. Lease must exceed Timeout, or a slow
// delivery is duplicated by another worker while it is still under way.
//
// Sharing: a delivery starts only while its instance, its organization and
// its callback host are under their caps (PerInstance, PerOrganization,
// PerHost) and the process under Workers; the claim query leaves out what is
// at a cap, and takes at most the caps' worth of one instance or organization
// at a time, so no tenant's backlog or slow consumer fills the workers. An
// endpoint (callback URL) whose last delivery failed gets one delivery at a
// time, and all such endpoints together at most half the workers; after
// BreakerAfter failures in a row its breaker opens and its notifications are
// not claimed at all for BreakerPause (doubling, at most 20 times): they stay
// pending, spend no tries, and go out when a try succeeds again.
type Delivery struct {
	store   DeliveryStore
	catalog *elements.Catalog
	client  *http.Client
	opt     DeliveryOptions
	now     func() time.Time

	inflight atomic.Int64 // deliveries under way
	freed    chan struct{}
	woken    chan struct{}

	mu        sync.Mutex
	hostBusy  map[string]int
	instBusy  map[int64]int
	orgBusy   map[int64]int
	suspects  int                  // deliveries under way to endpoints whose last try failed
	endpoints map[string]*endpoint // endpoints whose last try failed
	known     map[int64]route      // each instance's route, as last seen
}

// endpoint is what delivery remembers of a callback URL that is failing.
type endpoint struct {
	failures  int       // in a row
	openUntil time.Time // the breaker is open until then
	busy      int       // tries under way that were admitted as this endpoint's
}

// route is where an instance's notifications go.
type route struct {
	host, url string
	org       int64
}

// NewDelivery returns a Delivery whose every connection goes through
// opt.Policy's dialer, so private destinations are refused at connect time.
func NewDelivery(store DeliveryStore, catalog *elements.Catalog, opt DeliveryOptions) *Delivery {
	opt.defaults()
	tr := &http.Transport{
		DialContext:            opt.Policy.Dialer().DialContext,
		MaxIdleConnsPerHost:    opt.PerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    opt.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	return &Delivery{
		store: store, catalog: catalog, opt: opt, now: time.Now,
		client: &http.Client{Transport: tr, Timeout: opt.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not a 2xx
		}},
		freed:     make(chan struct{}, 1),
		woken:     make(chan struct{}, 1),
		hostBusy:  map[string]int{},
		instBusy:  map[int64]int{},
		orgBusy:   map[int64]int{},
		endpoints: map[string]*endpoint{},
		known:     map[int64]route{},
	}
}

// Wake makes an idle dispatcher look for due notifications now rather than at
// its next poll (the store's due signal calls it).
func (d *Delivery) Wake() {
	select {
	case d.woken <- struct{}{}:
	default:
	}
}

// queueDepth is how many claimed notifications may wait in memory per
// delivery slot of an instance or organization: enough that a fast
// consumer's slots never run dry between claims.
const queueDepth = 4

// Run delivers due notifications until ctx is cancelled; deliveries under way
// then finish (each bounded by the time-out) and are recorded before it returns.
func (d *Delivery) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// held are claimed notifications that did not fit a cap when claimed: a
	// claim takes up to queueDepth times an instance's and an organization's
	// cap. They start as soon as a delivery of theirs ends, which keeps a
	// fast consumer's slots busy without a claim per notification; one held
	// past half its lease is handed back rather than risk being sent twice.
	var held []heldClaim
	start := func(c Claimed, t *target) bool {
		admitted, suspect := d.admit(t)
		if admitted {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok := d.deliver(ctx, c, t)
				d.release(t, suspect, ok)
			}()
		}
		return admitted
	}
	for ctx.Err() == nil {
		var back []NotificationID
		kept := held[:0]
		for _, h := range held {
			switch {
			case time.Since(h.claimedAt) > d.opt.Lease/2:
				back = append(back, h.c.ID)
			case !start(h.c, h.t):
				kept = append(kept, h)
			}
		}
		held = kept
		d.handBack(ctx, back)

		free := d.opt.Workers - int(d.inflight.Load())
		if free <= 0 || len(held) >= queueDepth*d.opt.Workers {
			d.wait(ctx, d.opt.PollInterval)
			continue
		}
		skipInst, skipOrg := d.skips()
		claimedAt := time.Now()
		claimed, err := d.store.ClaimNotifications(ctx, Claim{
			Limit: min(free, 32), Lease: d.opt.Lease, SkipInstances: skipInst, SkipOrganizations: skipOrg,
			PerInstance: queueDepth * d.opt.PerInstance, PerOrganization: queueDepth * d.opt.PerOrganization,
		})
		if err != nil {
			if ctx.Err() == nil {
				d.opt.Log.Error().Err(err).Msg("claim notifications")
			}
			d.wait(ctx, d.opt.PollInterval)
			continue
		}
		if len(claimed) == 0 {
			if len(skipInst)+len(skipOrg)+len(held) > 0 {
				// What is due may all be for busy or resting consumers: wait
				// for a delivery to finish, or the next poll.
				d.wait(ctx, d.opt.PollInterval)
			} else {
				d.wait(ctx, d.idle(ctx))
			}
			continue
		}
		targets := map[int64]*target{}
		for _, c := range claimed {
			t, ok := targets[c.InstanceID]
			if !ok {
				t = d.target(ctx, c.InstanceID)
				targets[c.InstanceID] = t
			}
			if !start(c, t) {
				held = append(held, heldClaim{c: c, t: t, claimedAt: claimedAt})
			}
		}
	}
	var back []NotificationID
	for _, h := range held {
		back = append(back, h.c.ID)
	}
	d.handBack(ctx, back)
}

// heldClaim is a claimed notification waiting for its caps to have room.
type heldClaim struct {
	c         Claimed
	t         *target
	claimedAt time.Time
}

// handBack makes claimed notifications due again in a few hundred
// milliseconds, without counting a try.
func (d *Delivery) handBack(ctx context.Context, ids []NotificationID) {
	if len(ids) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.store.DeferNotifications(wctx, ids, 100*time.Millisecond+rand.N(200*time.Millisecond)); err != nil {
		d.opt.Log.Error().Err(err).Msg("defer notifications") // their leases run out instead
	}
}

// skips lists the instances whose next delivery could not start now (their
// own cap or their host's is reached, or their endpoint is resting, or failing
// and busy) and the organizations at their cap, so the next claim leaves them
// for later instead of claiming them only to hand them back.
func (d *Delivery) skips() (inst, org []int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for id, r := range d.known {
		if !d.roomFor(id, r, now) {
			inst = append(inst, id)
		}
	}
	for id, n := range d.orgBusy {
		if n >= d.opt.PerOrganization {
			org = append(org, id)
		}
	}
	return inst, org
}

// roomFor reports whether a delivery to the instance may start now. d.mu is held.
func (d *Delivery) roomFor(id int64, r route, now time.Time) bool {
	if d.instBusy[id] >= d.opt.PerInstance || d.orgBusy[r.org] >= d.opt.PerOrganization || r.host != "" && d.hostBusy[r.host] >= d.opt.PerHost {
		return false
	}
	if e := d.endpoints[r.url]; e != nil {
		if now.Before(e.openUntil) || e.busy > 0 || d.suspects >= max(d.opt.Workers/2, 1) {
			return false
		}
	}
	return true
}

// idle is how long to sleep when nothing is due: until the next notification
// is, within the poll interval.
func (d *Delivery) idle(ctx context.Context) time.Duration {
	next, ok, err := d.store.NextNotificationDue(ctx)
	if err != nil || !ok {
		return d.opt.PollInterval
	}
	return min(max(time.Until(next), time.Millisecond), d.opt.PollInterval)
}

// wait sleeps for dur, or until a delivery finishes or ctx ends.
func (d *Delivery) wait(ctx context.Context, dur time.Duration) {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-d.freed:
	case <-d.woken:
	}
}

// admit takes a slot for a delivery to t when every cap has room, and
// reports whether it did, and whether it took it as a try of a failing
// endpoint.
func (d *Delivery) admit(t *target) (admitted, suspect bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if int(d.inflight.Load()) >= d.opt.Workers || !d.roomFor(t.instanceID, t.route, d.now()) {
		return false, false
	}
	d.inflight.Add(1)
	d.instBusy[t.instanceID]++
	d.orgBusy[t.org]++
	if t.host != "" {
		d.hostBusy[t.host]++
	}
	if e := d.endpoints[t.url]; e != nil {
		e.busy++
		d.suspects++
		suspect = true
	}
	return true, suspect
}

// release ends a delivery to t that admit took as suspect or not, and updates
// its endpoint's breaker with how the try went (ok: delivered; a target with
// nowhere to deliver leaves the breaker alone).
func (d *Delivery) release(t *target, suspect, ok bool) {
	d.mu.Lock()
	dec := func(m map[int64]int, k int64) {
		if m[k]--; m[k] <= 0 {
			delete(m, k)
		}
	}
	dec(d.instBusy, t.instanceID)
	dec(d.orgBusy, t.org)
	if t.host != "" {
		if d.hostBusy[t.host]--; d.hostBusy[t.host] <= 0 {
			delete(d.hostBusy, t.host)
		}
	}
	e := d.endpoints[t.url]
	if suspect {
		d.suspects--
		if e != nil { // nil when the endpoint succeeded meanwhile, or was forgotten
			e.busy--
		}
	}
	switch {
	case t.err != "":
	case ok:
		if e != nil && e.busy > 0 {
			break // another try is under way: its end decides
		}
		delete(d.endpoints, t.url)
	default:
		if e == nil {
			if len(d.endpoints) >= 100_000 {
				clear(d.endpoints) // forget the oldest trouble rather than grow without end
			}
			e = &endpoint{}
			d.endpoints[t.url] = e
		}
		e.failures++
		if n := e.failures - d.opt.BreakerAfter; n >= 0 {
			pause := min(d.opt.BreakerPause<<min(n, 20), 20*d.opt.BreakerPause)
			e.openUntil = d.now().Add(pause)
			if n == 0 {
				d.opt.Log.Warn().Int64("instance_id", t.instanceID).Int("failures", e.failures).Dur("pause", pause).
					Msg("the callback keeps failing; its notifications stay pending and wait before the next try")
			}
		}
	}
	d.mu.Unlock()
	d.inflight.Add(-1)
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// target is where and how an instance's notifications go.
type target struct {
	route
	key              string
	name, elementKey string
	err              string // set when there is nowhere to deliver
	instanceID       int64
}

func (d *Delivery) target(ctx context.Context, id int64) *target {
	t := &target{instanceID: id}
	inst, err := d.store.InstanceByID(ctx, id)
	if err != nil {
		t.err = "load instance: " + err.Error()
		return t
	}
	t.org = inst.OrganizationID
	t.name, t.elementKey = inst.Name, inst.ElementKey
	t.key = inst.Secrets[instances.KeyEventSignatureKey]
	el, ok := d.catalog.Lookup(inst.ElementKey)
	if !ok {
		t.err = "unknown element " + inst.ElementKey
		return t
	}
	t.url = instances.Value(el, inst, instances.KeyEventCallback)
	u, err := url.Parse(t.url)
	if t.url == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.err = "the instance has no valid event.notification.callback.url; set it and redeliver"
		return t
	}
	t.host = u.Host
	d.mu.Lock()
	if len(d.known) > 100_000 {
		clear(d.known) // forget instances not seen lately; they are learned again
	}
	d.known[id] = t.route
	d.mu.Unlock()
	return t
}

// payload is the body of a notification, as Open Connectors sends it.
type payload struct {
	EventID        string          `json:"eventId"`
	NotificationID NotificationID  `json:"notificationId"`
	InstanceID     int64           `json:"instanceId"`
	InstanceName   string          `json:"instanceName"`
	ElementKey     string          `json:"elementKey"`
	Events         []Event         `json:"events"`
	Raw            json.RawMessage `json:"raw"`
}

// deliver makes one try and records it. Once started, it is not cancelled with
// ctx: an abandoned POST the consumer may have received is a duplicate for
// nothing.
func (d *Delivery) deliver(ctx context.Context, c Claimed, t *target) bool {
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opt.Timeout+10*time.Second)
	defer cancel()
	log := d.opt.Log.With().Int64("instance_id", c.InstanceID).Str("event_id", c.EventID).Int64("notification_id", int64(c.ID)).Logger()
	o := Outcome{At: time.Now()}
	if t.err != "" {
		o.Error = t.err
	} else {
		o.HTTPStatus, o.Error = d.post(work, c, t)
	}
	o.Duration = time.Since(o.At)
	o.Delivered = o.Error == ""
	if !o.Delivered {
		failures := c.Failures + 1
		if failures > d.opt.MaxRetries {
			o.Failed = true
		} else {
			o.NextTry = time.Now().Add(d.Backoff(failures))
		}
	}
	if err := d.store.RecordDelivery(work, c.ID, o); err != nil {
		log.Error().Err(err).Msg("record notification delivery; it will be tried again when its lease runs out")
		return o.Delivered
	}
	switch {
	case o.Delivered:
		d.opt.Observer.NotificationTried("delivered")
		log.Debug().Int("status", o.HTTPStatus).Dur("took", o.Duration).Msg("notification delivered")
	case o.Failed:
		d.opt.Observer.NotificationTried("failed")
		log.Warn().Int("status", o.HTTPStatus).Str("error", o.Error).Msg("notification failed; no retry left")
	default:
		d.opt.Observer.NotificationTried("retrying")
		log.Info().Int("status", o.HTTPStatus).Str("error", o.Error).Time("retry", o.NextTry).Msg("notification delivery failed; will retry")
	}
	return o.Delivered
}

// post sends the notification and returns the HTTP status, and why it failed
// (empty when it succeeded).
func (d *Delivery) post(ctx context.Context, c Claimed, t *target) (int, string) {
	body, err := json.Marshal(payload{
		EventID: c.EventID, NotificationID: c.ID, InstanceID: c.InstanceID, InstanceName: t.name,
		ElementKey: t.elementKey, Events: c.Events, Raw: c.Raw,
	})
	if err != nil {
		return 0, "encode notification: " + err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "connectord")
	if c.Traceparent != "" {
		req.Header.Set(trace.Header, c.Traceparent)
	}
	if t.key != "" {
		req.Header.Set(SignatureHeader, Signature(t.key, body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, transportError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, "the callback answered " + strconv.Itoa(resp.StatusCode)
	}
	return resp.StatusCode, ""
}

// transportError says why a POST got no answer without repeating the callback
// URL, whose query string may carry the consumer's own secret: the error is
// stored with the notification and logged.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the callback did not answer in time"
	}
	// Neither says which address a name resolved to: a caller must not be
	// able to map connectord's network through its callback's errors.
	if errors.Is(err, ErrPrivateDestination) {
		return ErrPrivateDestination.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return "no answer from the callback: its host name does not resolve"
		}
		return "no answer from the callback: its host name could not be resolved"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	return "no answer from the callback: " + err.Error()
}

// Backoff is the wait before the n-th retry (n from 1): BackoffBase·4^n, times
// a random factor in [0.8, 1.2) so consumers that failed together do not get
// every retry at the same instant. With the default base the nine waits are
// about 4 s, 16 s, 64 s, 4 min, 17 min, 68 min, 4.6 h, 18 h and 3 days.
func (d *Delivery) Backoff(n int) time.Duration {
	w := d.opt.BackoffBase
	for range n {
		w *= 4
	}
	return w*8/10 + rand.N(w*4/10+1)
}
