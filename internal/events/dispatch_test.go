package events

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
)

// memStore is an in-memory DeliveryStore: notifications keyed by id, each for
// the instance whose callback URL callbacks holds.
type memStore struct {
	mu        sync.Mutex
	due       map[NotificationID]time.Time
	instance  map[NotificationID]int64
	delivered map[NotificationID]int
	deferred  int
	callbacks map[int64]string
	orgs      map[int64]int64 // each instance's organization (0 when not set)
}

func newMemStore() *memStore {
	return &memStore{due: map[NotificationID]time.Time{}, instance: map[NotificationID]int64{},
		delivered: map[NotificationID]int{}, callbacks: map[int64]string{}, orgs: map[int64]int64{}}
}

func (m *memStore) add(id NotificationID, instanceID int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.due[id], m.instance[id] = time.Now(), instanceID
}

func (m *memStore) ClaimNotifications(_ context.Context, c Claim) ([]Claimed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Claimed
	perInst, perOrg := map[int64]int{}, map[int64]int{}
	for id, at := range m.due {
		if len(out) == c.Limit {
			break
		}
		inst := m.instance[id]
		org := m.orgs[inst]
		if at.After(time.Now()) || slices.Contains(c.SkipInstances, inst) || slices.Contains(c.SkipOrganizations, org) ||
			c.PerInstance > 0 && perInst[inst] >= c.PerInstance || c.PerOrganization > 0 && perOrg[org] >= c.PerOrganization {
			continue
		}
		perInst[inst]++
		perOrg[org]++
		m.due[id] = time.Now().Add(c.Lease)
		out = append(out, Claimed{ID: id, EventID: "e", InstanceID: inst})
	}
	return out, nil
}

func (m *memStore) RecordDelivery(_ context.Context, id NotificationID, o Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o.Delivered {
		m.delivered[id]++
		delete(m.due, id)
	} else {
		m.due[id] = o.NextTry
	}
	return nil
}

func (m *memStore) DeferNotifications(_ context.Context, ids []NotificationID, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.due[id] = time.Now().Add(d)
		m.deferred++
	}
	return nil
}

func (m *memStore) NextNotificationDue(context.Context) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for _, at := range m.due {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero(), nil
}

func (m *memStore) InstanceByID(_ context.Context, id int64) (*instances.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.callbacks[id]
	return &instances.Instance{ID: id, OrganizationID: m.orgs[id], ElementKey: "infusionsoftcrm", Name: "test",
		Config: map[string]*string{instances.KeyEventCallback: &u}, Secrets: map[string]string{}}, nil
}

func (m *memStore) deliveredCount() (n int, dup bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.delivered {
		n++
		dup = dup || c > 1
	}
	return n, dup
}

// concurrency counts the requests a callback is answering at once.
type concurrency struct {
	now, max atomic.Int64
}

func (c *concurrency) handler(delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.now.Add(1)
		for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
		}
		time.Sleep(delay)
		c.now.Add(-1)
		w.WriteHeader(http.StatusNoContent)
	})
}

func testCatalog(t *testing.T) *elements.Catalog {
	t.Helper()
	cat, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// A slow consumer gets at most PerHost deliveries at once, while a fast one on
// another host keeps receiving: one slow callback cannot starve the rest.
func TestDelivery_SlowHostDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	var slowC, fastC concurrency
	slow := httptest.NewServer(slowC.handler(300 * time.Millisecond))
	defer slow.Close()
	fast := httptest.NewServer(fastC.handler(0))
	defer fast.Close()

	st := newMemStore()
	st.callbacks[1], st.callbacks[2] = slow.URL, fast.URL
	for i := 1; i <= 12; i++ {
		st.add(NotificationID(i), 1)
	}
	for i := 101; i <= 160; i++ {
		st.add(NotificationID(i), 2)
	}
	d := NewDelivery(st, testCatalog(t), DeliveryOptions{PerHost: 2, PollInterval: 20 * time.Millisecond, Policy: CallbackPolicy{AllowPrivate: true}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()

	// The fast consumer's 60 arrive while the slow one still works through
	// its 12 (6 rounds of 300 ms at 2 at a time: 1.8 s).
	deadline := time.Now().Add(10 * time.Second)
	fastDone := time.Time{}
	for time.Now().Before(deadline) {
		st.mu.Lock()
		fastN, slowN := 0, 0
		for id := range st.delivered {
			if id > 100 {
				fastN++
			} else {
				slowN++
			}
		}
		st.mu.Unlock()
		if fastN == 60 && fastDone.IsZero() {
			fastDone = time.Now()
			if slowN == 12 {
				t.Errorf("the fast consumer's notifications waited for the slow consumer's to finish")
			}
		}
		if fastN == 60 && slowN == 12 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n, dup := st.deliveredCount(); n != 72 || dup {
		t.Fatalf("delivered %d of 72 notifications (duplicates: %v)", n, dup)
	}
	if m := slowC.max.Load(); m > 2 {
		t.Errorf("the slow consumer answered %d deliveries at once, want at most PerHost = 2", m)
	}
	if m := fastC.max.Load(); m > 2 {
		t.Errorf("the fast consumer answered %d deliveries at once, want at most PerHost = 2", m)
	}
}

// Wake starts a delivery at once, without waiting for the next poll.
func TestDelivery_WakeSendsWithoutWaitingForThePoll(t *testing.T) {
	t.Parallel()
	var c concurrency
	srv := httptest.NewServer(c.handler(0))
	defer srv.Close()
	st := newMemStore()
	st.callbacks[1] = srv.URL
	d := NewDelivery(st, testCatalog(t), DeliveryOptions{PollInterval: time.Hour, Policy: CallbackPolicy{AllowPrivate: true}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(100 * time.Millisecond) // the dispatcher found nothing and sleeps for the poll interval
	st.add(1, 1)
	start := time.Now()
	d.Wake()
	for time.Since(start) < 5*time.Second {
		if n, _ := st.deliveredCount(); n == 1 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("a woken dispatcher did not deliver within 5 s (its poll interval is an hour)")
}

// Why a POST failed is stored and logged, so it must not carry the callback
// URL, whose query string may hold the consumer's own secret.
func TestDelivery_TransportErrorsLeaveTheURLOut(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(time.Second) }))
	defer slow.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	d := NewDelivery(nil, nil, DeliveryOptions{Timeout: 100 * time.Millisecond, Policy: CallbackPolicy{AllowPrivate: true}})
	for _, tc := range []struct{ url, want string }{
		{slow.URL + "/cb?token=s3cret", "the callback did not answer in time"},
		{closed.URL + "/cb?token=s3cret", "no answer from the callback: "},
	} {
		status, why := d.post(context.Background(), Claimed{ID: 1}, &target{route: route{url: tc.url}})
		if status != 0 || !strings.HasPrefix(why, tc.want) || strings.Contains(why, "s3cret") || strings.Contains(why, "/cb") {
			t.Errorf("POST to %s: status %d, error %q; want no status and %q without the URL", tc.url, status, why, tc.want)
		}
	}
}

// A claim that waits for its slow host past half its lease is not sent: its
// lease runs out and it is claimed again, so no notification is ever sent by
// two claims at once, and each is delivered exactly once in the end.
func TestDelivery_SlowHostQueueNeverOutlivesTheLease(t *testing.T) {
	t.Parallel()
	var c concurrency
	slow := httptest.NewServer(c.handler(150 * time.Millisecond))
	defer slow.Close()
	st := newMemStore()
	st.callbacks[1] = slow.URL
	for i := 1; i <= 8; i++ {
		st.add(NotificationID(i), 1)
	}
	d := NewDelivery(st, testCatalog(t), DeliveryOptions{PerHost: 1, Lease: 400 * time.Millisecond, Timeout: 300 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, Policy: CallbackPolicy{AllowPrivate: true}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	waitFor := time.Now().Add(15 * time.Second)
	for time.Now().Before(waitFor) {
		if n, _ := st.deliveredCount(); n == 8 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	n, dup := st.deliveredCount()
	if n != 8 || dup {
		t.Fatalf("delivered %d of 8, duplicates %v", n, dup)
	}
	if m := c.max.Load(); m > 1 {
		t.Errorf("the host answered %d at once, want PerHost = 1", m)
	}
}
