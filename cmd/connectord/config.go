package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/quota"
	"github.com/connectord/connectord/internal/secrets"
)

// config is everything connectord reads from its environment.
type config struct {
	DatabaseURL string
	Addr        string
	PublicURL   string // empty: derived from the listening address
	Ring        *secrets.Ring
	LogLevel    zerolog.Level
	LogFormat   string
	Endpoints   elements.Endpoints
	Refresh     refreshConfig
	// KeapRateLimitOff turns off the client-side limits on calls to Keap
	// (10/s per key, 1500/min per OAuth client), for benchmarks and sandboxes.
	KeapRateLimitOff bool
	// AuthCacheTTL is how long an authenticated caller and its resolved
	// instance are remembered; 0 turns the caches off.
	AuthCacheTTL time.Duration
	// CallbackAllowPrivate lets event callbacks go to loopback and private
	// addresses (tests and sandboxes).
	CallbackAllowPrivate bool
	// AuthFailuresPerMinute is how many failed authentications one source
	// address may make a minute before it is answered 429; 0 does not limit.
	AuthFailuresPerMinute int
	// KeapTimeout bounds one call to Keap (token endpoint, REST, XML-RPC).
	KeapTimeout time.Duration
	// KeapTLSHandshakeTimeout bounds the TLS handshake of a new connection to Keap.
	KeapTLSHandshakeTimeout time.Duration
	// HTTP bounds what a caller may hold of the server.
	HTTP httpConfig
	// DeliveryBackoffBase scales event delivery retries: the n-th waits about base·4^n.
	DeliveryBackoffBase time.Duration
	// DeliveryLease is how long a claimed notification is kept from other
	// workers; a crashed server's in-flight deliveries are retried after it.
	DeliveryLease time.Duration
	// EventsRetention is how long delivered notifications are kept.
	EventsRetention time.Duration
	// HookCheckInterval is how often the status of registered Keap hooks is checked.
	HookCheckInterval time.Duration
	// PollerIntervalOverride, when set, replaces every instance's polling
	// interval (tests and sandboxes).
	PollerIntervalOverride time.Duration
	// PollerLease is how long a replica's claim on an instance's polling
	// lasts without a stored page; a crashed poller's instances are polled
	// again after it.
	PollerLease time.Duration
	// MetricsAddr, when set, serves GET /metrics on its own listener
	// instead of the API's (CONNECTORD_METRICS_ADDR).
	MetricsAddr string
	// MetricsOrgLabels adds organization ids to the HTTP and Keap call
	// metrics (CONNECTORD_METRICS_ORG_LABELS).
	MetricsOrgLabels bool
	// AuditRetention is how long audit log entries are kept (CONNECTORD_AUDIT_RETENTION).
	AuditRetention time.Duration
	// ConsoleSessionTTL is how long a sign-in to the web console lasts.
	ConsoleSessionTTL time.Duration
	// XMLRPCSunset is when passthrough XML-RPC calls start to be refused
	// (Keap turns XML-RPC off on 31 December 2026); zero means that date.
	XMLRPCSunset time.Time
	// Quotas are Keap's limits as connectord keeps them over every replica.
	Quotas quotaConfig
}

// quotaConfig tunes internal/quota.
type quotaConfig struct {
	Client, Key quota.Limits  // CONNECTORD_KEAP_QUOTAS; Keap's figures by default
	MaxWait     time.Duration // the longest a call waits for its turn
	Lease       time.Duration // a replica's slice lasts this long without a sync
}

// httpConfig is the HTTP server's time-outs and connection cap.
type httpConfig struct {
	// ReadHeaderTimeout bounds reading a request's line and header, and a
	// new connection's wait for its first request.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout bounds reading a request's body, from its header on.
	BodyReadTimeout time.Duration
	// WriteTimeout bounds a request from its header to the end of its
	// answer; the proxy extends it while Keap's answer streams.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no request.
	IdleTimeout time.Duration
	// MaxConnections caps the open client connections; 0 takes the default
	// derived from the descriptor limit.
	MaxConnections int
}

// refreshConfig tunes the token refresher.
type refreshConfig struct {
	Margin       time.Duration
	PollInterval time.Duration
	Workers      int
}

// envProblems collects every bad variable so one message names them all.
type envProblems []string

func (p *envProblems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p envProblems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New("configuration: " + strings.Join(p, "; "))
}

func databaseURL(getenv func(string) string, p *envProblems) string {
	v := strings.TrimSpace(getenv("DATABASE_URL"))
	if v == "" {
		p.add("DATABASE_URL is required (for example postgres://postgres@127.0.0.1:5432/connectord?sslmode=disable)")
	} else if u, err := url.Parse(v); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		p.add("DATABASE_URL must be a postgres:// URL")
	}
	return v
}

// loadServeConfig reads the whole configuration serve needs.
func loadServeConfig(getenv func(string) string) (config, error) {
	var p envProblems
	c := config{DatabaseURL: databaseURL(getenv, &p)}

	c.Addr = orDefault(getenv("CONNECTORD_ADDR"), ":8080")
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		p.add("CONNECTORD_ADDR %q is not host:port (for example :8080 or 127.0.0.1:8080)", c.Addr)
	}
	if v := strings.TrimSpace(getenv("CONNECTORD_PUBLIC_URL")); v != "" {
		if !instances.IsHTTPURL(v) {
			p.add("CONNECTORD_PUBLIC_URL %q is not an absolute http or https URL", v)
		}
		c.PublicURL = strings.TrimRight(v, "/")
	}

	var current secrets.Key
	if v := strings.TrimSpace(getenv("CONNECTORD_ENCRYPTION_KEY")); v == "" {
		p.add("CONNECTORD_ENCRYPTION_KEY is required: base64 of 32 random bytes (head -c 32 /dev/urandom | base64)")
	} else if k, err := secrets.ParseKey(v); err != nil {
		p.add("CONNECTORD_ENCRYPTION_KEY %v: it must be base64 of exactly 32 bytes", err)
	} else {
		current = k
	}
	var previous []secrets.Key
	for _, v := range strings.Split(getenv("CONNECTORD_ENCRYPTION_KEY_PREVIOUS"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		k, err := secrets.ParseKey(v)
		if err != nil {
			p.add("CONNECTORD_ENCRYPTION_KEY_PREVIOUS %v: each comma-separated key must be base64 of exactly 32 bytes", err)
			continue
		}
		previous = append(previous, k)
	}
	if current.ID != "" {
		c.Ring = secrets.NewRing(current, previous...)
	}

	level, err := zerolog.ParseLevel(strings.ToLower(orDefault(getenv("CONNECTORD_LOG_LEVEL"), "info")))
	if err != nil || level == zerolog.NoLevel {
		p.add("CONNECTORD_LOG_LEVEL %q is not one of trace, debug, info, warn, error", getenv("CONNECTORD_LOG_LEVEL"))
	}
	c.LogLevel = level
	c.LogFormat = orDefault(getenv("CONNECTORD_LOG_FORMAT"), "json")
	if c.LogFormat != "json" && c.LogFormat != "console" {
		p.add("CONNECTORD_LOG_FORMAT %q is not json or console", c.LogFormat)
	}

	c.Endpoints = elements.Endpoints{
		AuthorizationURL: providerURL(getenv, &p, "CONNECTORD_INFUSIONSOFT_AUTH_URL", "https://accounts.infusionsoft.com/app/oauth/authorize"),
		TokenURL:         providerURL(getenv, &p, "CONNECTORD_INFUSIONSOFT_TOKEN_URL", "https://api.infusionsoft.com/token"),
		APIURL:           strings.TrimRight(providerURL(getenv, &p, "CONNECTORD_INFUSIONSOFT_API_URL", "https://api.infusionsoft.com"), "/"),
	}
	// Legacy keys go to the API host as X-Keap-API-Key unless the operator
	// asks for an application's own legacy endpoint (the old way) explicitly.
	if strings.TrimSpace(getenv("CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL")) != "" {
		c.Endpoints.LegacyXMLRPCURL = providerURL(getenv, &p, "CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL", "")
		if !strings.Contains(c.Endpoints.LegacyXMLRPCURL, "{app}") {
			p.add("CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL must contain {app}, where the application name goes (such as https://{app}.infusionsoft.com/api/xmlrpc), or be unset so that legacy keys go to Keap's API host as X-Keap-API-Key")
		}
	}
	if v := strings.TrimSpace(getenv("CONNECTORD_XMLRPC_SUNSET")); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			p.add("CONNECTORD_XMLRPC_SUNSET %q is not an RFC 3339 date-time (for example 2027-01-01T00:00:00Z)", v)
		}
		c.XMLRPCSunset = t
	}
	c.Refresh.Margin = duration(getenv, &p, "CONNECTORD_REFRESH_MARGIN", 15*time.Minute)
	c.Refresh.PollInterval = duration(getenv, &p, "CONNECTORD_REFRESH_POLL_INTERVAL", 5*time.Second)
	c.Refresh.Workers = 4
	if v := strings.TrimSpace(getenv("CONNECTORD_REFRESH_WORKERS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			p.add("CONNECTORD_REFRESH_WORKERS %q is not a whole number from 1 to 64", v)
		}
		c.Refresh.Workers = n
	}
	if v := strings.TrimSpace(getenv("CONNECTORD_KEAP_RATE_LIMIT_OFF")); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			p.add("CONNECTORD_KEAP_RATE_LIMIT_OFF %q is not true or false", v)
		}
		c.KeapRateLimitOff = off
	}
	c.AuthCacheTTL = 5 * time.Second
	if v := strings.TrimSpace(getenv("CONNECTORD_AUTH_CACHE_TTL")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			p.add("CONNECTORD_AUTH_CACHE_TTL %q is not a duration from 0s (off) to 1m, for example 5s", v)
		}
		c.AuthCacheTTL = d
	}
	c.AuthFailuresPerMinute = 60
	if v := strings.TrimSpace(getenv("CONNECTORD_AUTH_FAILURES_PER_MINUTE")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			p.add("CONNECTORD_AUTH_FAILURES_PER_MINUTE %q is not a whole number from 0 (no limit) up, for example 60", v)
		}
		c.AuthFailuresPerMinute = n
	}
	c.KeapTimeout = duration(getenv, &p, "CONNECTORD_KEAP_TIMEOUT", 30*time.Second)
	c.KeapTLSHandshakeTimeout = duration(getenv, &p, "CONNECTORD_KEAP_TLS_HANDSHAKE_TIMEOUT", 10*time.Second)
	c.HTTP.ReadHeaderTimeout = duration(getenv, &p, "CONNECTORD_READ_HEADER_TIMEOUT", 10*time.Second)
	c.HTTP.BodyReadTimeout = duration(getenv, &p, "CONNECTORD_BODY_READ_TIMEOUT", 30*time.Second)
	c.HTTP.WriteTimeout = duration(getenv, &p, "CONNECTORD_WRITE_TIMEOUT", 2*time.Minute)
	c.HTTP.IdleTimeout = duration(getenv, &p, "CONNECTORD_IDLE_TIMEOUT", 2*time.Minute)
	if c.HTTP.WriteTimeout <= c.KeapTimeout {
		p.add("CONNECTORD_WRITE_TIMEOUT (%s) must be longer than CONNECTORD_KEAP_TIMEOUT (%s): it bounds a whole request, Keap's answer included", c.HTTP.WriteTimeout, c.KeapTimeout)
	}
	if v := strings.TrimSpace(getenv("CONNECTORD_MAX_CONNECTIONS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			p.add("CONNECTORD_MAX_CONNECTIONS %q is not a whole number of at least 1", v)
		}
		c.HTTP.MaxConnections = n
	}
	if v := strings.TrimSpace(getenv("CONNECTORD_CALLBACK_ALLOW_PRIVATE")); v != "" {
		allow, err := strconv.ParseBool(v)
		if err != nil {
			p.add("CONNECTORD_CALLBACK_ALLOW_PRIVATE %q is not true or false", v)
		}
		c.CallbackAllowPrivate = allow
	}
	c.DeliveryBackoffBase = duration(getenv, &p, "CONNECTORD_DELIVERY_BACKOFF_BASE", time.Second)
	c.DeliveryLease = duration(getenv, &p, "CONNECTORD_DELIVERY_LEASE", 30*time.Second)
	c.EventsRetention = duration(getenv, &p, "CONNECTORD_EVENTS_RETENTION", 30*24*time.Hour)
	c.HookCheckInterval = duration(getenv, &p, "CONNECTORD_HOOK_CHECK_INTERVAL", 15*time.Minute)
	c.PollerIntervalOverride = duration(getenv, &p, "CONNECTORD_POLLER_INTERVAL_OVERRIDE", 0)
	c.PollerLease = duration(getenv, &p, "CONNECTORD_POLLER_LEASE", 2*time.Minute)
	if v := strings.TrimSpace(getenv("CONNECTORD_METRICS_ADDR")); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			p.add("CONNECTORD_METRICS_ADDR %q is not host:port (for example 127.0.0.1:9090)", v)
		}
		c.MetricsAddr = v
	}
	if v := strings.TrimSpace(getenv("CONNECTORD_METRICS_ORG_LABELS")); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			p.add("CONNECTORD_METRICS_ORG_LABELS %q is not true or false", v)
		}
		c.MetricsOrgLabels = on
	}
	c.AuditRetention = duration(getenv, &p, "CONNECTORD_AUDIT_RETENTION", 365*24*time.Hour)
	c.ConsoleSessionTTL = duration(getenv, &p, "CONNECTORD_CONSOLE_SESSION_TTL", 12*time.Hour)
	client, key, err := quota.ParseLimits(getenv("CONNECTORD_KEAP_QUOTAS"))
	if err != nil {
		p.add("CONNECTORD_KEAP_QUOTAS: %v (for example client:second=25,minute=1500,day=150000;key:second=10,minute=240,day=30000)", err)
	}
	c.Quotas = quotaConfig{Client: client, Key: key,
		MaxWait: duration(getenv, &p, "CONNECTORD_QUOTA_MAX_WAIT", 10*time.Second),
		Lease:   duration(getenv, &p, "CONNECTORD_QUOTA_LEASE", 3*time.Second)}
	return c, p.err()
}

// duration reads a positive Go duration such as 15m or 90s.
func duration(getenv func(string) string, p *envProblems, name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.add("%s %q is not a positive duration (for example 15m or 90s)", name, v)
		return def
	}
	return d
}

func providerURL(getenv func(string) string, p *envProblems, name, def string) string {
	v := orDefault(getenv(name), def)
	if !instances.IsHTTPURL(strings.ReplaceAll(v, "{app}", "ab123")) {
		p.add("%s %q is not an absolute http or https URL", name, v)
	}
	return v
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}
