package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectord/connectord/internal/quota"
)

// QuotaSource is Keap's quota scheduler (internal/quota): its view of every
// quota it draws on, as of its last sync.
type QuotaSource interface {
	Snapshot() []quota.Figures
}

// quotaCollector sums the quotas' figures by kind: a quota's own name is an
// OAuth client id or a key's hash, one per tenant app or key, too many for
// labels.
type quotaCollector struct{ src QuotaSource }

var (
	descQuotas       = prometheus.NewDesc("connectord_quotas", "Keap quotas this replica draws on, by kind (oauth_client, api_key).", []string{"kind"}, nil)
	descQuotaLimit   = prometheus.NewDesc("connectord_quota_limit", "Keap's limits summed over the quotas of a kind, per window (second, minute, day).", []string{"kind", "window"}, nil)
	descQuotaUsed    = prometheus.NewDesc("connectord_quota_used", "Calls spent in the current window (minute, day, UTC) by every replica, summed over the quotas of a kind.", []string{"kind", "window"}, nil)
	descQuotaLeft    = prometheus.NewDesc("connectord_quota_remaining", "What is left of the current window's limits, summed over the quotas of a kind.", []string{"kind", "window"}, nil)
	descQuotaWaiting = prometheus.NewDesc("connectord_quota_waiting", "Calls waiting for a turn on Keap's quotas, on every replica, by kind.", []string{"kind"}, nil)
	descQuotaPaused  = prometheus.NewDesc("connectord_quota_paused", "Quotas Keap asked every caller to pause, by kind.", []string{"kind"}, nil)
)

func (c quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQuotas, descQuotaLimit, descQuotaUsed, descQuotaLeft, descQuotaWaiting, descQuotaPaused} {
		ch <- d
	}
}

func (c quotaCollector) Collect(ch chan<- prometheus.Metric) {
	type sums struct{ n, sec, min, day, minUsed, dayUsed, minLeft, dayLeft, waiting, paused float64 }
	by := map[string]*sums{"oauth_client": {}, "api_key": {}}
	now := time.Now()
	for _, f := range c.src.Snapshot() {
		kind := "api_key"
		if f.Key.Kind == quota.OAuthClient {
			kind = "oauth_client"
		}
		s := by[kind]
		s.n++
		s.sec += float64(f.Limits.PerSecond)
		s.min += float64(f.Limits.PerMinute)
		s.day += float64(f.Limits.PerDay)
		s.minUsed += float64(f.MinuteUsed)
		s.dayUsed += float64(f.DayUsed)
		s.minLeft += float64(f.MinuteRemaining())
		s.dayLeft += float64(f.DayRemaining())
		s.waiting += float64(f.Waiting)
		if f.PausedUntil.After(now) {
			s.paused++
		}
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for kind, s := range by {
		g(descQuotas, s.n, kind)
		g(descQuotaLimit, s.sec, kind, "second")
		g(descQuotaLimit, s.min, kind, "minute")
		g(descQuotaLimit, s.day, kind, "day")
		g(descQuotaUsed, s.minUsed, kind, "minute")
		g(descQuotaUsed, s.dayUsed, kind, "day")
		g(descQuotaLeft, s.minLeft, kind, "minute")
		g(descQuotaLeft, s.dayLeft, kind, "day")
		g(descQuotaWaiting, s.waiting, kind)
		g(descQuotaPaused, s.paused, kind)
	}
}
