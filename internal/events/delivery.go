package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
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
	// ClaimNotifications claims up to limit due pending notifications (FOR
	// UPDATE SKIP LOCKED) by moving their next try lease into the future, and
	// commits: the claim survives only as that lease. Notifications of the
	// instances in skip are left alone.
	ClaimNotifications(ctx context.Context, limit int, lease time.Duration, skip []int64) ([]Claimed, error)
	// RecordDelivery records one try and the notification's new state.
	RecordDelivery(ctx context.Context, id NotificationID, o Outcome) error
	// DeferNotifications hands claimed notifications back, due after d, without
	// counting a try.
	DeferNotifications(ctx context.Context, ids []NotificationID, d time.Duration) error
	// NextNotificationDue is when the earliest pending notification is due.
	NextNotificationDue(ctx context.Context) (time.Time, bool, error)
	InstanceByID(ctx context.Context, id int64) (*instances.Instance, error)
}

// DeliveryOptions tune delivery. Zero values take the defaults.
type DeliveryOptions struct {
	BackoffBase  time.Duration // the n-th retry waits about BackoffBase·4^n; default 1s
	MaxRetries   int           // retries after the first try before failing; default 9
	Lease        time.Duration // how long a claim keeps others off; default 30s
	Timeout      time.Duration // one POST, connect to last byte; default 10s
	Workers      int           // deliveries in flight per process; default 64
	PerHost      int           // deliveries in flight per callback host per process; default 4
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
	def(&o.BackoffBase, time.Second)
	def(&o.Lease, 30*time.Second)
	def(&o.Timeout, 10*time.Second)
	def(&o.PollInterval, 500*time.Millisecond)
	if o.MaxRetries <= 0 {
		o.MaxRetries = 9
	}
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.PerHost <= 0 {
		o.PerHost = 4
	}
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
type Delivery struct {
	store   DeliveryStore
	catalog *elements.Catalog
	client  *http.Client
	opt     DeliveryOptions

	inflight atomic.Int64 // deliveries under way or waiting for their host
	freed    chan struct{}
	woken    chan struct{}
	mu       sync.Mutex
	hosts    map[string]*hostQueue
	hostOf   map[int64]string // each instance's callback host, as last seen
}

// queueDepth is how many claimed notifications may wait per delivery slot of
// a host: enough that a fast consumer's slots never run dry between claims.
const queueDepth = 4

// hostQueue is one callback host's share of the process: deliveries in flight
// (at most PerHost) and claimed ones waiting for a free slot (at most
// queueDepth·PerHost more). A waiting claim whose turn comes after half its
// lease is not sent: its lease runs out and it is claimed again, so a claim is
// never sent by two workers at once however slow the host is.
type hostQueue struct {
	busy    int
	waiting []func()
}

// NewDelivery returns a Delivery whose every connection goes through
// opt.Policy's dialer, so private destinations are refused at connect time.
func NewDelivery(store DeliveryStore, catalog *elements.Catalog, opt DeliveryOptions) *Delivery {
	opt.defaults()
	tr := &http.Transport{
		DialContext:         opt.Policy.Dialer().DialContext,
		MaxIdleConnsPerHost: opt.PerHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: opt.Timeout,
		ForceAttemptHTTP2:   true,
	}
	return &Delivery{
		store: store, catalog: catalog, opt: opt,
		client: &http.Client{Transport: tr, Timeout: opt.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not a 2xx
		}},
		freed:  make(chan struct{}, 1),
		woken:  make(chan struct{}, 1),
		hosts:  map[string]*hostQueue{},
		hostOf: map[int64]string{},
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

// Run delivers due notifications until ctx is cancelled; deliveries under way
// then finish (each bounded by the time-out) and are recorded before it returns.
func (d *Delivery) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		free := d.opt.Workers - int(d.inflight.Load())
		if free <= 0 {
			d.wait(ctx, d.opt.PollInterval)
			continue
		}
		skip := d.saturated()
		claimedAt := time.Now()
		claimed, err := d.store.ClaimNotifications(ctx, min(free, 32), d.opt.Lease, skip)
		if err != nil {
			if ctx.Err() == nil {
				d.opt.Log.Error().Err(err).Msg("claim notifications")
			}
			d.wait(ctx, d.opt.PollInterval)
			continue
		}
		if len(claimed) == 0 {
			if len(skip) > 0 {
				// What is due may all be for busy hosts: wait for one to free up.
				d.wait(ctx, d.opt.PollInterval)
			} else {
				d.wait(ctx, d.idle(ctx))
			}
			continue
		}
		targets := map[int64]*target{}
		var busy []NotificationID
		for _, c := range claimed {
			t, ok := targets[c.InstanceID]
			if !ok {
				t = d.target(ctx, c.InstanceID)
				targets[c.InstanceID] = t
			}
			wg.Add(1)
			start := func() {
				go func() {
					defer wg.Done()
					defer d.release(t.host)
					if ctx.Err() != nil {
						return // shutting down before its turn came: its lease runs out and it is sent again
					}
					if time.Since(claimedAt) > d.opt.Lease/2 {
						return // waited too long for its host: its lease runs out and it is claimed again
					}
					d.deliver(ctx, c, t)
				}()
			}
			if !d.acquire(t.host, start) {
				wg.Done()
				busy = append(busy, c.ID)
			}
		}
		if len(busy) > 0 {
			// Their hosts are at their limit and have a full queue: hand them
			// back for a moment rather than hold them, so other consumers keep
			// flowing and the lease cannot run out while they wait.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := d.store.DeferNotifications(wctx, busy, 100*time.Millisecond+rand.N(200*time.Millisecond)); err != nil {
				d.opt.Log.Error().Err(err).Msg("defer notifications") // their leases run out instead
			}
			cancel()
			if len(busy) == len(claimed) {
				d.wait(ctx, 50*time.Millisecond)
			}
		}
	}
}

// saturated lists the instances whose callback host has every slot busy and
// a full queue, so the next claim leaves their notifications for later
// instead of claiming them only to hand them back.
func (d *Delivery) saturated() []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var skip []int64
	for id, host := range d.hostOf {
		if q := d.hosts[host]; q != nil && q.busy >= d.opt.PerHost && len(q.waiting) >= queueDepth*d.opt.PerHost {
			skip = append(skip, id)
		}
	}
	return skip
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

// acquire starts a delivery to host now when the host has a free slot, or
// queues it behind the ones in flight; it reports false, doing neither, when
// the host's queue is full too.
func (d *Delivery) acquire(host string, start func()) bool {
	d.mu.Lock()
	q := d.hosts[host]
	if q == nil {
		q = &hostQueue{}
		d.hosts[host] = q
	}
	switch {
	case q.busy < d.opt.PerHost:
		q.busy++
	case len(q.waiting) < queueDepth*d.opt.PerHost:
		q.waiting = append(q.waiting, start)
		d.mu.Unlock()
		d.inflight.Add(1)
		return true
	default:
		d.mu.Unlock()
		return false
	}
	d.mu.Unlock()
	d.inflight.Add(1)
	start()
	return true
}

// release ends a delivery to host: its slot goes to the next one waiting for
// the host, if any.
func (d *Delivery) release(host string) {
	d.mu.Lock()
	q := d.hosts[host]
	var next func()
	if len(q.waiting) > 0 {
		next, q.waiting = q.waiting[0], q.waiting[1:]
	} else if q.busy--; q.busy == 0 {
		delete(d.hosts, host)
	}
	d.mu.Unlock()
	d.inflight.Add(-1)
	if next != nil {
		next()
	}
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// target is where and how an instance's notifications go.
type target struct {
	url, host, key   string
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
	if len(d.hostOf) > 100_000 {
		clear(d.hostOf) // forget instances not seen lately; they are learned again
	}
	d.hostOf[id] = t.host
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
func (d *Delivery) deliver(ctx context.Context, c Claimed, t *target) {
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
		return
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
