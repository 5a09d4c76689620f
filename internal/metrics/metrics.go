// Package metrics owns connectord's Prometheus metrics: one registry, passed
// to whoever serves /metrics, and the observers the other packages report to
// (HTTP requests, Keap calls, token refreshes, hook deliveries, polled
// events, callback deliveries), plus collectors that read the database and
// its pool when scraped.
//
// It must not put a secret, a token or an unbounded value in a label: no
// instance ids, no raw paths (routes are chi's patterns), organization ids
// only when Options.OrgLabels says so. Exposition is client_golang's.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/store"
)

// Database is what the scrape-time collector reads (the store).
type Database interface {
	Figures(ctx context.Context) (store.Figures, error)
	PoolStats() store.PoolStats
}

// Options configure the metrics. Zero values take the defaults.
type Options struct {
	// OrgLabels adds an organization label (the organization's id) to the
	// HTTP and Keap call metrics (CONNECTORD_METRICS_ORG_LABELS). Off by
	// default: its cardinality grows with the tenants.
	OrgLabels bool
	// DB, when set, is read on each scrape for instance, notification and
	// polling figures, and for the pool's state.
	DB Database
	// Quotas, when set, is read on each scrape for Keap's quota figures.
	Quotas QuotaSource
	// ScrapeTimeout bounds the database queries of one scrape; default 3s.
	ScrapeTimeout time.Duration
	Log           zerolog.Logger
}

// Metrics are connectord's metrics and the registry they are in.
type Metrics struct {
	reg       *prometheus.Registry
	orgLabels bool

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	keapRequests  *prometheus.CounterVec
	keapDuration  *prometheus.HistogramVec
	keapRetries   *prometheus.CounterVec
	keapThrottled *prometheus.CounterVec

	tokenRefreshes *prometheus.CounterVec

	hookDeliveries *prometheus.CounterVec
	eventsStored   *prometheus.CounterVec
	notifications  *prometheus.CounterVec
}

// latencyBuckets span a cached proxy call (a millisecond) to Keap's slowest
// answers and a consumer's 10s time-out.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns the metrics, registered with a new registry together with the
// Go runtime and process collectors.
func New(opt Options) *Metrics {
	if opt.ScrapeTimeout <= 0 {
		opt.ScrapeTimeout = 3 * time.Second
	}
	m := &Metrics{reg: prometheus.NewRegistry(), orgLabels: opt.OrgLabels}
	org := func(labels ...string) []string {
		if opt.OrgLabels {
			return append(labels, "organization")
		}
		return labels
	}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_http_requests_total",
		Help: "HTTP requests served, by route pattern (never the raw path), method and status.",
	}, org("route", "method", "status"))
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "connectord_http_request_duration_seconds", Buckets: latencyBuckets,
		Help: "Time to serve an HTTP request, by route pattern and method.",
	}, org("route", "method"))
	m.keapRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_keap_requests_total",
		Help: "Requests sent to Keap (each attempt), by quota key kind (oauth_client, api_key), operation (method and API) and status (error when Keap gave no answer).",
	}, org("kind", "operation", "status"))
	m.keapDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "connectord_keap_request_duration_seconds", Buckets: latencyBuckets,
		Help: "Time for Keap to answer one attempt, by quota key kind and operation.",
	}, org("kind", "operation"))
	m.keapRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_keap_retries_total",
		Help: "Keap calls sent again, by quota key kind, operation and reason (throttled, server_error, unreachable, token_renewed).",
	}, org("kind", "operation", "reason"))
	m.keapThrottled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_keap_throttled_total",
		Help: "429 answers from Keap, by quota key kind and operation.",
	}, org("kind", "operation"))
	m.tokenRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_token_refreshes_total",
		Help: "OAuth token refreshes, by outcome: refreshed, refused (the instance became invalid), failed (retried later), no_refresh_token.",
	}, []string{"outcome"})
	m.hookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_hook_deliveries_received_total",
		Help: "Keap REST hook deliveries received, by outcome: stored, refused (unknown receiver, malformed or unwanted), unavailable (not stored; Keap retries).",
	}, []string{"outcome"})
	m.eventsStored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_events_stored_total",
		Help: "Events stored for delivery, by source: hook or poll.",
	}, []string{"source"})
	m.notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connectord_notification_deliveries_total",
		Help: "Callback delivery tries, by outcome: delivered, retrying (failed, tried again later), failed (failed with no retry left).",
	}, []string{"outcome"})

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration,
		m.keapRequests, m.keapDuration, m.keapRetries, m.keapThrottled,
		m.tokenRefreshes, m.hookDeliveries, m.eventsStored, m.notifications,
	)
	if opt.DB != nil {
		m.reg.MustRegister(&dbCollector{db: opt.DB, timeout: opt.ScrapeTimeout, log: opt.Log})
	}
	if opt.Quotas != nil {
		m.reg.MustRegister(quotaCollector{src: opt.Quotas})
	}
	return m
}

// Registry is the registry the metrics are in, for collectors added by
// other parts of the service.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the exposition (promhttp).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

func (m *Metrics) orgValues(orgID int64, values ...string) []string {
	if m.orgLabels {
		o := ""
		if orgID != 0 {
			o = strconv.FormatInt(orgID, 10)
		}
		return append(values, o)
	}
	return values
}

// ObserveRequest records one HTTP request; route is chi's pattern ("" when
// nothing routed it), orgID 0 when the caller was not authenticated.
func (m *Metrics) ObserveRequest(route, method string, status int, orgID int64, took time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	method = boundedMethod(method)
	m.httpRequests.WithLabelValues(m.orgValues(orgID, route, method, strconv.Itoa(status))...).Inc()
	m.httpDuration.WithLabelValues(m.orgValues(orgID, route, method)...).Observe(took.Seconds())
}

// boundedMethod keeps the method label to the methods connectord serves.
func boundedMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// KeapAttempt records one request sent to Keap; status 0 means Keap gave no
// answer.
func (m *Metrics) KeapAttempt(kind, operation string, orgID int64, status int, took time.Duration) {
	st := "error"
	if status > 0 {
		st = strconv.Itoa(status)
	}
	m.keapRequests.WithLabelValues(m.orgValues(orgID, kind, operation, st)...).Inc()
	m.keapDuration.WithLabelValues(m.orgValues(orgID, kind, operation)...).Observe(took.Seconds())
	if status == http.StatusTooManyRequests {
		m.keapThrottled.WithLabelValues(m.orgValues(orgID, kind, operation)...).Inc()
	}
}

// KeapRetry records that a Keap call is sent again, and why.
func (m *Metrics) KeapRetry(kind, operation string, orgID int64, reason string) {
	m.keapRetries.WithLabelValues(m.orgValues(orgID, kind, operation, reason)...).Inc()
}

// TokenRefreshed records one token refresh's outcome.
func (m *Metrics) TokenRefreshed(outcome string) { m.tokenRefreshes.WithLabelValues(outcome).Inc() }

// HookDelivery records one Keap hook delivery and the events it stored.
func (m *Metrics) HookDelivery(outcome string, events int) {
	m.hookDeliveries.WithLabelValues(outcome).Inc()
	if events > 0 {
		m.eventsStored.WithLabelValues("hook").Add(float64(events))
	}
}

// EventsPolled records events a poll stored.
func (m *Metrics) EventsPolled(n int) {
	if n > 0 {
		m.eventsStored.WithLabelValues("poll").Add(float64(n))
	}
}

// NotificationTried records one callback delivery try's outcome.
func (m *Metrics) NotificationTried(outcome string) { m.notifications.WithLabelValues(outcome).Inc() }

// dbCollector reads the database's figures and the pool's state on scrape.
type dbCollector struct {
	db      Database
	timeout time.Duration
	log     zerolog.Logger
}

var (
	descInstances = prometheus.NewDesc("connectord_instances",
		"Instances in a state needing attention: invalid (Keap refused their credentials) or disabled.", []string{"state"}, nil)
	descPending = prometheus.NewDesc("connectord_notifications_pending",
		"Notifications waiting for delivery to their callback.", nil, nil)
	descOldestPending = prometheus.NewDesc("connectord_notifications_oldest_pending_age_seconds",
		"Age of the oldest pending notification (delivery lag); 0 when none is pending.", nil, nil)
	descPollOverdue = prometheus.NewDesc("connectord_poll_lag_seconds",
		"Per polled resource, how late its most overdue poll is (0 when all are on time).", []string{"resource"}, nil)
	descPollSince = prometheus.NewDesc("connectord_poll_last_age_seconds",
		"Per polled resource, how long ago its least recently polled instance was polled.", []string{"resource"}, nil)
	descScrapeError = prometheus.NewDesc("connectord_database_scrape_error",
		"1 when the last scrape could not read the database's figures in time, else 0.", nil, nil)
	descPoolInUse = prometheus.NewDesc("connectord_db_pool_in_use_connections",
		"Database connections in use.", nil, nil)
	descPoolIdle = prometheus.NewDesc("connectord_db_pool_idle_connections",
		"Idle database connections.", nil, nil)
	descPoolMax = prometheus.NewDesc("connectord_db_pool_max_connections",
		"The most database connections the pool opens.", nil, nil)
	descPoolWaiting = prometheus.NewDesc("connectord_db_pool_waiting",
		"Callers asking the pool for a connection right now.", nil, nil)
	descPoolWaited = prometheus.NewDesc("connectord_db_pool_waited_total",
		"Acquisitions that found no idle connection and waited.", nil, nil)
	descPoolWaitedFor = prometheus.NewDesc("connectord_db_pool_wait_seconds_total",
		"Total time acquisitions waited for a connection.", nil, nil)
)

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInstances, descPending, descOldestPending, descPollOverdue, descPollSince,
		descScrapeError, descPoolInUse, descPoolIdle, descPoolMax, descPoolWaiting, descPoolWaited, descPoolWaitedFor} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.db.PoolStats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descPoolInUse, float64(p.InUse))
	gauge(descPoolIdle, float64(p.Idle))
	gauge(descPoolMax, float64(p.Max))
	gauge(descPoolWaiting, float64(p.Waiting))
	ch <- prometheus.MustNewConstMetric(descPoolWaited, prometheus.CounterValue, float64(p.Waited))
	ch <- prometheus.MustNewConstMetric(descPoolWaitedFor, prometheus.CounterValue, p.WaitedFor.Seconds())

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	f, err := c.db.Figures(ctx)
	if err != nil {
		// The figures are left out rather than shown stale or as zeros.
		c.log.Warn().Err(err).Msg("metrics: could not read the database's figures for this scrape")
		gauge(descScrapeError, 1)
		return
	}
	gauge(descScrapeError, 0)
	gauge(descInstances, float64(f.InvalidInstances), "invalid")
	gauge(descInstances, float64(f.DisabledInstances), "disabled")
	gauge(descPending, float64(f.PendingNotifications))
	gauge(descOldestPending, f.OldestPending.Seconds())
	for res, d := range f.PollOverdue {
		gauge(descPollOverdue, d.Seconds(), res)
	}
	for res, d := range f.PollSince {
		gauge(descPollSince, d.Seconds(), res)
	}
}
