package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// scrape is one read of GET /metrics, parsed.
type scrape struct {
	raw      string
	families map[string]*dto.MetricFamily
}

func scrapeMetrics(t testing.TB, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %d %s %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	return scrape{raw: string(body), families: fams}
}

// value sums the samples of metric name whose labels include want (a
// histogram counts its observations). ok is false when no sample matches.
func (s scrape) value(name string, want map[string]string) (v float64, ok bool) {
	f := s.families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if labels[k] != w {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v, ok
}

func (s scrape) get(name string, want map[string]string) float64 {
	v, _ := s.value(name, want)
	return v
}

// labelValues lists every value label takes in metric name.
func (s scrape) labelValues(name, label string) []string {
	seen := map[string]bool{}
	if f := s.families[name]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

type labels = map[string]string

// TestMetrics_MoveThroughAJourneyAndHoldNoSecrets scrapes /metrics before and
// after a journey through the API, Keap's hooks, a callback, a poll and a
// refresh, and checks that each metric moved as it should, and that the
// exposition shows no secret, token, instance id or raw path.
func TestMetrics_MoveThroughAJourneyAndHoldNoSecrets(t *testing.T) {
	t.Parallel()
	k := newHookKeap(t)
	env := hooksEnv(t, k)
	env["CONNECTORD_POLLER_INTERVAL_OVERRIDE"] = "100ms"
	s := startServerWith(t, env, k.keapServer, nil)
	o := s.createOrg("Metrics", "metrics@acme.test")
	before := scrapeMetrics(t, s.URL+"/metrics")
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "connectord_db_pool_max_connections"} {
		if _, ok := before.value(name, nil); !ok {
			t.Errorf("no %s in the exposition", name)
		}
	}
	if got := before.get("connectord_db_pool_max_connections", nil); got != 20 {
		t.Errorf("connectord_db_pool_max_connections %v, want 20", got)
	}

	// A webhook instance: its hooks are registered at Keap (Keap calls).
	rcv := newReceiver(t, "whsec-metrics")
	id := s.eventsInstance(o, rcv.URL, "whsec-metrics", 0)
	waitUntil(t, "Verified hooks for the contact events", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(s.URL+"/events/keap/"), contactEventKeys...)
	})
	// Keap delivers two events; they are stored and delivered to the callback.
	if err := k.DeliverHook("contact.add", []int64{11, 12}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a notification at the callback", 10*time.Second, func() bool { n, _ := rcv.distinct(); return n == 1 })
	// A delivery to no hook is refused.
	if r := s.do("POST", "/events/keap/no-such-receiver-secret", "", `{"event_key":"contact.add","object_keys":[{"id":1}]}`); r.Status != 404 {
		t.Fatalf("unknown receiver: %d", r.Status)
	}
	// A refresh by hand, twice; then Keap refuses the refresh token.
	for range 2 {
		if r := s.do("PUT", fmt.Sprintf("/instances/%d/tokens/refresh", id), o.auth(), nil); r.Status != 200 {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
	}
	// A polling instance whose poll stores an event for a new contact.
	polled := s.pollingInstance(o, map[string]any{"event.notification.enabled": true,
		"event.notification.callback.url": rcv.URL, "event.notification.signature.key": "whsec-metrics"})
	s.waitCursors(polled, 1)
	keapREST(t, s.keap, "POST", "/contacts", map[string]any{"given_name": "Polled", "email_addresses": []any{map[string]any{"email": "polled@example.test", "field": "EMAIL1"}}})
	// A 429 from Keap on a hub call through an instance token, retried.
	h := s.hubUser(t, o, "infusionsoftcrm")
	s.keap.FailNext(1, 429, "0")
	if got, _ := h.list("/hubs/crm/contacts?pageSize=5"); len(got) == 0 {
		t.Fatal("hub list after a 429 returned nothing")
	}
	if r := h.do("GET", "/hubs/crm/contacts/999999", nil); r.Status != 404 {
		t.Fatalf("unknown contact: %d", r.Status)
	}

	var after scrape
	waitUntil(t, "the poll's event counted", 15*time.Second, func() bool {
		after = scrapeMetrics(t, s.URL+"/metrics")
		return after.get("connectord_events_stored_total", labels{"source": "poll"}) >= 1
	})
	s.keap.RevokeRefreshTokens(testClientID)
	if r := s.do("PUT", fmt.Sprintf("/instances/%d/tokens/refresh", id), o.auth(), nil); r.Status < 400 {
		t.Fatalf("refresh with a revoked token: %d %s", r.Status, r.Body)
	}
	after = scrapeMetrics(t, s.URL+"/metrics")

	moved := func(name string, l labels, min float64) {
		t.Helper()
		if d := after.get(name, l) - before.get(name, l); d < min {
			t.Errorf("%s%v moved by %v, want at least %v", name, l, d, min)
		}
	}
	exactly := func(name string, l labels, want float64) {
		t.Helper()
		if d := after.get(name, l) - before.get(name, l); d != want {
			t.Errorf("%s%v moved by %v, want %v", name, l, d, want)
		}
	}
	// HTTP requests by route pattern.
	exactly("connectord_http_requests_total", labels{"route": "/instances/{id}/tokens/refresh", "method": "PUT", "status": "200"}, 2)
	exactly("connectord_http_request_duration_seconds", labels{"route": "/instances/{id}/tokens/refresh", "method": "PUT"}, 3)
	exactly("connectord_http_requests_total", labels{"route": "/events/keap/{secret}", "method": "POST", "status": "404"}, 1)
	exactly("connectord_http_requests_total", labels{"route": "/hubs/{hub}/{resource}/{id}", "method": "GET", "status": "404"}, 1)
	moved("connectord_http_requests_total", labels{"route": "/instances", "method": "POST", "status": "200"}, 2)
	// Keap calls: hook registrations and hub lists under the OAuth client's quota, one 429 retried.
	moved("connectord_keap_requests_total", labels{"kind": "oauth_client", "operation": "POST rest/v1", "status": "200"}, 3)
	moved("connectord_keap_requests_total", labels{"kind": "oauth_client", "operation": "GET rest/v1", "status": "200"}, 1)
	exactly("connectord_keap_requests_total", labels{"kind": "oauth_client", "operation": "GET rest/v1", "status": "429"}, 1)
	exactly("connectord_keap_throttled_total", labels{"kind": "oauth_client", "operation": "GET rest/v1"}, 1)
	exactly("connectord_keap_retries_total", labels{"kind": "oauth_client", "operation": "GET rest/v1", "reason": "throttled"}, 1)
	moved("connectord_keap_request_duration_seconds", labels{"kind": "oauth_client", "operation": "GET rest/v1"}, 3)
	// Keap's quotas (internal/quota), by kind: the OAuth client's is in use.
	if n := after.get("connectord_quotas", labels{"kind": "oauth_client"}); n < 1 {
		t.Errorf("connectord_quotas{kind=oauth_client} %v, want at least 1", n)
	}
	if v := after.get("connectord_quota_limit", labels{"kind": "oauth_client", "window": "minute"}); v <= 0 {
		t.Errorf("connectord_quota_limit{kind=oauth_client,window=minute} %v", v)
	}
	for _, name := range []string{"connectord_quota_used", "connectord_quota_remaining", "connectord_quota_waiting", "connectord_quota_paused"} {
		if _, ok := after.value(name, labels{"kind": "oauth_client"}); !ok {
			t.Errorf("no %s", name)
		}
	}
	// Token refreshes by outcome, and the instance left invalid.
	moved("connectord_token_refreshes_total", labels{"outcome": "refreshed"}, 2)
	exactly("connectord_token_refreshes_total", labels{"outcome": "refused"}, 1)
	exactly("connectord_instances", labels{"state": "invalid"}, 1)
	// Hook deliveries, events, notifications.
	// (The contact created for the poll is delivered to the webhook instance too.)
	moved("connectord_hook_deliveries_received_total", labels{"outcome": "stored"}, 1)
	exactly("connectord_hook_deliveries_received_total", labels{"outcome": "refused"}, 1)
	moved("connectord_events_stored_total", labels{"source": "hook"}, 2)
	moved("connectord_events_stored_total", labels{"source": "poll"}, 1)
	moved("connectord_notification_deliveries_total", labels{"outcome": "delivered"}, 1)
	if _, ok := after.value("connectord_notifications_pending", nil); !ok {
		t.Error("no connectord_notifications_pending")
	}
	if v, ok := after.value("connectord_notifications_oldest_pending_age_seconds", nil); !ok || v < 0 {
		t.Errorf("connectord_notifications_oldest_pending_age_seconds %v (present %v)", v, ok)
	}
	// Polling lag per resource: the polled instance's resources are there.
	if res := after.labelValues("connectord_poll_lag_seconds", "resource"); !slicesContain(res, "contacts") {
		t.Errorf("connectord_poll_lag_seconds resources %v, want contacts among them", res)
	}
	if res := after.labelValues("connectord_poll_last_age_seconds", "resource"); !slicesContain(res, "contacts") {
		t.Errorf("connectord_poll_last_age_seconds resources %v", res)
	}
	if v := after.get("connectord_database_scrape_error", nil); v != 0 {
		t.Errorf("connectord_database_scrape_error %v", v)
	}

	// No secret, token, instance id or raw path in the exposition.
	secrets := []string{o.User.Secret, o.Organization.Secret, h.token, testClientSecret, "whsec-metrics", "no-such-receiver-secret"}
	for _, hk := range k.Hooks() {
		secrets = append(secrets, hk.HookURL[strings.LastIndex(hk.HookURL, "/")+1:])
	}
	for _, sec := range secrets {
		if sec != "" && strings.Contains(after.raw, sec) {
			t.Errorf("the exposition shows a secret (%.6s…)", sec)
		}
	}
	for _, f := range after.families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if v == fmt.Sprint(id) || v == fmt.Sprint(polled) || v == h.id || regexp.MustCompile(`/\d+(/|$)`).MatchString(v) {
					t.Errorf("%s has label %s=%q: an instance id or a raw path", f.GetName(), l.GetName(), v)
				}
				if l.GetName() == "organization" {
					t.Errorf("%s has an organization label without CONNECTORD_METRICS_ORG_LABELS", f.GetName())
				}
			}
		}
	}
	checkDashboard(t, after)
	if t.Failed() {
		t.Logf("exposition:\n%s", after.raw)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// With CONNECTORD_METRICS_ADDR the metrics have their own listener and the
// API's answers 404; CONNECTORD_METRICS_ORG_LABELS adds organization ids.
func TestMetrics_OwnListenerAndOrganizationLabels(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_METRICS_ADDR"] = "127.0.0.1:0"
	env["CONNECTORD_METRICS_ORG_LABELS"] = "true"
	s := startServerWith(t, env, k, nil)
	line := s.logs.waitFor(t, "metrics listening", s.done)
	addr, _ := line["metrics_addr"].(string)
	if addr == "" {
		t.Fatalf("no metrics_addr in %v", line)
	}
	if r := s.do("GET", "/metrics", "", nil); r.Status != 404 {
		t.Fatalf("GET /metrics on the API listener: %d", r.Status)
	}
	o := s.createOrg("Labels", "labels@acme.test")
	if r := s.do("GET", "/instances", o.auth(), nil); r.Status != 200 {
		t.Fatalf("GET /instances: %d", r.Status)
	}
	m := scrapeMetrics(t, "http://"+addr+"/metrics")
	if got := m.get("connectord_http_requests_total", labels{"route": "/instances", "method": "GET", "status": "200", "organization": fmt.Sprint(o.Organization.ID)}); got != 1 {
		t.Errorf("GET /instances for organization %d counted %v times\n%s", o.Organization.ID, got, m.raw)
	}
}

// checkDashboard reads the sample Grafana dashboard and checks that it is
// valid JSON whose every query names metrics m (a scrape after a journey,
// where every family has samples) holds.
func checkDashboard(t *testing.T, m scrape) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json is not valid JSON: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard has no title or panels")
	}
	known := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && m.families[base] != nil {
				return true
			}
		}
		return false
	}
	metricName := regexp.MustCompile(`\b(connectord_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)
	named := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("dashboard panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				named++
				if !known(n) {
					t.Errorf("dashboard panel %q names %s, which connectord does not expose", p.Title, n)
				}
			}
		}
	}
	if named == 0 {
		t.Fatal("the dashboard names no metric")
	}
}
