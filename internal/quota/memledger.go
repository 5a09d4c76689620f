package quota

import (
	"context"
	"sync"
	"time"
)

// MemLedger keeps the shared rows in memory: for a single process, and for
// tests that run several Schedulers as replicas of one process.
type MemLedger struct {
	mu     sync.Mutex
	now    func() time.Time
	quotas map[string]*memQuota
	// Down, when set, makes every call fail with it: the database unreachable.
	down error
}

type memQuota struct {
	minute      time.Time
	minuteUsed  int
	day         time.Time
	dayUsed     int
	pausedUntil time.Time
	exhausted   time.Time // the day it was reported
	leases      map[string]memLease
	usage       map[int64][2]int // per instance: minute, day
	usageMinute time.Time
	usageDay    time.Time
	notified    []int64
	freedAt     time.Time
}

type memLease struct {
	Lease
	expires time.Time
}

// NewMemLedger returns an empty in-memory ledger.
func NewMemLedger() *MemLedger { return &MemLedger{now: time.Now, quotas: map[string]*memQuota{}} }

// SetDown makes the ledger fail every call with err (nil: up again).
func (m *MemLedger) SetDown(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = err
}

// Notified returns the instances told of the day's exhaustion of key.
func (m *MemLedger) Notified(key string) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if q := m.quotas[key]; q != nil {
		return append([]int64(nil), q.notified...)
	}
	return nil
}

func (m *MemLedger) quota(key string, now time.Time) *memQuota {
	q := m.quotas[key]
	if q == nil {
		q = &memQuota{leases: map[string]memLease{}, usage: map[int64][2]int{}}
		m.quotas[key] = q
	}
	minute, day := now.UTC().Truncate(time.Minute), now.UTC().Truncate(24*time.Hour)
	if !q.minute.Equal(minute) {
		q.minute, q.minuteUsed = minute, 0
		for id, u := range q.usage {
			q.usage[id] = [2]int{0, u[1]}
		}
	}
	if !q.day.Equal(day) {
		q.day, q.dayUsed = day, 0
		clear(q.usage)
	}
	return q
}

// SyncQuota implements Ledger.
func (m *MemLedger) SyncQuota(ctx context.Context, r Report, decide func(Shared) Decision) (Shared, Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return Shared{}, Decision{}, m.down
	}
	now := m.now()
	q := m.quota(r.Key, now)
	q.minuteUsed += r.Sent
	q.dayUsed = max(q.dayUsed+r.Sent, r.KeapDayUsed)
	if r.PauseUntil.After(q.pausedUntil) {
		q.pausedUntil = r.PauseUntil
	}
	for id, n := range r.SentBy {
		u := q.usage[id]
		q.usage[id] = [2]int{u[0] + n, u[1] + n}
	}
	sh := Shared{Now: now, MinuteUsed: q.minuteUsed, DayUsed: q.dayUsed, PausedUntil: q.pausedUntil, Exhausted: q.exhausted.Equal(q.day)}
	for name, l := range q.leases {
		switch {
		case !now.Before(l.expires):
			delete(q.leases, name)
			if l.expires.After(q.freedAt) {
				q.freedAt = l.expires
			}
		case name == r.Replica:
			sh.Own = l.Lease
		default:
			sh.Others = append(sh.Others, l.Lease)
		}
	}
	sh.FreedAt = q.freedAt
	d := decide(sh)
	if d.Grant < sh.Own.Grant {
		q.freedAt = now
	}
	q.leases[r.Replica] = memLease{Lease: Lease{Replica: r.Replica, Grant: d.Grant, Cap: r.Cap, DayReserved: d.DayReserved,
		Instances: r.Instances, Waiting: r.Waiting}, expires: now.Add(r.Lease)}
	if d.ReportExhausted {
		q.exhausted = q.day
		for id := range q.usage {
			q.notified = append(q.notified, id)
		}
	}
	return sh, d, nil
}

// QuotaFigures implements Ledger; Others holds every live lease.
func (m *MemLedger) QuotaFigures(ctx context.Context, key string, instanceID, orgID int64) (Shared, InstanceUsage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return Shared{}, InstanceUsage{}, m.down
	}
	now := m.now()
	q := m.quota(key, now)
	sh := Shared{Now: now, MinuteUsed: q.minuteUsed, DayUsed: q.dayUsed, PausedUntil: q.pausedUntil}
	for _, l := range q.leases {
		if now.Before(l.expires) {
			sh.Others = append(sh.Others, l.Lease)
		}
	}
	u := q.usage[instanceID]
	return sh, InstanceUsage{InstanceMinute: u[0], InstanceDay: u[1], OrgMinute: u[0], OrgDay: u[1], OrgInstances: []int64{instanceID}}, nil
}
