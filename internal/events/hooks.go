package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/upstream"
)

// Hook statuses: Keap's three, and Unregistered for a hook Keap has not
// accepted (yet).
const (
	HookUnregistered = "Unregistered"
	HookUnverified   = "Unverified"
	HookVerified     = "Verified"
	HookInactive     = "Inactive"
)

// ReceiverPath is where Keap delivers, under CONNECTORD_PUBLIC_URL; the last
// segment is the hook's secret.
const ReceiverPath = "/events/keap/"

// Hook is a Keap REST hook connectord keeps for an instance: one event key,
// pointed at a receiver URL whose secret only its SHA-256 is kept of.
type Hook struct {
	EventKey     string     `json:"eventKey"`
	ObjectType   string     `json:"objectType,omitempty"` // the resource, e.g. contacts
	EventType    string     `json:"eventType,omitempty"`  // CREATED, UPDATED or DELETED
	HookKey      string     `json:"hookKey,omitempty"`    // Keap's key
	Status       string     `json:"status"`
	CheckedDate  *time.Time `json:"checkedDate,omitempty"` // when Keap last told its status
	LastError    string     `json:"lastError,omitempty"`
	UpdatedDate  time.Time  `json:"updatedDate"`
	InstanceID   int64      `json:"-"`
	ReceiverBase string     `json:"-"` // CONNECTORD_PUBLIC_URL when it was pointed there
}

// HookState is an instance's hooks as GET /instances/{id}/events/hooks shows them.
type HookState struct {
	Hooks         []Hook     `json:"hooks"`
	Problem       string     `json:"problem,omitempty"` // what of the configuration cannot be honoured
	NextCheckDate *time.Time `json:"nextCheckDate,omitempty"`
}

// HookStore is what the hook reconciler needs from the database. Each method
// is one transaction.
type HookStore interface {
	// ClaimHookInstances claims up to limit instances whose hooks are due for a
	// look (changed since the last, or their check is due), skipping those
	// other replicas claimed, by moving them a lease into the future.
	ClaimHookInstances(ctx context.Context, limit int, lease time.Duration) ([]int64, error)
	InstanceByID(ctx context.Context, id int64) (*instances.Instance, error)
	InstanceHooks(ctx context.Context, instanceID int64) ([]Hook, error)
	// PrepareHook records the receiver secret (its hash) a hook is about to be
	// pointed at, creating the hook's row if need be; it commits before Keap
	// is called, since Keap verifies the receiver before it answers.
	PrepareHook(ctx context.Context, instanceID int64, eventKey string, secretHash []byte) error
	// SaveHook records a hook's key, status, receiver base, check time and error.
	SaveHook(ctx context.Context, h Hook) error
	DeleteHook(ctx context.Context, instanceID int64, eventKey string) error
	// FinishHooks records when the instance is next due (nil: only when it
	// changes) and the configuration problem, if any.
	FinishHooks(ctx context.Context, instanceID int64, due *time.Time, problem string) error
	// HookState returns the instance's hooks for its organization, and its element key.
	HookState(ctx context.Context, orgID, instanceID int64) (HookState, string, error)
	// HookBySecret finds the hook whose receiver secret hashes to secretHash
	// (apperr.NotFound when none does).
	HookBySecret(ctx context.Context, secretHash []byte) (HookTarget, error)
	// HookKeyKnown reports whether any instance's hook has Keap key hookKey.
	HookKeyKnown(ctx context.Context, hookKey string) (bool, error)
	// LeaseHooks takes the reconciler's lease on an instance for d unless a
	// reconciler holds it now, and reports whether it did.
	LeaseHooks(ctx context.Context, instanceID int64, d time.Duration) (bool, error)
}

// KeapCaller sends one call to Keap for an instance (upstream.Client): the
// credential, the rate limits and the retries are its business. The hook
// reconciler and the poller both use it.
type KeapCaller interface {
	Do(ctx context.Context, t upstream.Target, req *http.Request, body []byte) (*http.Response, error)
}

// HookOptions tune the reconciler. Zero values take the defaults.
type HookOptions struct {
	PublicURL     string        // CONNECTORD_PUBLIC_URL: where Keap reaches the receiver
	CheckInterval time.Duration // how often Verified hooks' status is asked; default 15m
	RetryInterval time.Duration // how soon a hook not Verified, or a failed call, is tried again; default 1m, at most CheckInterval
	PollInterval  time.Duration // how often the database is asked for due instances; default 5s, at most CheckInterval
	Lease         time.Duration // how long a claimed instance is kept from other replicas; default 2m
	Workers       int           // instances reconciled at once per process; default 4
	RemoveTimeout time.Duration // bounds deleting an instance's hooks on instance deletion; default 10s
	Log           zerolog.Logger
	Now           func() time.Time
}

func (o *HookOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CheckInterval, 15*time.Minute)
	def(&o.RetryInterval, time.Minute)
	def(&o.PollInterval, 5*time.Second)
	def(&o.Lease, 2*time.Minute)
	def(&o.RemoveTimeout, 10*time.Second)
	o.RetryInterval = min(o.RetryInterval, o.CheckInterval)
	o.PollInterval = min(o.PollInterval, o.CheckInterval)
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
}

// Hooks keeps every instance's Keap REST hooks as its configuration asks:
// registered when events are enabled in webhook mode, one per event key of
// each resource in event.objects, checked periodically and verified again when
// Keap left them Unverified or made them Inactive, and deleted when no longer
// wanted. It works from the database, so any replica can pick up a change made
// on another; Changed makes this process look at once.
type Hooks struct {
	store   HookStore
	catalog *elements.Catalog
	keap    KeapCaller
	opt     HookOptions
	wake    chan struct{}
}

// NewHooks returns a Hooks reconciler.
func NewHooks(store HookStore, catalog *elements.Catalog, keap KeapCaller, opt HookOptions) *Hooks {
	opt.defaults()
	return &Hooks{store: store, catalog: catalog, keap: keap, opt: opt, wake: make(chan struct{}, 1)}
}

// Changed says an instance was created or changed: this process looks for due
// instances now rather than at its next poll. (The database, not the id,
// says what is due, so a change made on another replica is found by the poll.)
func (h *Hooks) Changed(int64) {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Run reconciles due instances until ctx ends; reconciles under way finish first.
func (h *Hooks) Run(ctx context.Context) {
	for ctx.Err() == nil {
		ids, err := h.store.ClaimHookInstances(ctx, h.opt.Workers, h.opt.Lease)
		if err != nil {
			if ctx.Err() == nil {
				h.opt.Log.Error().Err(err).Msg("claim instances for hook reconciliation")
			}
			h.sleep(ctx)
			continue
		}
		if len(ids) == 0 {
			h.sleep(ctx)
			continue
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				// Not cancelled with ctx: a registration abandoned half way
				// leaves a hook at Keap that connectord does not know.
				work, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opt.Lease/2)
				defer cancel()
				if err := h.Reconcile(work, id); err != nil {
					h.opt.Log.Error().Err(err).Int64("instance_id", id).Msg("reconcile hooks; its lease runs out and it is tried again")
				}
			})
		}
		wg.Wait()
	}
}

func (h *Hooks) sleep(ctx context.Context) {
	t := time.NewTimer(h.opt.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-h.wake:
	}
}

// wantedHook is one hook an instance's configuration asks for.
type wantedHook struct {
	eventKey, resource, eventType string
}

// wantedHooks lists the hooks inst's configuration asks for, and what of it
// cannot be honoured.
func wantedHooks(el *elements.Element, inst *instances.Instance) ([]wantedHook, string) {
	if instances.Value(el, inst, instances.KeyEventsEnabled) != "true" {
		return nil, ""
	}
	if instances.EventMode(el, inst) != instances.EventsWebhook {
		return nil, ""
	}
	var out []wantedHook
	var bad []string
	for _, name := range instances.EventObjects(el, inst) {
		res, ok := el.Resource(name)
		if !ok || res.Events == nil || len(res.Events.EventKeys) == 0 {
			bad = append(bad, name)
			continue
		}
		for _, typ := range slices.Sorted(maps.Keys(res.Events.EventKeys)) {
			w := wantedHook{eventKey: res.Events.EventKeys[typ], resource: name, eventType: typ}
			if !slices.ContainsFunc(out, func(o wantedHook) bool { return o.eventKey == w.eventKey }) {
				out = append(out, w)
			}
		}
	}
	problem := ""
	if len(bad) > 0 {
		problem = fmt.Sprintf("%s: %s produce no Keap REST hooks; resources with hooks: %s",
			instances.KeyEventObjects, strings.Join(bad, ", "), strings.Join(hookResources(el), ", "))
	}
	return out, problem
}

// hookResources lists the element's resources that have Keap hooks.
func hookResources(el *elements.Element) []string {
	var out []string
	for _, r := range el.Resources {
		if r.Events != nil && len(r.Events.EventKeys) > 0 {
			out = append(out, r.Name)
		}
	}
	sort.Strings(out)
	return out
}

// hookEvent maps a Keap event key back to the element's resource and event type.
func hookEvent(el *elements.Element, eventKey string) (resource, eventType string, ok bool) {
	for _, r := range el.Resources {
		if r.Events == nil {
			continue
		}
		for typ, key := range r.Events.EventKeys {
			if key == eventKey {
				return r.Name, typ, true
			}
		}
	}
	return "", "", false
}

// Reconcile brings one instance's hooks at Keap in line with its
// configuration and records the outcome.
func (h *Hooks) Reconcile(ctx context.Context, id int64) error {
	inst, err := h.store.InstanceByID(ctx, id)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil // deleted meanwhile; its rows went with it
	}
	if err != nil {
		return err
	}
	el, ok := h.catalog.Lookup(inst.ElementKey)
	if !ok {
		return h.store.FinishHooks(ctx, id, nil, "unknown element "+inst.ElementKey)
	}
	log := h.opt.Log.With().Int64("instance_id", id).Logger()
	wanted, problem := wantedHooks(el, inst)
	have, err := h.store.InstanceHooks(ctx, id)
	if err != nil {
		return err
	}
	t := upstream.TargetFor(el, inst)
	t.Background = true // nobody waits for it: interactive calls go first on the quota
	if !inst.Valid && (len(wanted) > 0 || len(have) > 0) {
		// Keap would refuse its credentials; repairing it changes the
		// instance, which makes it due again.
		problem = strings.TrimPrefix(problem+"; ", "; ") + "the instance is not valid (" + inst.InvalidReason + "): its hooks are looked at again once it is repaired"
		return h.store.FinishHooks(ctx, id, nil, problem)
	}
	if t.Legacy {
		if len(wanted) > 0 {
			problem = strings.TrimPrefix(problem+"; ", "; ") + "with CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL set, a legacy API key cannot register Keap REST hooks: unset it, or use a service account key or OAuth"
		}
		return h.store.FinishHooks(ctx, id, nil, problem)
	}
	if slices.ContainsFunc(have, func(hk Hook) bool { return hk.HookKey == "" && hk.LastError != "" }) {
		// A registration failed: Keap may have created the hook and lost
		// the answer. Adopt such hooks, and delete strays, before
		// registering anew.
		h.sweep(ctx, t, id, have, log)
	}
	now := h.opt.Now()
	settled := true // every wanted hook Verified, every unwanted one deleted
	for _, hk := range have {
		if slices.ContainsFunc(wanted, func(w wantedHook) bool { return w.eventKey == hk.EventKey }) {
			continue
		}
		if err := h.deleteAtKeap(ctx, t, hk); err != nil {
			settled = false
			hk.LastError = err.Error()
			log.Warn().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Str("error", hk.LastError).Msg("could not delete a Keap hook no longer wanted; will retry")
			if err := h.store.SaveHook(ctx, hk); err != nil {
				return err
			}
			continue
		}
		log.Info().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Msg("deleted Keap hook no longer wanted")
		if err := h.store.DeleteHook(ctx, id, hk.EventKey); err != nil {
			return err
		}
	}
	for _, w := range wanted {
		i := slices.IndexFunc(have, func(hk Hook) bool { return hk.EventKey == w.eventKey })
		var hk Hook
		if i >= 0 {
			hk = have[i]
		} else {
			hk = Hook{InstanceID: id, EventKey: w.eventKey, Status: HookUnregistered}
		}
		switch {
		case hk.HookKey == "":
			hk = h.point(ctx, t, hk, http.MethodPost, log)
		case hk.ReceiverBase != h.opt.PublicURL:
			hk = h.point(ctx, t, hk, http.MethodPut, log)
		case hk.Status != HookVerified || hk.CheckedDate == nil || now.Sub(*hk.CheckedDate) >= h.opt.CheckInterval:
			hk = h.check(ctx, t, hk, log)
		default:
			continue
		}
		if hk.Status != HookVerified {
			settled = false
		}
		if err := h.store.SaveHook(ctx, hk); err != nil {
			return err
		}
	}
	var due *time.Time
	switch {
	case !settled:
		d := h.opt.Now().Add(h.opt.RetryInterval)
		due = &d
	case len(wanted) > 0:
		d := h.opt.Now().Add(h.opt.CheckInterval)
		due = &d
	}
	return h.store.FinishHooks(ctx, id, due, problem)
}

// restHook is Keap's RestHook.
type restHook struct {
	Key      string `json:"key"`
	EventKey string `json:"eventKey"`
	HookURL  string `json:"hookUrl"`
	Status   string `json:"status"`
}

// restHookRequest is Keap's RestHookRequest, the body of POST and PUT /hooks.
type restHookRequest struct {
	EventKey string `json:"eventKey"`
	HookURL  string `json:"hookUrl"`
}

// point registers a hook at Keap (POST) or moves one to the current receiver
// URL (PUT), with a fresh secret recorded first: Keap runs the verification
// handshake before it answers.
func (h *Hooks) point(ctx context.Context, t upstream.Target, hk Hook, method string, log zerolog.Logger) Hook {
	secret := secrets.NewToken()
	hookURL := h.opt.PublicURL + ReceiverPath + secret
	if err := h.store.PrepareHook(ctx, hk.InstanceID, hk.EventKey, secrets.Hash(secret)); err != nil {
		hk.LastError = "record the receiver secret: " + err.Error()
		return hk
	}
	path := "/hooks"
	if method == http.MethodPut {
		path += "/" + url.PathEscape(hk.HookKey)
	}
	got, status, err := h.call(ctx, t, method, path, restHookRequest{EventKey: hk.EventKey, HookURL: hookURL}, secret)
	if method == http.MethodPut && status == http.StatusNotFound {
		hk.HookKey = "" // gone at Keap: register it anew
		return h.point(ctx, t, hk, http.MethodPost, log)
	}
	if err == nil && got.Key == "" {
		err = fmt.Errorf("Keap answered %s %s without the hook's key", method, path)
	}
	if err != nil {
		if method == http.MethodPost {
			hk.HookKey, hk.Status = "", HookUnregistered
		}
		hk.LastError = err.Error()
		log.Warn().Str("event_key", hk.EventKey).Str("error", hk.LastError).Msg("could not register the Keap hook; will retry")
		return hk
	}
	// Only now does Keap's hook point at the new URL; until then a failed
	// move is tried again, because the recorded base still differs.
	now := h.opt.Now()
	hk.HookKey, hk.Status, hk.CheckedDate, hk.ReceiverBase = got.Key, got.Status, &now, h.opt.PublicURL
	hk.LastError = h.verdict(hk)
	ev := log.Info()
	if hk.Status != HookVerified {
		ev = log.Warn()
	}
	ev.Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Str("status", hk.Status).Str("method", method).Msg("registered Keap hook")
	return hk
}

// check asks Keap for a hook's status and asks it to verify a hook it left
// Unverified or made Inactive.
func (h *Hooks) check(ctx context.Context, t upstream.Target, hk Hook, log zerolog.Logger) Hook {
	got, status, err := h.call(ctx, t, http.MethodGet, "/hooks/"+url.PathEscape(hk.HookKey), nil, "")
	if status == http.StatusNotFound {
		log.Warn().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Msg("Keap no longer has the hook; registering it again")
		hk.HookKey = ""
		return h.point(ctx, t, hk, http.MethodPost, log)
	}
	if err != nil {
		hk.LastError = err.Error()
		log.Warn().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Str("error", hk.LastError).Msg("could not check the Keap hook; will retry")
		return hk
	}
	now := h.opt.Now()
	hk.Status, hk.CheckedDate = got.Status, &now
	if hk.Status == HookVerified {
		hk.LastError = ""
		return hk
	}
	was := hk.Status
	got, _, err = h.call(ctx, t, http.MethodPost, "/hooks/"+url.PathEscape(hk.HookKey)+"/verify", nil, "")
	if err != nil {
		hk.LastError = err.Error()
		log.Warn().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Str("status", was).Str("error", hk.LastError).Msg("could not ask Keap to verify the hook; will retry")
		return hk
	}
	now = h.opt.Now()
	hk.Status, hk.CheckedDate = got.Status, &now
	hk.LastError = h.verdict(hk)
	ev := log.Info()
	if hk.Status != HookVerified {
		ev = log.Warn()
	}
	ev.Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Str("was", was).Str("status", hk.Status).Msg("asked Keap to verify the hook again")
	return hk
}

// sweep lists the Keap account's hooks and, among those pointing at this
// receiver: adopts one whose secret is that of an instance's hook Keap's
// answer never reached (its key is recorded in have), and deletes one whose
// secret and key no hook has (left by a registration whose answer was lost
// and that was registered anew, or by an instance whose deletion could not
// reach Keap). Deliveries to such a hook could only ever be answered 404.
func (h *Hooks) sweep(ctx context.Context, t upstream.Target, id int64, have []Hook, log zerolog.Logger) {
	list, err := h.list(ctx, t)
	if err != nil {
		log.Warn().Str("error", err.Error()).Msg("could not list Keap hooks to find strays")
		return
	}
	prefix := h.opt.PublicURL + ReceiverPath
	for _, kh := range list {
		secret, ok := strings.CutPrefix(kh.HookURL, prefix)
		if !ok || secret == "" || strings.Contains(secret, "/") {
			continue
		}
		owner, err := h.store.HookBySecret(ctx, secrets.Hash(secret))
		switch {
		case err == nil:
			if owner.InstanceID != id {
				continue
			}
			i := slices.IndexFunc(have, func(hk Hook) bool { return hk.EventKey == owner.EventKey && hk.HookKey == "" })
			if i >= 0 && kh.EventKey == owner.EventKey {
				now := h.opt.Now()
				have[i].HookKey, have[i].Status, have[i].CheckedDate, have[i].LastError = kh.Key, kh.Status, &now, ""
				have[i].ReceiverBase = h.opt.PublicURL
				if err := h.store.SaveHook(ctx, have[i]); err != nil {
					log.Error().Err(err).Str("hook_key", kh.Key).Msg("record an adopted Keap hook")
					continue
				}
				log.Info().Str("event_key", kh.EventKey).Str("hook_key", kh.Key).Str("status", kh.Status).Msg("adopted a Keap hook whose registration answer was lost")
			}
		case apperr.CodeOf(err) == apperr.NotFound:
			if known, err := h.store.HookKeyKnown(ctx, kh.Key); err != nil || known {
				continue // being moved to a new secret, or cannot tell: keep it
			}
			if err := h.deleteAtKeap(ctx, t, Hook{HookKey: kh.Key}); err != nil {
				log.Warn().Str("hook_key", kh.Key).Str("error", err.Error()).Msg("could not delete a stray Keap hook")
				continue
			}
			log.Info().Str("event_key", kh.EventKey).Str("hook_key", kh.Key).Msg("deleted a stray Keap hook pointing at no hook's secret")
		}
	}
}

// list returns the Keap account's hooks (GET /hooks).
func (h *Hooks) list(ctx context.Context, t upstream.Target) ([]restHook, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.RESTBase+"/hooks", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.keap.Do(ctx, t, req, nil)
	if err != nil {
		return nil, fmt.Errorf("Keap GET /hooks: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("Keap GET /hooks: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("Keap answered GET /hooks with %d: %s", resp.StatusCode, keap.ErrorMessage(data))
	}
	var out []restHook
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("Keap answered GET /hooks with a body that is not a list of RestHooks: %w", err)
	}
	return out, nil
}

// verdict explains a hook status that lets no event through.
func (h *Hooks) verdict(hk Hook) string {
	switch hk.Status {
	case HookVerified:
		return ""
	case HookUnverified, HookInactive:
		return fmt.Sprintf("Keap reports the hook %s: its verification request to %s%s… was not answered by connectord; "+
			"CONNECTORD_PUBLIC_URL must be reachable from Keap (connectord asks Keap to verify again every %s)",
			hk.Status, h.opt.PublicURL, ReceiverPath, h.opt.RetryInterval)
	}
	return "Keap reports the unknown hook status " + hk.Status
}

// deleteAtKeap deletes a hook at Keap; one Keap no longer has counts as deleted.
func (h *Hooks) deleteAtKeap(ctx context.Context, t upstream.Target, hk Hook) error {
	if hk.HookKey == "" {
		return nil
	}
	_, status, err := h.call(ctx, t, http.MethodDelete, "/hooks/"+url.PathEscape(hk.HookKey), nil, "")
	if status == http.StatusNotFound {
		return nil
	}
	return err
}

// Remove deletes an instance's hooks at Keap before the instance is deleted,
// best effort and within RemoveTimeout; what it cannot delete is logged with
// the hook keys, for deletion by hand. Keap's deliveries to a deleted
// instance's receiver are answered 404, so such hooks end Inactive.
func (h *Hooks) Remove(ctx context.Context, inst *instances.Instance) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opt.RemoveTimeout)
	defer cancel()
	log := h.opt.Log.With().Int64("instance_id", inst.ID).Logger()
	// Take the instance from the reconciler first, waiting a little for one
	// at work on it, so none registers a hook after these are deleted.
	wait, cancelWait := context.WithTimeout(ctx, h.opt.RemoveTimeout/2)
	for {
		taken, err := h.store.LeaseHooks(ctx, inst.ID, h.opt.RemoveTimeout)
		if taken || err != nil || sleepCtx(wait, 50*time.Millisecond) != nil {
			if !taken {
				log.Warn().Err(err).Msg("deleting the instance's Keap hooks while the reconciler may still be at work on them")
			}
			break
		}
	}
	cancelWait()
	hooks, err := h.store.InstanceHooks(ctx, inst.ID)
	if err != nil {
		log.Error().Err(err).Msg("list the instance's Keap hooks before deleting it; any it had stay at Keap")
		return
	}
	el, ok := h.catalog.Lookup(inst.ElementKey)
	if !ok || len(hooks) == 0 {
		return
	}
	t := upstream.TargetFor(el, inst)
	var left []string
	for _, hk := range hooks {
		if err := h.deleteAtKeap(ctx, t, hk); err != nil {
			left = append(left, hk.HookKey)
			log.Warn().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Str("error", err.Error()).Msg("could not delete the Keap hook of a deleted instance")
			continue
		}
		log.Info().Str("event_key", hk.EventKey).Str("hook_key", hk.HookKey).Msg("deleted the Keap hook of a deleted instance")
	}
	if len(left) > 0 {
		log.Warn().Strs("hook_keys", left).Msg("these Keap hooks outlive their instance: delete them with DELETE /v1/hooks/{key} at Keap; until then Keap's deliveries to them are answered 404 and Keap makes them Inactive")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// State returns an instance's hooks as its organization sees them.
func (h *Hooks) State(ctx context.Context, orgID, instanceID int64) (HookState, error) {
	st, elementKey, err := h.store.HookState(ctx, orgID, instanceID)
	if err != nil {
		return HookState{}, err
	}
	if el, ok := h.catalog.Lookup(elementKey); ok {
		for i := range st.Hooks {
			st.Hooks[i].ObjectType, st.Hooks[i].EventType, _ = hookEvent(el, st.Hooks[i].EventKey)
		}
	}
	if st.Hooks == nil {
		st.Hooks = []Hook{}
	}
	return st, nil
}

// call sends one hooks request to Keap and decodes the RestHook it answers.
// It returns Keap's status (0 when none came); err is set for anything but
// 2xx. secret, when set, is scrubbed from every error: Keap may echo the hookUrl.
func (h *Hooks) call(ctx context.Context, t upstream.Target, method, path string, body any, secret string) (restHook, int, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return restHook{}, 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, t.RESTBase+path, bytes.NewReader(raw))
	if err != nil {
		return restHook{}, 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	scrub := func(s string) string {
		if secret == "" {
			return s
		}
		return strings.ReplaceAll(s, secret, "…")
	}
	resp, err := h.keap.Do(ctx, t, req, raw)
	if err != nil {
		return restHook{}, 0, fmt.Errorf("Keap %s %s: %s", method, path, scrub(err.Error()))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return restHook{}, resp.StatusCode, fmt.Errorf("Keap %s %s: read the answer: %s", method, path, scrub(err.Error()))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return restHook{}, resp.StatusCode, fmt.Errorf("Keap answered %s %s with %d: %s", method, path, resp.StatusCode, scrub(keap.ErrorMessage(data)))
	}
	var out restHook
	if method != http.MethodDelete {
		if err := json.Unmarshal(data, &out); err != nil {
			return restHook{}, resp.StatusCode, fmt.Errorf("Keap answered %s %s with a body that is not a RestHook: %w", method, path, err)
		}
	}
	return out, resp.StatusCode, nil
}
