package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
)

// arrivals is a consumer's callback endpoint that notes when each object's
// event first arrived. It accepts connectord's notifications and, for the
// baseline, Keap's own deliveries.
type arrivals struct {
	mu    sync.Mutex
	first map[string]time.Time
	dups  int
}

func newArrivals() *arrivals {
	return &arrivals{first: map[string]time.Time{}}
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var body struct {
		Events []struct {
			ObjectID string `json:"objectId"`
		} `json:"events"`
		ObjectKeys []struct {
			ID int64 `json:"id"`
		} `json:"object_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ids := make([]string, 0, len(body.Events)+len(body.ObjectKeys))
	for _, e := range body.Events {
		ids = append(ids, e.ObjectID)
	}
	for _, k := range body.ObjectKeys {
		ids = append(ids, strconv.FormatInt(k.ID, 10))
	}
	a.mu.Lock()
	for _, id := range ids {
		if _, ok := a.first[id]; ok {
			a.dups++
			continue
		}
		a.first[id] = now
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// waitAll waits until every id has arrived, and returns when the last did. It
// looks every 20 ms at the ids still missing only, so that watching costs the
// machine little next to what it measures.
func (a *arrivals) waitAll(b *testing.B, ids []string, timeout time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(timeout)
	missing := slices.Clone(ids)
	var last time.Time
	for {
		a.mu.Lock()
		left := missing[:0]
		for _, id := range missing {
			at, ok := a.first[id]
			switch {
			case !ok:
				left = append(left, id)
			case at.After(last):
				last = at
			}
		}
		a.mu.Unlock()
		missing = left
		if len(missing) == 0 {
			return last
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events never reached the callback", len(missing), len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hookSender posts Keap-shaped REST hook deliveries, as Keap does, to a URL.
type hookSender struct {
	client *http.Client
	url    string
	next   atomic.Int64 // the next contact id
}

// deliver posts one delivery of n new contact ids and returns them.
func (h *hookSender) deliver(b *testing.B, n int) []string {
	keys := make([]map[string]any, n)
	ids := make([]string, n)
	stamp := time.Now().UTC().Format(time.RFC3339)
	for i := range keys {
		id := h.next.Add(1)
		keys[i] = map[string]any{"id": id, "apiUrl": fmt.Sprintf("https://api.infusionsoft.com/crm/rest/v1/contacts/%d", id), "timestamp": stamp}
		ids[i] = strconv.FormatInt(id, 10)
	}
	body, err := json.Marshal(map[string]any{"event_key": "contact.add", "object_type": "contact", "object_keys": keys})
	if err != nil {
		b.Error(err)
		return nil
	}
	resp, err := h.client.Post(h.url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Errorf("hook delivery: %v", err) // not Fatal: senders run on their own goroutines
		return nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("hook delivery answered %d, want 200", resp.StatusCode)
		return nil
	}
	return ids
}

// burst sends total events in deliveries of per objects from senders
// goroutines, as fast as they are acknowledged, and returns every id and when
// the first delivery was sent.
func (h *hookSender) burst(b *testing.B, total, per, senders int) ([]string, time.Time) {
	var mu sync.Mutex
	var all []string
	start := time.Now()
	parallel(total/per, senders, func(int) {
		ids := h.deliver(b, per)
		mu.Lock()
		all = append(all, ids...)
		mu.Unlock()
	})
	return all, start
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEventsHookToCallback measures connectord's event path end to end:
// Keap REST hook deliveries in at the receiver, stored, normalised, signed and
// posted to a consumer's callback on loopback. Run it with
//
//	go test -run '^$' -bench EventsHookToCallback -benchtime 1x ./cmd/connectord
//
// It reports:
//   - events/s: a burst of CONNECTORD_BENCH_EVENTS (default 20000) contact.add
//     events, in deliveries of 100 objects from 4 concurrent senders, from the
//     first delivery sent to the last event at the callback;
//   - baseline_events/s: the same burst posted straight to the consumer, the
//     ceiling the sender and consumer allow on this machine, in the same run;
//   - stored_events/s: how fast the receiver took that burst in (stored it
//     durably and answered), delivery running meanwhile;
//   - p50_ms, p99_ms, max_ms: at a steady CONNECTORD_BENCH_RATE events/s
//     (default 500) for CONNECTORD_BENCH_SECONDS (default 10), in deliveries of
//     5 objects every 10 ms, the time from sending a delivery to the receiver
//     (which stores it durably before it answers) to each of its events'
//     arrival at the callback.
//
// Targets (issue 5): at least 2,000 events/s sustained, p99 under 1 s at 500/s.
func BenchmarkEventsHookToCallback(b *testing.B) {
	total := benchEnvInt("CONNECTORD_BENCH_EVENTS", 20000)
	rate := benchEnvInt("CONNECTORD_BENCH_RATE", 500)
	seconds := benchEnvInt("CONNECTORD_BENCH_SECONDS", 10)
	const per, senders = 100, 4

	consumer := newArrivals()
	cs := httptest.NewServer(consumer)
	defer cs.Close()
	k := newKeap(b, fakekeap.Options{})
	env := eventsEnv(b, k)
	s := startServerWith(b, env, k, nil)
	o := s.createOrg("Bench", "bench@example.test")
	s.eventsInstance(o, cs.URL+"/events", "bench-signature-key", 0)
	var hookURL string
	waitUntil(b, "a Verified contact.add hook at Keap", 30*time.Second, func() bool {
		for _, h := range k.Hooks() {
			if h.EventKey == "contact.add" && h.Status == "Verified" {
				hookURL = h.HookURL
				return true
			}
		}
		return false
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}

	for range b.N {
		// Baseline: the same deliveries straight to the consumer.
		direct := &hookSender{client: client, url: cs.URL + "/direct"}
		direct.next.Store(1 << 40)
		ids, start := direct.burst(b, total, per, senders)
		if b.Failed() {
			b.FailNow()
		}
		baseline := float64(len(ids)) / consumer.waitAll(b, ids, time.Minute).Sub(start).Seconds()

		// Throughput through connectord.
		via := &hookSender{client: client, url: hookURL}
		ids, start = via.burst(b, total, per, senders)
		if b.Failed() {
			b.FailNow()
		}
		stored := float64(len(ids)) / time.Since(start).Seconds()
		through := float64(len(ids)) / consumer.waitAll(b, ids, 5*time.Minute).Sub(start).Seconds()

		// Latency at a steady rate: one delivery of 5 every 5/rate seconds.
		const small = 5
		every := time.Duration(float64(time.Second) * small / float64(rate))
		var mu sync.Mutex
		received := map[string]time.Time{} // when each event's delivery was sent to the receiver
		var wg sync.WaitGroup
		tick := time.NewTicker(every)
		end := time.Now().Add(time.Duration(seconds) * time.Second)
		for now := range tick.C {
			if now.After(end) {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent := time.Now()
				got := via.deliver(b, small)
				mu.Lock()
				for _, id := range got {
					received[id] = sent
				}
				mu.Unlock()
			}()
		}
		tick.Stop()
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		steady := make([]string, 0, len(received))
		for id := range received {
			steady = append(steady, id)
		}
		consumer.waitAll(b, steady, time.Minute)
		lat := make([]time.Duration, 0, len(steady))
		consumer.mu.Lock()
		for id, at := range received {
			lat = append(lat, max(consumer.first[id].Sub(at), 0))
		}
		dups := consumer.dups
		consumer.mu.Unlock()
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }

		b.ReportMetric(through, "events/s")
		b.ReportMetric(baseline, "baseline_events/s")
		b.ReportMetric(stored, "stored_events/s")
		b.ReportMetric(float64(len(steady))/float64(seconds), "steady_events/s")
		b.ReportMetric(pct(0.50), "p50_ms")
		b.ReportMetric(pct(0.99), "p99_ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
		b.ReportMetric(float64(dups), "duplicates")
	}
}
