package fakekeap

import (
	"net/http"
	"strconv"
	"strings"
)

const (
	// defaultThrottleLimit is the per-minute throttle Keap reports for OAuth apps,
	// shown in the headers when no rate limit is configured.
	defaultThrottleLimit = 1500
	// dailyQuota is Keap's daily quota for OAuth apps.
	dailyQuota = 150000
)

type throttle struct {
	perSecond int // 0 = unlimited
	// Keap counts each OAuth app's calls (over all its tenants) and each
	// key's apart: one count per client id or key.
	counts map[string]*throttleCount

	failLeft       int
	failStatus     int
	failRetryAfter string
}

// SetRateLimit refuses API calls over perSecond in any one second with 429,
// counted per OAuth client id (over all its tokens) and per key, as Keap
// counts them; 0 removes the limit.
func (s *Server) SetRateLimit(perSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle.perSecond = max(perSecond, 0)
	for _, c := range s.throttle.counts {
		c.window = -1
	}
}

// FailNext makes the next n API calls answer status with a Keap-like error
// body, and a Retry-After header unless retryAfter is "".
func (s *Server) FailNext(n int, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle.failLeft, s.throttle.failStatus, s.throttle.failRetryAfter = n, status, retryAfter
}

// throttleCount is one quota's calls in the current window and day.
type throttleCount struct {
	window  int64 // current window: a unix second when limited, a unix minute otherwise
	used    int
	day     int64
	dayUsed int
}

// quotaOwner is what Keap counts the call against: the client id an access
// token was issued to, or the key; "" for legacy XML-RPC (the key is in the body).
func (s *Server) quotaOwner(r *http.Request) string {
	if key := r.Header.Get("X-Keap-API-Key"); key != "" {
		return "key:" + key
	}
	h := r.Header.Get("Authorization")
	if len(h) <= 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	bearer := strings.TrimSpace(h[7:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.access[bearer]; ok {
		return "client:" + at.clientID
	}
	return "key:" + bearer
}

type authMode int

const (
	authNone           authMode = iota // legacy XML-RPC: the key is the first parameter
	authAPI                            // Bearer access token or service account key
	authAPIOrLegacyKey                 // as authAPI, and legacy keys in X-Keap-API-Key (REST v1, REST v2 and /crm/xmlrpc/v1)
)

// gate is what Keap's API gateway does before a call reaches a service:
// counting, injected failures, credentials, then throttling.
func (s *Server) gate(mode authMode) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			base := requestBase(r)
			owner := s.quotaOwner(r)
			s.mu.Lock()
			s.stats.APICalls++
			if s.opts.BaseURL == "" {
				s.baseURL = base
			}
			t := &s.throttle
			failStatus, retryAfter := 0, t.failRetryAfter
			if t.failLeft > 0 {
				t.failLeft--
				failStatus = t.failStatus
			}
			s.mu.Unlock()

			if failStatus != 0 {
				s.admit(w.Header(), false, owner)
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				writeFailure(w, failStatus)
				return
			}
			if mode != authNone {
				if ok, expired := s.authenticate(r, mode == authAPIOrLegacyKey); !ok {
					s.admit(w.Header(), false, owner)
					writeAuthFault(w, expired)
					return
				}
			}
			if !s.admit(w.Header(), true, owner) {
				s.mu.Lock()
				s.stats.Throttled++
				s.mu.Unlock()
				writeFailure(w, http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// admit sets the throttle and quota headers and, with consume, counts the
// call; it reports false when the call is over the configured rate limit.
func (s *Server) admit(h http.Header, consume bool, owner string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if s.throttle.counts == nil {
		s.throttle.counts = map[string]*throttleCount{}
	}
	t := s.throttle.counts[owner]
	if t == nil {
		t = &throttleCount{window: -1, day: -1}
		s.throttle.counts[owner] = t
	}
	perSecond := s.throttle.perSecond
	limit, unit, window := perSecond, "second", now.Unix()
	if limit == 0 {
		limit, unit, window = defaultThrottleLimit, "minute", now.Unix()/60
	}
	if window != t.window {
		t.window, t.used = window, 0
	}
	if day := now.Unix() / 86400; day != t.day {
		t.day, t.dayUsed = day, 0
	}
	if perSecond == 0 {
		// Unlimited: the counters roll over rather than report an exhausted window.
		if t.used >= limit-1 {
			t.used = 0
		}
		if t.dayUsed >= dailyQuota-1 {
			t.dayUsed = 0
		}
	}
	allowed := t.used < limit
	if consume && allowed {
		t.used++
		t.dayUsed++
	}
	set := func(prefix string, limit, used int, unit string) {
		h.Set(prefix+"-limit", strconv.Itoa(limit))
		h.Set(prefix+"-available", strconv.Itoa(max(limit-used, 0)))
		h.Set(prefix+"-used", strconv.Itoa(min(used, limit)))
		h.Set(prefix+"-time-unit", unit)
		h.Set(prefix+"-interval", "1")
	}
	set("x-keap-product-throttle", limit, t.used, unit)
	set("x-keap-product-quota", dailyQuota, t.dayUsed, "day")
	h.Set("x-keap-product-quota-expiry-time", strconv.FormatInt((t.day+1)*86400*1000, 10))
	return allowed
}

// writeFailure writes the body Keap's gateway or services answer with status.
func writeFailure(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("x-keap-product-throttle-available", "0")
		writeFault(w, status, "Rate limit quota violation. Quota limit  exceeded.", "policies.ratelimit.QuotaViolation")
	case http.StatusUnauthorized:
		writeAuthFault(w, false)
	case http.StatusBadGateway:
		writeFault(w, status, "Unexpected EOF at target", "messaging.adaptors.http.flow.UnexpectedEOFAtTarget")
	case http.StatusServiceUnavailable:
		writeFault(w, status, "The Service is temporarily unavailable", "messaging.adaptors.http.flow.ServiceUnavailable")
	case http.StatusGatewayTimeout:
		writeFault(w, status, "Gateway Timeout", "messaging.adaptors.http.flow.GatewayTimeout")
	default:
		writeMessage(w, status, http.StatusText(status))
	}
}

func writeAuthFault(w http.ResponseWriter, expired bool) {
	if expired {
		writeFault(w, http.StatusUnauthorized, "Access Token Expired", "keymanagement.service.access_token_expired")
		return
	}
	writeFault(w, http.StatusUnauthorized, "Invalid Access Token", "keymanagement.service.invalid_access_token")
}
