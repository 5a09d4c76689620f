// Package upstream owns connectord's calls to Keap on behalf of one instance:
// where they go, which credential they carry, how fast they may be sent, and
// what happens when Keap says no (its quotas are internal/quota's: every
// attempt waits for its turn there, and reports Keap's answer back) — a 401 refreshes the token once and retries;
// a 429 or a 5xx on a safe or idempotent request is retried with exponential
// backoff and jitter, honouring Retry-After, a bounded number of times; POST and
// PATCH are retried only on 429.
//
// It must not interpret Keap's answers beyond that: the proxy passes them through
// and the hubs reshape them. It never logs a credential.
package upstream

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/quota"
)

// Target is what a call needs to know about the instance it is made for.
type Target struct {
	InstanceID int64
	OrgID      int64
	AuthType   string // instances.AuthOAuth2 or instances.AuthAPIKey
	ClientID   string // OAuth: Keap's quota is per client id, shared by its instances
	APIKey     string // a service account key, PAT or legacy key, sent as X-Keap-API-Key
	// Legacy is set only when the operator configured legacy endpoints
	// (instances.UsesLegacyEndpoint): a legacy key then reaches XML-RPC only,
	// at LegacyURL, as the call's first parameter.
	Legacy    bool
	APIURL    string // Keap's API host, e.g. https://api.infusionsoft.com
	RESTBase  string // APIURL + /crm/rest/v1
	LegacyURL string // the application's legacy XML-RPC URL
	// AccessToken is the OAuth access token of the instance as the caller
	// loaded it (the proxy and the hubs: the resolved instance, at most
	// CONNECTORD_AUTH_CACHE_TTL old), with its expiry. When it is not about to
	// expire and no call of this process had it rejected, it is used without
	// asking the token source (a database read and decrypt per call); a 401
	// renews it as always.
	AccessToken    string
	TokenExpiresAt *time.Time
	// Background marks work nobody waits for (polling, hook checks): it
	// takes its turns on Keap's quota after interactive calls.
	Background bool
}

// TargetFor describes inst of element el.
func TargetFor(el *elements.Element, inst *instances.Instance) Target {
	t := Target{
		InstanceID: inst.ID, OrgID: inst.OrganizationID, AuthType: inst.AuthType,
		APIURL: strings.TrimRight(el.Endpoints.APIURL, "/"), RESTBase: el.Endpoints.RESTBase(),
	}
	switch inst.AuthType {
	case instances.AuthOAuth2:
		t.ClientID = instances.Value(el, inst, instances.KeyClientID)
		t.AccessToken, t.TokenExpiresAt = inst.Secrets[instances.KeyAccessToken], inst.TokenExpiresAt
	case instances.AuthAPIKey:
		t.APIKey = inst.Secrets[instances.KeyAPIKey]
		if instances.UsesLegacyEndpoint(el, inst.AuthType, t.APIKey) {
			t.Legacy = true
			t.LegacyURL = el.Endpoints.LegacyURL(instances.Value(el, inst, instances.KeyAppName))
		}
	}
	return t
}

// TokenSource hands out OAuth access tokens (the tokens package).
type TokenSource interface {
	AccessToken(ctx context.Context, orgID, id int64) (string, error)
	Renew(ctx context.Context, orgID, id int64, rejected string) (string, error)
}

// Options tune the client. Zero values take the defaults.
type Options struct {
	MaxRetries    int           // retries after the first attempt; default 3
	BackoffBase   time.Duration // default 250ms
	BackoffMax    time.Duration // default 8s
	MaxRetryAfter time.Duration // a longer Retry-After is not waited for; default 30s
	// Quotas hands out the turns on Keap's quotas; nil sends every call at
	// once (no client-side limit).
	Quotas *quota.Scheduler
	// KeyRate and ClientRate set to rate.Inf leave API keys' or OAuth
	// clients' calls out of Quotas (CONNECTORD_KEAP_RATE_LIMIT_OFF): no wait,
	// and no pause on Keap's throttle headers; Keap's 429s are still
	// retried. Other values mean nothing: the limits are Quotas'.
	KeyRate, ClientRate   rate.Limit
	KeyBurst, ClientBurst int          // unused; kept for callers that set them
	HTTP                  *http.Client // default NewHTTPClient's
	Log                   zerolog.Logger
}

// Client calls Keap.
type Client struct {
	opt    Options
	tokens TokenSource

	mu         sync.Mutex
	superseded map[int64]string // per instance, the last access token Keap rejected
}

// New returns a Client.
func New(tokens TokenSource, opt Options) *Client {
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 3
	}
	if opt.BackoffBase <= 0 {
		opt.BackoffBase = 250 * time.Millisecond
	}
	if opt.BackoffMax <= 0 {
		opt.BackoffMax = 8 * time.Second
	}
	if opt.MaxRetryAfter <= 0 {
		opt.MaxRetryAfter = 30 * time.Second
	}
	if opt.HTTP == nil {
		opt.HTTP = NewHTTPClient(HTTPOptions{})
	}
	// Keap's redirect is its answer, passed on as it is: following it would
	// change what the proxy returns and send the credential to wherever it
	// points.
	hc := *opt.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	opt.HTTP = &hc
	return &Client{opt: opt, tokens: tokens, superseded: map[int64]string{}}
}

// wait takes t's turn on the quota it draws on: its OAuth client id's, or its
// key's (by the key's hash: Keap counts a key's calls however many instances
// hold it). A nil ticket means no quota applies.
func (c *Client) wait(ctx context.Context, t Target) (*quota.Ticket, error) {
	if c.opt.Quotas == nil {
		return nil, nil
	}
	call := quota.Call{Instance: t.InstanceID, Class: quota.Interactive}
	if t.Background {
		call.Class = quota.Background
	}
	if t.AuthType == instances.AuthOAuth2 {
		if c.opt.ClientRate == rate.Inf {
			return nil, nil
		}
		call.Key = quota.ClientKey(t.ClientID)
	} else {
		if c.opt.KeyRate == rate.Inf {
			return nil, nil
		}
		call.Key = quota.APIKeyKey(t.APIKey)
	}
	return c.opt.Quotas.Wait(ctx, call)
}

// QuotaKey names the quota t draws on.
func QuotaKey(t Target) quota.Key {
	if t.AuthType == instances.AuthOAuth2 {
		return quota.ClientKey(t.ClientID)
	}
	return quota.APIKeyKey(t.APIKey)
}

// idempotent methods may be retried on 5xx; the others only on 429.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Do sends req, whose URL must already point at Keap, for t. body is the whole
// request body (so the request can be sent again). Do puts the credential in
// req's header, which the caller must not share with another request. It returns Keap's last
// answer, whatever its status; the caller closes its body. Errors are
// *apperr.Error: 502 when Keap cannot be reached, 504 on a time-out.
func (c *Client) Do(ctx context.Context, t Target, req *http.Request, body []byte) (*http.Response, error) {
	renewed := false
	var rejected string
	for attempt := 0; ; attempt++ {
		ticket, err := c.wait(ctx, t)
		if err != nil {
			if _, ok := apperr.As(err); ok {
				return nil, err // the quota is spent, or cannot be kept: say so
			}
			return nil, keap.TransportError("waiting for a turn on Keap's quota", err)
		}
		// A shallow copy: the header is req's, which authorize sets the
		// credential in again on every attempt.
		out := req.WithContext(ctx)
		out.Body, out.ContentLength = nil, int64(len(body))
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		token, err := c.authorize(ctx, t, out, rejected)
		if err != nil {
			return nil, err
		}
		resp, err := c.opt.HTTP.Do(out)
		retryable := attempt < c.opt.MaxRetries && idempotent(req.Method)
		if err != nil {
			if ctx.Err() == nil && retryable {
				if werr := sleep(ctx, c.backoff(attempt)); werr == nil {
					continue
				}
			}
			return nil, keap.TransportError("calling Keap", err)
		}
		ticket.Observe(resp.StatusCode, resp.Header) // a 429 pauses the whole quota
		var wait time.Duration
		switch {
		case resp.StatusCode == http.StatusUnauthorized && t.AuthType == instances.AuthOAuth2 && !renewed:
			// The token may have expired or been replaced elsewhere: renew it
			// once and try again; this does not count as a retry.
			renewed, rejected = true, token
			drain(resp)
			attempt--
			continue
		case resp.StatusCode == http.StatusTooManyRequests && attempt < c.opt.MaxRetries:
			ra, ok := retryAfter(resp.Header.Get("Retry-After"))
			if ok && ra > c.opt.MaxRetryAfter {
				return resp, nil // Keap asks for longer than a caller should wait
			}
			wait = ra
			if !ok {
				wait = c.backoff(attempt)
			}
		case resp.StatusCode >= 500 && retryable:
			wait = c.backoff(attempt)
			if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok && ra <= c.opt.MaxRetryAfter {
				wait = max(wait, ra)
			}
		default:
			return resp, nil
		}
		c.opt.Log.Debug().Int64("instance_id", t.InstanceID).Int("status", resp.StatusCode).Int("attempt", attempt+1).Dur("wait", wait).Msg("retrying Keap call")
		drain(resp)
		if err := sleep(ctx, wait); err != nil {
			return nil, keap.TransportError("waiting to retry Keap", err)
		}
	}
}

// authorize puts the instance's credential on req and returns the OAuth token used.
func (c *Client) authorize(ctx context.Context, t Target, req *http.Request, rejected string) (string, error) {
	req.Header.Del("Authorization")
	req.Header.Del("X-Keap-API-Key")
	switch {
	case t.AuthType == instances.AuthOAuth2:
		var token string
		var err error
		switch {
		case rejected != "":
			c.supersede(t.InstanceID, rejected)
			token, err = c.tokens.Renew(ctx, t.OrgID, t.InstanceID, rejected)
		case c.presentable(t):
			token = t.AccessToken
		default:
			token, err = c.tokens.AccessToken(ctx, t.OrgID, t.InstanceID)
		}
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return token, nil
	case t.Legacy:
		return "", nil // the key travels as the XML-RPC call's first parameter
	default:
		req.Header.Set("X-Keap-API-Key", t.APIKey)
		return "", nil
	}
}

// presentedMargin is how long before its expiry a caller's access token is
// no longer used as it is: the token source then refreshes it first.
const presentedMargin = 2 * time.Minute

// presentable says whether the access token t carries may be sent as it is:
// it is not about to expire, and no call of this process had it rejected
// (after a 401 the caller's copy may be older than the renewed token).
func (c *Client) presentable(t Target) bool {
	if t.AccessToken == "" || t.TokenExpiresAt != nil && time.Until(*t.TokenExpiresAt) < presentedMargin {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.superseded[t.InstanceID] != t.AccessToken
}

func (c *Client) supersede(instanceID int64, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.superseded) > 100_000 {
		clear(c.superseded) // forget old rejections; a stale copy costs one more 401
	}
	c.superseded[instanceID] = token
}

// backoff is exponential with jitter: base·2^attempt, capped, times [0.5, 1.5).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opt.BackoffBase << min(attempt, 20)
	d = min(d, c.opt.BackoffMax)
	return d/2 + rand.N(d)
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
