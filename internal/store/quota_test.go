package store

import (
	"context"
	"errors"
	"sync/atomic"

	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/quota"
)

// Three replicas sharing a quota through PostgreSQL never send more in one
// second than it allows; the counters and each instance's share add up.
func TestSyncQuota_ReplicasShareOneQuota(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	org := newOrganization(t, db)
	var insts []int64
	for range 3 {
		insts = append(insts, newInstance(t, db, org.ID, "rt").ID)
	}
	const rate = 15
	key := quota.ClientKey("shared-client")
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	perSec, total := map[int64]int{}, 0
	var wg sync.WaitGroup
	for i := range 3 {
		s := quota.New(quota.Options{Client: quota.Limits{PerSecond: rate, PerMinute: 60 * rate, PerDay: 100_000},
			SyncEvery: 100 * time.Millisecond, Lease: 2 * time.Second, Ledger: db})
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					tk, err := s.Wait(ctx, quota.Call{Key: key, Instance: insts[i]})
					if err != nil {
						continue
					}
					tk.Observe(200, nil)
					mu.Lock()
					perSec[time.Now().Unix()]++
					total++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for sec, n := range perSec {
		if n > rate {
			t.Errorf("second %d carried %d calls; the quota is %d", sec, n, rate)
		}
	}
	if total < 2*rate {
		t.Fatalf("only %d calls in 3.5s at %d/s", total, rate)
	}
	time.Sleep(300 * time.Millisecond) // the last syncs report what was sent
	sh, use, err := db.QuotaFigures(context.Background(), key.String(), insts[0], org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sh.DayUsed < total-rate || sh.DayUsed > total || use.OrgDay != sh.DayUsed || use.InstanceDay == 0 || use.InstanceDay >= use.OrgDay {
		t.Fatalf("figures: day used %d (sent %d), organization %d, instance %d", sh.DayUsed, total, use.OrgDay, use.InstanceDay)
	}
}

// Spending the day's quota notifies each instance that used it, with events
// on, once, in the transaction that finds it spent.
func TestSyncQuota_DayExhaustionNotifiedOnce(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	org := newOrganization(t, db)
	on, off := newInstance(t, db, org.ID, "a"), newInstance(t, db, org.ID, "b")
	if _, err := db.UpdateInstance(context.Background(), org.ID, on.ID, func(i *instances.Instance) error {
		yes := "true"
		i.Config[instances.KeyEventsEnabled] = &yes
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	key := quota.APIKeyKey("KeapAK-some-key")
	s := quota.New(quota.Options{Key: quota.Limits{PerSecond: 10, PerMinute: 600, PerDay: 6}, SyncEvery: 50 * time.Millisecond, Ledger: db})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sent := 0
	for i := range 12 {
		inst := on.ID
		if i%2 == 1 {
			inst = off.ID
		}
		if _, err := s.Wait(context.Background(), quota.Call{Key: key, Instance: inst}); err == nil {
			sent++
		}
	}
	if sent != 6 {
		t.Fatalf("%d calls got a turn on a quota of 6 a day", sent)
	}
	time.Sleep(300 * time.Millisecond)
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications WHERE instance_id = $1 AND raw->'quotaExhausted'->>'quota' = $2`, on.ID, key.String()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var other int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications WHERE instance_id = $1`, off.ID).Scan(&other); err != nil {
		t.Fatal(err)
	}
	if n != 1 || other != 0 {
		t.Fatalf("notifications: %d to the instance with events on (want 1), %d to the one without (want 0)", n, other)
	}
}

// BenchmarkSyncQuota is one replica's sync of one quota with three other
// live leases and four instances that called: its time is the quota's cost
// per sync (two pipelined round trips: begin with the locked read; the
// writes with the commit).
func BenchmarkSyncQuota(b *testing.B) {
	db := openTest(b)
	org := newOrganization(b, db)
	var ids []int64
	for range 4 {
		ids = append(ids, newInstance(b, db, org.ID, "rt").ID)
	}
	ctx := context.Background()
	decide := func(quota.Shared) quota.Decision { return quota.Decision{Grant: 6, DayReserved: 18} }
	for _, replica := range []string{"b", "c", "d"} {
		if _, _, err := db.SyncQuota(ctx, quota.Report{Key: "oauthClient:bench", Replica: replica, Lease: time.Hour, DayLimit: 150000, Instances: ids, Waiting: []int32{1, 1, 1, 1}, Cap: 10}, decide); err != nil {
			b.Fatal(err)
		}
	}
	r := quota.Report{Key: "oauthClient:bench", Replica: "a", Lease: 3 * time.Second, DayLimit: 150000, Instances: ids, Waiting: []int32{2, 1, 1, 1}, Cap: 10}
	b.ResetTimer()
	for range b.N {
		r.Sent, r.SentBy = 6, map[int64]int{ids[0]: 3, ids[1]: 1, ids[2]: 1, ids[3]: 1}
		if _, _, err := db.SyncQuota(ctx, r, decide); err != nil {
			b.Fatal(err)
		}
	}
}

// deadLedger is a replica's view of the database that dies when told: its
// syncs fail from then on, as a killed process's stop.
type deadLedger struct {
	quota.Ledger
	dead atomic.Bool
}

func (d *deadLedger) SyncQuota(ctx context.Context, r quota.Report, decide func(quota.Shared) quota.Decision) (quota.Shared, quota.Decision, error) {
	if d.dead.Load() {
		return quota.Shared{}, quota.Decision{}, errors.New("killed")
	}
	return d.Ledger.SyncQuota(ctx, r, decide)
}

// A replica that dies without handing its slice back loses it when its lease
// expires: the survivor has the whole quota within the lease and a second.
func TestSyncQuota_KilledReplicasSliceIsReclaimed(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	org := newOrganization(t, db)
	a, b := newInstance(t, db, org.ID, "a").ID, newInstance(t, db, org.ID, "b").ID
	key := quota.ClientKey("reclaim")
	const rate = 12
	lease := 1500 * time.Millisecond
	start := func(l quota.Ledger) *quota.Scheduler {
		s := quota.New(quota.Options{Client: quota.Limits{PerSecond: rate, PerMinute: 60 * rate, PerDay: 100_000},
			SyncEvery: 100 * time.Millisecond, Lease: lease, Ledger: l})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return s
	}
	survivor := start(db)
	victimDB := &deadLedger{Ledger: db}
	victim := start(victimDB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	perSec := map[int64]int{}
	hammer := func(ctx context.Context, s *quota.Scheduler, inst int64, record bool) {
		for range 6 {
			go func() {
				for ctx.Err() == nil {
					if _, err := s.Wait(ctx, quota.Call{Key: key, Instance: inst}); err == nil && record {
						mu.Lock()
						perSec[time.Now().Unix()]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	hammer(ctx, survivor, a, true)
	vctx, vcancel := context.WithCancel(ctx)
	hammer(vctx, victim, b, false)
	time.Sleep(2 * time.Second)
	mu.Lock()
	shared := perSec[time.Now().Unix()-1]
	mu.Unlock()
	victimDB.dead.Store(true) // killed: no more syncs, no hand-back
	vcancel()
	killed := time.Now().Unix()
	time.Sleep(lease + 2500*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if shared > rate*3/4 {
		t.Fatalf("before the kill the survivor sent %d a second of %d: the quota was not shared", shared, rate)
	}
	if got := perSec[killed+3]; got < rate-2 {
		t.Fatalf("3s after the other replica died the survivor sent %d calls a second; want about %d (%v)", got, rate, perSec)
	}
}
