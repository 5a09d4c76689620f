package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector is a callback receiver that notes when each event arrived.
type collector struct {
	URL string

	mu      sync.Mutex
	arrived map[string]time.Time // object id -> first arrival
	latency []time.Duration      // arrival - the event's date (Keap's timestamp)
	wake    chan struct{}
}

func newCollector(b testing.TB) *collector {
	c := &collector{arrived: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	b.Cleanup(srv.Close)
	c.URL = srv.URL + "/events"
	return c
}

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Header.Get("X-Hook-Secret") != "" { // the baseline's handshake: the fake delivers here directly
		w.Header().Set("X-Hook-Secret", r.Header.Get("X-Hook-Secret"))
		return
	}
	var n struct {
		Events []struct {
			ObjectID string    `json:"objectId"`
			Date     time.Time `json:"date"`
		} `json:"events"`
		EventKey string `json:"event_key"`
		Keys     []struct {
			ID        int64     `json:"id"`
			Timestamp time.Time `json:"timestamp"`
		} `json:"object_keys"`
	}
	if json.Unmarshal(body, &n) != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	for _, k := range n.Keys {
		n.Events = append(n.Events, struct {
			ObjectID string    `json:"objectId"`
			Date     time.Time `json:"date"`
		}{strconv.FormatInt(k.ID, 10), k.Timestamp})
	}
	c.mu.Lock()
	for _, e := range n.Events {
		if _, seen := c.arrived[e.ObjectID]; !seen {
			c.arrived[e.ObjectID] = now
			c.latency = append(c.latency, now.Sub(e.Date))
		}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.arrived)
}

func (c *collector) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arrived, c.latency = map[string]time.Time{}, nil
}

func (c *collector) waitFor(b testing.TB, n int, timeout time.Duration) {
	b.Helper()
	deadline := time.After(timeout)
	for c.count() < n {
		select {
		case <-c.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			b.Fatalf("%d of %d events arrived in %s", c.count(), n, timeout)
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ids(from, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(from + i)
	}
	return out
}

// BenchmarkHookDelivery measures events from Keap REST hook deliveries in to
// callback notifications out, through a real connectord, PostgreSQL and the
// fake Keap on loopback: a burst (CONNECTORD_BENCH_EVENTS, default 20,000, in
// Keap's deliveries of 1000 objects) for events/s, then 500 events/s for 10 s
// (one delivery of 10 objects every 20 ms) for the latency from Keap's
// timestamp to arrival at the callback. The baseline is the same burst
// delivered by the fake straight to the callback receiver. Run it with
//
//	go test -run '^$' -bench HookDelivery -benchtime 1x ./cmd/connectord
func BenchmarkHookDelivery(b *testing.B) {
	n := 20000
	if v := os.Getenv("CONNECTORD_BENCH_EVENTS"); v != "" {
		if parsed, err := strconv.Atoi(v); err == nil && parsed > 0 {
			n = parsed
		}
	}
	k := newHookKeap(b)
	env := eventsEnv(b, k.keapServer)
	s := startServerWith(b, env, k.keapServer, nil)
	o := s.createOrg("Bench", "bench@acme.test")
	col := newCollector(b)
	s.eventsInstance(o, col.URL, "bench-key", 0)
	waitUntil(b, "hooks registered", 10*time.Second, func() bool {
		return allVerified(k.hooksFor(s.URL+"/events/keap/"), contactEventKeys...)
	})

	for b.Loop() {
		col.reset()
		start := time.Now()
		if err := k.DeliverHook("contact.add", ids(1, n)); err != nil {
			b.Fatal(err)
		}
		col.waitFor(b, n, 5*time.Minute)
		burst := time.Since(start)
		b.ReportMetric(float64(n)/burst.Seconds(), "events/s")

		col.reset()
		const rate, seconds, perDelivery = 500, 10, 10
		tick := time.NewTicker(time.Second * perDelivery / rate)
		next := n + 1
		for range rate * seconds / perDelivery {
			<-tick.C
			if err := k.DeliverHook("contact.edit", ids(next, perDelivery)); err != nil {
				b.Fatal(err)
			}
			next += perDelivery
		}
		tick.Stop()
		col.waitFor(b, rate*seconds, time.Minute)
		col.mu.Lock()
		lat := slices.Clone(col.latency)
		col.mu.Unlock()
		b.ReportMetric(float64(percentile(lat, 0.50).Milliseconds()), "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "p99-ms")
		b.ReportMetric(float64(percentile(lat, 1).Milliseconds()), "max-ms")
	}
	b.StopTimer()

	// Baseline: the fake delivers the same burst straight to the receiver.
	base := newHookKeap(b)
	reg, _ := http.NewRequest("POST", base.URL+"/crm/rest/v1/hooks", strings.NewReader(`{"eventKey":"contact.add","hookUrl":"`+col.URL+`"}`))
	reg.Header.Set("Content-Type", "application/json")
	reg.Header.Set("X-Keap-API-Key", testServiceKey)
	resp, err := http.DefaultClient.Do(reg)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	col.reset()
	start := time.Now()
	if err := base.DeliverHook("contact.add", ids(1, n)); err != nil {
		b.Fatal(err)
	}
	col.waitFor(b, n, time.Minute)
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "baseline-events/s")
}
