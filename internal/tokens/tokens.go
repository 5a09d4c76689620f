// Package tokens owns the life of instances' OAuth tokens: a background
// refresher that renews every token before it expires, and the inline refresh
// that calls needing a token (the proxy, the poller, hook registration) use when
// a token is about to expire or Keap answers 401.
//
// Keap's refresh tokens rotate: each refresh invalidates the one it used. So
// every refresh, background or inline, runs inside one PostgreSQL transaction
// that holds the instance's row lock: it re-reads the credentials after taking
// the lock, calls the token endpoint, and commits the new tokens before the lock
// is released. Once started, that transaction is not cancelled with the caller's
// context. Replicas share nothing but the database: the refresher claims due
// instances with FOR UPDATE SKIP LOCKED, so no two replicas (or workers) refresh
// the same instance at once.
//
// It must not log or return tokens, and must never mark an instance invalid for
// a failure that may pass (time-outs, 5xx, 429).
package tokens

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/oauthflow"
)

// Store is what the token lifecycle needs from the database. Each method is one
// transaction holding the instance's row lock while fn runs.
type Store interface {
	UpdateDueInstance(ctx context.Context, now time.Time, fn func(*instances.Instance) error) (bool, error)
	UpdateInstance(ctx context.Context, orgID, id int64, fn func(*instances.Instance) error) (*instances.Instance, error)
	Instance(ctx context.Context, orgID, id int64) (*instances.Instance, error)
}

// Options tune the lifecycle. Zero values take the defaults.
type Options struct {
	Margin       time.Duration // refresh when the access token expires within this; default 15m
	InlineMargin time.Duration // a call refreshes first when the token expires within this; default 1m
	MaxIdle      time.Duration // the longest time between two refreshes, whatever the instance says; default 7 days
	BackoffBase  time.Duration // first retry after a transient failure; default 30s
	BackoffMax   time.Duration // longest retry delay; default 15m
	PollInterval time.Duration // how often an idle worker looks for due instances; default 5s
	Workers      int           // concurrent refreshes per process; default 4
	CallTimeout  time.Duration // one token endpoint call; default 30s
	Client       *http.Client
	Now          func() time.Time
	Log          zerolog.Logger
	// Observer is told each refresh's outcome (internal/metrics); nil tells no one.
	Observer Observer
}

// Observer is told each refresh's outcome: refreshed, refused (the instance
// became invalid), failed (retried later) or no_refresh_token.
type Observer interface {
	TokenRefreshed(outcome string)
}

type nopObserver struct{}

func (nopObserver) TokenRefreshed(string) {}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Margin, 15*time.Minute)
	def(&o.InlineMargin, time.Minute)
	def(&o.MaxIdle, 7*24*time.Hour)
	def(&o.BackoffBase, 30*time.Second)
	def(&o.BackoffMax, 15*time.Minute)
	def(&o.PollInterval, 5*time.Second)
	def(&o.CallTimeout, 30*time.Second)
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
}

// Service runs the token lifecycle.
type Service struct {
	store   Store
	catalog *elements.Catalog
	opt     Options
}

// New returns a Service.
func New(store Store, catalog *elements.Catalog, opt Options) *Service {
	opt.defaults()
	return &Service{store: store, catalog: catalog, opt: opt}
}

// Run refreshes due instances with Options.Workers workers until ctx is
// cancelled; a refresh under way when that happens is finished and saved.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range s.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx)
		}()
	}
	wg.Wait()
}

func (s *Service) work(ctx context.Context) {
	for ctx.Err() == nil {
		found, err := s.RefreshNextDue(ctx)
		if err != nil {
			s.opt.Log.Error().Err(err).Msg("token refresher")
		}
		if found && err == nil {
			continue
		}
		// Idle: look again after the poll interval, jittered so replicas and
		// workers spread out.
		wait := s.opt.PollInterval/2 + rand.N(s.opt.PollInterval)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// detached returns a context for one refresh transaction: it is not cancelled
// with ctx, because abandoning a refresh after Keap has rotated the token would
// lose the token for good; it ends only by its own time-out.
func (s *Service) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opt.CallTimeout+15*time.Second)
}

// RefreshNextDue claims one instance whose refresh is due and refreshes it (or,
// when it turns out not to be due, reschedules it). It reports whether it found one.
func (s *Service) RefreshNextDue(ctx context.Context) (bool, error) {
	work, cancel := s.detached(ctx)
	defer cancel()
	return s.store.UpdateDueInstance(work, s.opt.Now(), func(inst *instances.Instance) error {
		now := s.opt.Now()
		if !inst.Valid || inst.AuthType != instances.AuthOAuth2 {
			inst.RefreshDueAt = nil // nothing to refresh: leave the schedule
			return nil
		}
		if !s.due(inst, now) {
			next := s.nextDue(inst, now)
			inst.RefreshDueAt = &next
			return nil
		}
		_ = s.refresh(work, inst, now) // the outcome is saved on inst either way
		return nil
	})
}

// AccessToken returns the instance's access token, refreshed first (under the
// instance's lock) when it expires within the inline margin.
func (s *Service) AccessToken(ctx context.Context, orgID, id int64) (string, error) {
	inst, err := s.store.Instance(ctx, orgID, id)
	if err != nil {
		return "", err
	}
	if err := usable(inst); err != nil {
		return "", err
	}
	if !s.expiresSoon(inst) {
		return inst.Secrets[instances.KeyAccessToken], nil
	}
	inst, err = s.refreshLocked(ctx, orgID, id, s.expiresSoon)
	if err != nil {
		return "", err
	}
	return inst.Secrets[instances.KeyAccessToken], nil
}

// Renew is for a call Keap answered 401 with the token rejected: it refreshes,
// unless another caller replaced that token meanwhile, and returns the token to
// retry with.
func (s *Service) Renew(ctx context.Context, orgID, id int64, rejected string) (string, error) {
	inst, err := s.refreshLocked(ctx, orgID, id, func(cur *instances.Instance) bool {
		return cur.Secrets[instances.KeyAccessToken] == rejected
	})
	if err != nil {
		return "", err
	}
	return inst.Secrets[instances.KeyAccessToken], nil
}

// ForceRefresh refreshes now, whatever the schedule says.
func (s *Service) ForceRefresh(ctx context.Context, orgID, id int64) (*instances.Instance, error) {
	return s.refreshLocked(ctx, orgID, id, func(*instances.Instance) bool { return true })
}

func usable(inst *instances.Instance) error {
	if inst.AuthType != instances.AuthOAuth2 {
		return apperr.Errorf(apperr.Conflict, "instance %d authenticates with an API key; it has no OAuth token", inst.ID)
	}
	if !inst.Valid {
		return apperr.Errorf(apperr.Conflict, "instance %d is not valid: %s", inst.ID, inst.InvalidReason)
	}
	return nil
}

// refreshLocked takes the instance's lock, re-reads it, and refreshes when need
// still says so for what it reads.
func (s *Service) refreshLocked(ctx context.Context, orgID, id int64, need func(*instances.Instance) bool) (*instances.Instance, error) {
	work, cancel := s.detached(ctx)
	defer cancel()
	var refreshErr error
	inst, err := s.store.UpdateInstance(work, orgID, id, func(inst *instances.Instance) error {
		if inst.AuthType != instances.AuthOAuth2 {
			return usable(inst)
		}
		if !need(inst) {
			return instances.ErrUnchanged // another caller refreshed while this one waited
		}
		refreshErr = s.refresh(work, inst, s.opt.Now())
		if refreshErr != nil {
			// Saved with the instance: the refresh failed, and what it
			// left (an invalid instance, a retry time) is the change.
			audit.Fail(work, "the token refresh failed")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inst, refreshErr
}

// refresh calls the token endpoint and records the outcome on inst, for the
// caller to commit: new tokens; or, when Keap refuses the refresh token, the
// instance marked invalid; or, on a transient failure, a retry time.
func (s *Service) refresh(ctx context.Context, inst *instances.Instance, now time.Time) error {
	log := s.opt.Log.With().Int64("instance_id", inst.ID).Str("element", inst.ElementKey).Logger()
	el, ok := s.catalog.Lookup(inst.ElementKey)
	if !ok {
		return apperr.Errorf(apperr.Internal, "instance %d has unknown element %s", inst.ID, inst.ElementKey)
	}
	refreshToken := inst.Secrets[instances.KeyRefreshToken]
	if refreshToken == "" {
		s.markInvalid(inst, now, "the instance has no refresh token")
		s.opt.Observer.TokenRefreshed("no_refresh_token")
		log.Warn().Msg("token refresh impossible: no refresh token; instance marked invalid")
		return apperr.Errorf(apperr.Conflict, "instance %d has no refresh token; authorize again", inst.ID)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.opt.CallTimeout)
	defer cancel()
	start := time.Now()
	p := &oauthflow.Provider{TokenURL: el.Endpoints.TokenURL, Client: s.opt.Client}
	tok, err := p.Refresh(callCtx, instances.Value(el, inst, instances.KeyClientID), inst.Secrets[instances.KeyClientSecret], refreshToken)
	took := time.Since(start)
	switch {
	case err == nil:
		inst.Secrets[instances.KeyAccessToken] = tok.AccessToken
		if tok.RefreshToken != "" {
			inst.Secrets[instances.KeyRefreshToken] = tok.RefreshToken
		}
		inst.TokenExpiresAt = nil
		if !tok.Expiry.IsZero() {
			exp := tok.Expiry
			inst.TokenExpiresAt = &exp
		}
		inst.RefreshedAt = &now
		inst.RefreshFailures, inst.LastRefreshError, inst.LastRefreshErrorAt = 0, "", nil
		next := s.nextDue(inst, now)
		inst.RefreshDueAt = &next
		ev := log.Info().Dur("took", took).Time("next", next)
		if inst.TokenExpiresAt != nil {
			ev = ev.Time("expires", *inst.TokenExpiresAt)
		}
		ev.Msg("token refreshed")
		s.opt.Observer.TokenRefreshed("refreshed")
		return nil
	case errors.Is(err, oauthflow.ErrRefreshRefused):
		s.markInvalid(inst, now, "Keap refused the refresh token ("+providerMessage(err)+"); authorize again and PUT /instances/"+strconv.FormatInt(inst.ID, 10)+" with the new providerData.code")
		log.Warn().Str("provider_message", providerMessage(err)).Dur("took", took).Msg("token refresh refused; instance marked invalid")
		s.opt.Observer.TokenRefreshed("refused")
		return err
	default:
		inst.RefreshFailures++
		inst.LastRefreshError = "token refresh failed, will retry: " + message(err)
		inst.LastRefreshErrorAt = &now
		next := now.Add(s.backoff(inst.RefreshFailures))
		inst.RefreshDueAt = &next
		log.Warn().Err(err).Int("failures", inst.RefreshFailures).Time("retry", next).Dur("took", took).Msg("token refresh failed; will retry")
		s.opt.Observer.TokenRefreshed("failed")
		return err
	}
}

func (s *Service) markInvalid(inst *instances.Instance, now time.Time, reason string) {
	inst.Valid, inst.InvalidReason = false, reason
	inst.LastRefreshError, inst.LastRefreshErrorAt = reason, &now
	inst.RefreshDueAt = nil
}

func providerMessage(err error) string {
	if e, ok := apperr.As(err); ok && e.ProviderMessage != "" {
		return e.ProviderMessage
	}
	return message(err)
}

func message(err error) string {
	if e, ok := apperr.As(err); ok {
		if e.ProviderMessage != "" {
			return e.Message + ": " + e.ProviderMessage
		}
		return e.Message
	}
	return err.Error()
}

// backoff is exponential with full jitter around its middle: base·2^(n-1), capped,
// times a random factor in [0.5, 1.5).
func (s *Service) backoff(failures int) time.Duration {
	d := s.opt.BackoffBase
	for i := 1; i < failures && d < s.opt.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.opt.BackoffMax)
	return d/2 + rand.N(d)
}

func (s *Service) expiresSoon(inst *instances.Instance) bool {
	return inst.TokenExpiresAt == nil || !inst.TokenExpiresAt.After(s.opt.Now().Add(s.opt.InlineMargin))
}

// due says whether inst should be refreshed at now.
func (s *Service) due(inst *instances.Instance, now time.Time) bool {
	if inst.RefreshDueAt != nil && inst.RefreshDueAt.After(now) {
		return false // retrying later after a failure, or scheduled
	}
	return !s.nextDue(inst, now).After(now)
}

// nextDue is when inst's token should next be refreshed: before it expires by
// the margin, or when the refresh interval has passed since the last refresh,
// whichever comes first. The interval is capped so an idle instance's refresh
// token (about 45 days at Keap) never dies unused.
func (s *Service) nextDue(inst *instances.Instance, now time.Time) time.Time {
	if inst.RefreshedAt == nil {
		return now
	}
	interval := s.opt.MaxIdle
	if el, ok := s.catalog.Lookup(inst.ElementKey); ok {
		if secs, err := strconv.ParseInt(instances.Value(el, inst, instances.KeyRefreshInterval), 10, 64); err == nil && secs > 0 {
			interval = min(time.Duration(secs)*time.Second, s.opt.MaxIdle)
		}
	}
	due := inst.RefreshedAt.Add(interval)
	if exp := inst.TokenExpiresAt; exp != nil {
		byExpiry := exp.Add(-s.opt.Margin)
		// A token that lives shorter than the margin is refreshed at half its life,
		// not at once again.
		if half := inst.RefreshedAt.Add(exp.Sub(*inst.RefreshedAt) / 2); byExpiry.Before(half) {
			byExpiry = half
		}
		if byExpiry.Before(due) {
			due = byExpiry
		}
	}
	return due
}
