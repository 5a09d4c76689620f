package quota

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
)

var testKey = ClientKey("client-1")

// replica starts a Scheduler on ledger with rate calls a second; stop ends
// its Run as a SIGKILL would (no hand-back) when kill is true.
func replica(t *testing.T, ledger Ledger, rate int, maxWait time.Duration) (*Scheduler, func(kill bool)) {
	t.Helper()
	s := New(Options{Client: Limits{PerSecond: rate, PerMinute: rate * 60, PerDay: 1 << 30}, MaxWait: maxWait,
		Lease: 1500 * time.Millisecond, SyncEvery: 100 * time.Millisecond, Ledger: ledger})
	ctx, cancel := context.WithCancel(context.Background())
	var killed atomic.Bool
	runDone := make(chan struct{})
	go func() { defer close(runDone); killedRun(s, ctx, &killed) }()
	var once sync.Once
	stop := func(kill bool) {
		once.Do(func() { killed.Store(kill); cancel() })
		<-runDone
	}
	t.Cleanup(func() { stop(false) })
	return s, stop
}

// killedRun runs s until ctx ends; when killed it returns without release.
func killedRun(s *Scheduler, ctx context.Context, killed *atomic.Bool) {
	t := time.NewTicker(s.opt.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if !killed.Load() {
				s.release()
			}
			return
		case <-t.C:
		case <-s.kick:
		}
		s.syncAll(ctx)
	}
}

// hammer calls from n goroutines for instance inst until ctx ends and
// records the second of every turn.
func hammer(ctx context.Context, s *Scheduler, inst int64, n int, class Class, rec *recorder) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				tk, err := s.Wait(ctx, Call{Key: testKey, Instance: inst, Class: class})
				if err != nil {
					if ctx.Err() == nil {
						rec.fail(inst)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				tk.Observe(200, nil)
				rec.add(inst)
			}
		}()
	}
	wg.Wait()
}

type recorder struct {
	mu     sync.Mutex
	perSec map[int64]int
	byInst map[int64]int
	fails  map[int64]int
}

func newRecorder() *recorder {
	return &recorder{perSec: map[int64]int{}, byInst: map[int64]int{}, fails: map[int64]int{}}
}

func (r *recorder) add(inst int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.perSec[time.Now().Unix()]++
	r.byInst[inst]++
}

func (r *recorder) fail(inst int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails[inst]++
}

// Three replicas sharing one quota never send more in a second than the
// quota allows, and together they spend nearly all of it.
func TestReplicas_NeverExceedTheQuotaAndSpendIt(t *testing.T) {
	t.Parallel()
	ledger := NewMemLedger()
	const rate = 20
	var reps []*Scheduler
	for range 3 {
		s, _ := replica(t, ledger, rate, 5*time.Second)
		reps = append(reps, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	rec := newRecorder()
	var wg sync.WaitGroup
	for i, s := range reps {
		wg.Add(1)
		go func() { defer wg.Done(); hammer(ctx, s, int64(i+1), 4+4*i, Interactive, rec) }()
	}
	wg.Wait()
	first, last := int64(1<<62), int64(0)
	for sec, n := range rec.perSec {
		if n > rate {
			t.Errorf("second %d carried %d calls, over the quota of %d", sec, n, rate)
		}
		first, last = min(first, sec), max(last, sec)
	}
	// The full seconds in between: at least 80% of the quota spent.
	full := 0
	for sec := first + 1; sec < last; sec++ {
		full += rec.perSec[sec]
	}
	if secs := last - first - 1; secs > 0 && float64(full) < 0.8*rate*float64(secs) {
		t.Errorf("spent %d calls in %d full seconds; want at least 80%% of %d a second (%v)", full, secs, rate, rec.perSec)
	}
}

// A busy instance does not crowd out the others: equal demand, equal shares.
func TestScheduler_BusyInstanceGetsNoMoreThanItsShare(t *testing.T) {
	t.Parallel()
	s, _ := replica(t, NewMemLedger(), 30, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rec := newRecorder()
	var wg sync.WaitGroup
	for inst, conns := range map[int64]int{1: 16, 2: 2, 3: 2, 4: 2} {
		wg.Add(1)
		go func() { defer wg.Done(); hammer(ctx, s, inst, conns, Interactive, rec) }()
	}
	wg.Wait()
	busy, other := rec.byInst[1], (rec.byInst[2]+rec.byInst[3]+rec.byInst[4])/3
	if other == 0 || float64(busy) > 1.3*float64(other) {
		t.Fatalf("busy instance had %d turns, the others %v: want at most 1.3x theirs", busy, rec.byInst)
	}
}

// Interactive calls go first, but background work still gets its turns.
func TestScheduler_InteractiveFirstBackgroundNotStarved(t *testing.T) {
	t.Parallel()
	s, _ := replica(t, NewMemLedger(), 20, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rec := newRecorder()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); hammer(ctx, s, 1, 8, Interactive, rec) }()
	go func() { defer wg.Done(); hammer(ctx, s, 2, 8, Background, rec) }()
	wg.Wait()
	inter, bg := rec.byInst[1], rec.byInst[2]
	if bg == 0 || inter < 2*bg {
		t.Fatalf("interactive %d, background %d turns: want background served, interactive first (about 4:1)", inter, bg)
	}
}

// A call whose turn does not come within MaxWait gets a 429 naming the quota,
// with a Retry-After; one whose caller gives up consumes nothing.
func TestScheduler_MaxWaitAnswers429AndGivingUpCostsNothing(t *testing.T) {
	t.Parallel()
	s, _ := replica(t, NewMemLedger(), 1, 300*time.Millisecond)
	ctx := context.Background()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Wait(ctx, Call{Key: testKey, Instance: 1})
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	spent := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		e, ok := apperr.As(err)
		if !ok || e.Code != apperr.ProviderThrottled || e.RetryAfter <= 0 || !errors.Is(err, ErrQuotaSpent) {
			t.Fatalf("want a 429 with Retry-After, got %#v", err)
		}
		if want := "OAuth client client-1"; !strings.Contains(e.Message, want) {
			t.Fatalf("message %q does not name %q", e.Message, want)
		}
		spent++
	}
	if spent < 4 {
		t.Fatalf("%d of 6 calls at 1/s within 300ms were refused; want at least 4", spent)
	}

	// Callers who give up leave the queue and are not counted as sent.
	s.mu.Lock()
	before := s.quotas[testKey].sentTotal
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = s.Wait(cctx, Call{Key: testKey, Instance: 2}) }()
	}
	wg.Wait()
	s.mu.Lock()
	q := s.quotas[testKey]
	after, waiting := q.sentTotal, q.waiting
	s.mu.Unlock()
	if waiting != 0 || after-before > 1 {
		t.Fatalf("after 5 callers gave up: %d still waiting, %d counted as sent", waiting, after-before)
	}
}

// A killed replica's slice goes to the others once its lease expires.
func TestReplicas_KilledReplicasShareIsReclaimed(t *testing.T) {
	t.Parallel()
	ledger := NewMemLedger()
	a, _ := replica(t, ledger, 20, 5*time.Second)
	b, stopB := replica(t, ledger, 20, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recA := newRecorder()
	go hammer(ctx, a, 1, 6, Interactive, recA)
	bctx, bcancel := context.WithCancel(ctx)
	go hammer(bctx, b, 2, 6, Interactive, newRecorder())
	time.Sleep(1500 * time.Millisecond)
	bcancel()
	stopB(true) // no hand-back: its lease must expire
	killedAt := time.Now().Unix()
	time.Sleep(4 * time.Second)
	// Within lease (1.5s) and a second, replica A has the whole quota.
	got := recA.count(killedAt+3, killedAt+3)
	if got < 16 {
		t.Fatalf("3s after the other replica died, A sent %d calls a second; want most of 20 (%v)", got, recA.perSec)
	}
}

func (r *recorder) count(from, to int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for s := from; s <= to; s++ {
		n += r.perSec[s]
	}
	return n
}

// With the database unreachable, calls fail with 503 within the wait bound,
// and none is sent once the lease has lapsed.
func TestReplicas_DatabaseDownFails503AndSendsNothing(t *testing.T) {
	t.Parallel()
	ledger := NewMemLedger()
	s, _ := replica(t, ledger, 10, 2*time.Second)
	if _, err := s.Wait(context.Background(), Call{Key: testKey, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	ledger.SetDown(errors.New("connection refused"))
	time.Sleep(1600 * time.Millisecond) // the lease (1.5s) lapses
	start := time.Now()
	_, err := s.Wait(context.Background(), Call{Key: testKey, Instance: 1})
	if apperr.CodeOf(err) != apperr.Unavailable || time.Since(start) > 2*time.Second {
		t.Fatalf("with the database down: %v after %v; want 503 within the wait bound", err, time.Since(start))
	}
	ledger.SetDown(nil)
	time.Sleep(300 * time.Millisecond)
	if _, err := s.Wait(context.Background(), Call{Key: testKey, Instance: 1}); err != nil {
		t.Fatalf("database back: %v", err)
	}
}

// A quiet instance's calls are not kept waiting behind a round of busy ones.
func TestScheduler_QuietInstanceGoesAhead(t *testing.T) {
	t.Parallel()
	s, _ := replica(t, NewMemLedger(), 20, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	rec := newRecorder()
	for inst := int64(1); inst <= 10; inst++ {
		go hammer(ctx, s, inst, 3, Interactive, rec)
	}
	time.Sleep(time.Second) // the busy ones are under way
	var waits []time.Duration
	for ctx.Err() == nil {
		start := time.Now()
		if _, err := s.Wait(ctx, Call{Key: testKey, Instance: 99}); err == nil {
			waits = append(waits, time.Since(start))
		}
		time.Sleep(250 * time.Millisecond)
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	// Ten busy instances at 20/s: a round is half a second; the quiet one's
	// turn comes within a couple of slots (50 ms each).
	if len(waits) < 5 || waits[len(waits)/2] > 200*time.Millisecond {
		t.Fatalf("the quiet instance's waits: %v; want a median under 200ms", waits)
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in          string
		client, key Limits
		err         string
	}{
		{in: "", client: KeapClientLimits, key: KeapKeyLimits},
		{in: "client:second=10,minute=600", client: Limits{10, 600, 150_000}, key: KeapKeyLimits},
		{in: " key:day=5 ; client:second=3 ", client: Limits{3, 1500, 150_000}, key: Limits{10, 240, 5}},
		{in: "clients:second=3", err: "does not start with client: or key:"},
		{in: "client:second=0", err: "whole number of at least 1"},
		{in: "client:hour=3", err: `"hour" is not second, minute or day`},
		{in: "key:second", err: "second=N"},
	}
	for _, tt := range tests {
		c, k, err := ParseLimits(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one saying %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || c != tt.client || k != tt.key):
			t.Errorf("%q: %+v %+v %v, want %+v %+v", tt.in, c, k, err, tt.client, tt.key)
		}
	}
	if r := KeapKeyLimits.rate(); r != 4 {
		t.Errorf("a key's rate is %d a second; 240 a minute allows 4", r)
	}
}

// A 429 from Keap pauses the whole quota: the other replicas stop too, for
// its Retry-After.
func TestReplicas_Keap429PausesEveryReplica(t *testing.T) {
	t.Parallel()
	ledger := NewMemLedger()
	a, _ := replica(t, ledger, 10, 5*time.Second)
	b, _ := replica(t, ledger, 10, 5*time.Second)
	ctx := context.Background()
	for _, s := range []*Scheduler{a, b} {
		if _, err := s.Wait(ctx, Call{Key: testKey, Instance: 1}); err != nil {
			t.Fatal(err)
		}
	}
	tk, err := a.Wait(ctx, Call{Key: testKey, Instance: 1})
	if err != nil {
		t.Fatal(err)
	}
	tk.Observe(http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}})
	time.Sleep(300 * time.Millisecond) // b syncs and learns of the pause
	start := time.Now()
	if _, err := b.Wait(ctx, Call{Key: testKey, Instance: 2}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 1200*time.Millisecond {
		t.Fatalf("the other replica's call went after %v; Keap asked every caller to wait 2s", took)
	}
}

func TestAllocate_SharesByWeightWithinCapsAndNoMore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		leases []Lease
		want   []int
	}{
		{"alone takes all but a fifth kept free", []Lease{{Replica: "a", Cap: 3, Instances: []int64{1}}}, []int{8}},
		{"alone and wanting it all", []Lease{{Replica: "a", Cap: 30, Instances: []int64{1}}}, []int{10}},
		{"equal demand, equal halves", []Lease{{Replica: "a", Cap: 30, Instances: []int64{1}}, {Replica: "b", Cap: 7, Instances: []int64{2}}}, []int{5, 5}},
		{"a capped replica's rest goes to the other", []Lease{{Replica: "a", Cap: 2, Instances: []int64{1}}, {Replica: "b", Cap: 30, Instances: []int64{2}}}, []int{2, 8}},
		{"both capped: the rest shared but a fifth", []Lease{{Replica: "a", Cap: 2, Instances: []int64{1}}, {Replica: "b", Cap: 2, Instances: []int64{2}}}, []int{4, 4}},
		{"an instance on both replicas counts half on each", []Lease{{Replica: "a", Cap: 30, Instances: []int64{1}}, {Replica: "b", Cap: 30, Instances: []int64{1, 2}}}, []int{3, 7}},
		{"no demand, nothing", []Lease{{Replica: "a"}, {Replica: "b", Cap: 30, Instances: []int64{2}}}, []int{0, 10}},
		{"nobody", []Lease{{Replica: "a"}}, []int{0}},
	}
	for _, tt := range tests {
		got := allocate(tt.leases, 10)
		sum := 0
		for _, g := range got {
			sum += g
		}
		if sum > 10 || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// When Run ends (shutdown) the calls waiting for a turn, and any asked for
// later, are answered a 503 at once rather than after MaxWait: a worker
// finishing its work on the way out must not hold shutdown up.
func TestScheduler_StoppedAnswersWaitingAndLaterCallsAtOnce(t *testing.T) {
	t.Parallel()
	s := New(Options{Client: Limits{PerSecond: 1, PerMinute: 60, PerDay: 1 << 30}, MaxWait: time.Minute,
		Lease: 1500 * time.Millisecond, SyncEvery: 100 * time.Millisecond, Ledger: NewMemLedger()})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	if _, err := s.Wait(context.Background(), Call{Key: testKey, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 20)
	for range 20 { // 20 calls at 1 a second: most are still waiting when Run ends
		go func() {
			_, err := s.Wait(context.Background(), Call{Key: testKey, Instance: 1, Class: Background})
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-runDone
	deadline := time.After(5 * time.Second)
	stopped := 0
	for range 20 {
		select {
		case err := <-errs:
			if err == nil {
				continue // its turn came before Run ended
			}
			if apperr.CodeOf(err) != apperr.Unavailable || !errors.Is(err, ErrStopped) {
				t.Fatalf("a call waiting when Run ended: %v; want a 503 saying connectord is shutting down", err)
			}
			stopped++
		case <-deadline:
			t.Fatalf("calls still waiting 5s after Run ended (MaxWait is a minute)")
		}
	}
	if stopped < 15 {
		t.Fatalf("%d of 20 calls at 1/s were answered as stopped; want at least 15", stopped)
	}
	start := time.Now()
	_, err := s.Wait(context.Background(), Call{Key: testKey, Instance: 2})
	if !errors.Is(err, ErrStopped) || time.Since(start) > time.Second {
		t.Fatalf("a call after Run ended: %v after %v; want ErrStopped at once", err, time.Since(start))
	}
}
