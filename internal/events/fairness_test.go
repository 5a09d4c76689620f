package events

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Sixteen consumers whose callbacks hang for 11 s, each with a backlog, do
// not hold back another organization's notification: it arrives within 1 s,
// whether the sixteen are sixteen organizations or one.
func TestDelivery_HangingConsumersDoNotDelayAnotherOrganization(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		org  func(i int64) int64
	}{
		{"sixteen organizations", func(i int64) int64 { return i }},
		{"one organization", func(int64) int64 { return 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			var hanging atomic.Int64
			hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hanging.Add(1)
				select {
				case <-time.After(11 * time.Second):
				case <-release:
				case <-r.Context().Done():
				}
				w.WriteHeader(http.StatusNoContent)
			})
			var arrived atomic.Int64
			quick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived.Store(time.Now().UnixNano())
				w.WriteHeader(http.StatusNoContent)
			}))
			defer quick.Close()

			st := newMemStore()
			for i := int64(1); i <= 16; i++ {
				srv := httptest.NewServer(hang)
				defer srv.Close()
				st.callbacks[i], st.orgs[i] = srv.URL, tc.org(i)
				for n := range 20 {
					st.add(NotificationID(i*100+int64(n)), i)
				}
			}
			st.callbacks[99], st.orgs[99] = quick.URL, 99
			d := NewDelivery(st, testCatalog(t), DeliveryOptions{PollInterval: 50 * time.Millisecond, Policy: CallbackPolicy{AllowPrivate: true}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); d.Run(ctx) }()
			defer func() { close(release); cancel(); <-done }()

			// Let the hanging consumers take what they can.
			want := int64(16)
			if tc.name == "one organization" {
				want = 8 // PerOrganization
			}
			for deadline := time.Now().Add(5 * time.Second); hanging.Load() < want && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			if n := hanging.Load(); n < want {
				t.Fatalf("only %d hanging deliveries started", n)
			}
			sent := time.Now()
			st.add(9999, 99)
			d.Wake()
			for time.Since(sent) < 5*time.Second && arrived.Load() == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			if arrived.Load() == 0 {
				t.Fatalf("the other organization's notification did not arrive within 5 s (%d deliveries hanging)", hanging.Load())
			}
			if took := time.Unix(0, arrived.Load()).Sub(sent); took > time.Second {
				t.Fatalf("the other organization's notification took %v, want under 1 s", took)
			}
			if n := hanging.Load(); tc.name == "one organization" && n > 8 {
				t.Errorf("one organization has %d deliveries hanging, want at most PerOrganization = 8", n)
			} else if n > 64 {
				t.Errorf("%d deliveries hanging, want at most PerInstance·16 = 64", n)
			}
		})
	}
}

// An endpoint that keeps failing rests: after BreakerAfter failures in a row
// its notifications are not tried for BreakerPause, spend no tries while they
// wait, stay pending, and are all delivered once it answers again.
func TestDelivery_FailingEndpointRestsWithoutLosingNotifications(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	var tries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	st := newMemStore()
	st.callbacks[1] = srv.URL
	for n := range 10 {
		st.add(NotificationID(n+1), 1)
	}
	d := NewDelivery(st, testCatalog(t), DeliveryOptions{
		BackoffBase: time.Millisecond, MaxRetries: 3, BreakerAfter: 3, BreakerPause: time.Second,
		PollInterval: 20 * time.Millisecond, Policy: CallbackPolicy{AllowPrivate: true},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(400 * time.Millisecond)
	// Three failures opened the breaker (a try admitted before it opened may
	// still end after: PerInstance is 4, and the first ones start together); without it, ten notifications of
	// four tries each (3 retries, 1 ms backoff) would all have failed by now.
	opened := tries.Load()
	if opened < 3 || opened > 6 {
		t.Fatalf("the failing endpoint was tried %d times in 400 ms, want 3 to 6 (then it rests)", opened)
	}
	time.Sleep(400 * time.Millisecond)
	if n := tries.Load(); n != opened {
		t.Fatalf("the resting endpoint was tried %d more times", n-opened)
	}
	st.mu.Lock()
	pending := len(st.due)
	st.mu.Unlock()
	if pending != 10 {
		t.Fatalf("%d of 10 notifications still pending while the endpoint rests", pending)
	}
	healthy.Store(true)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n, _ := st.deliveredCount(); n == 10 {
			return
		}
	}
	n, _ := st.deliveredCount()
	t.Fatalf("delivered %d of 10 after the endpoint recovered", n)
}
