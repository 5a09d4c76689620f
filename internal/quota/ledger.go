package quota

import (
	"context"
	"math"
	"sort"
	"time"
)

// Ledger keeps the quotas' shared rows (the store). Sync is one transaction:
// it locks the quota's row, adds the report's calls to its counters, reads
// the live leases, asks decide for this replica's new lease and writes it.
type Ledger interface {
	SyncQuota(ctx context.Context, r Report, decide func(Shared) Decision) (Shared, Decision, error)
	// QuotaFigures reads the shared figures of key for an instance and its organization.
	QuotaFigures(ctx context.Context, key string, instanceID, orgID int64) (Shared, InstanceUsage, error)
}

// Report is what a replica tells the others at a sync.
type Report struct {
	Key         string
	Replica     string
	Lease       time.Duration
	Sent        int           // calls sent since the last report
	SentBy      map[int64]int // the same, per instance
	KeapDayUsed int           // the most calls today Keap said were used; 0 when it said nothing
	PauseUntil  time.Time     // Keap asked to wait until then; zero when it did not
	DayLimit    int
	Instances   []int64 // instances with calls waiting or sent lately
	Waiting     []int32 // their calls waiting, in the same order
	Cap         float64 // the most calls a second this replica could use now
}

// Lease is one replica's slice of a quota, as stored.
type Lease struct {
	Replica     string
	Grant       int     // calls per second
	Cap         float64 // the most it could use
	DayReserved int     // calls of today's budget it may still send
	Instances   []int64
	Waiting     []int32
}

// Shared is a quota's shared state, read under its lock.
type Shared struct {
	Now         time.Time // the database's clock
	MinuteUsed  int
	DayUsed     int
	PausedUntil time.Time
	Own         Lease   // this replica's lease as stored; zero when it held none
	Others      []Lease // the other live replicas' leases
	Exhausted   bool    // the day's exhaustion was already reported
	// FreedAt is the last time a slice was cut or a lease expired: capacity
	// free since before the current second was nobody's in it.
	FreedAt time.Time
}

// Decision is this replica's new lease.
type Decision struct {
	Grant int
	// Now: the raise may take effect at once, its capacity having been
	// nobody's during the current second; otherwise from the next second.
	Now         bool
	DayReserved int
	// ReportExhausted asks the store to send the day's exhaustion notification
	// to the instances that drew on the quota today, and to remember it was sent.
	ReportExhausted bool
}

// InstanceUsage is one instance's and its organization's share of a quota.
type InstanceUsage struct {
	InstanceMinute, InstanceDay int
	OrgMinute, OrgDay           int
	OrgInstances                []int64 // the organization's instances that used it today
}

// decide splits rate among the live replicas and returns this replica's new
// lease: every replica's fair share, weighted by the instances it serves,
// never more than it can use; a raise only out of what the others leave free.
func decide(s Shared, r Report, rate int, horizon time.Duration) Decision {
	all := append([]Lease{{Replica: r.Replica, Cap: r.Cap, Instances: r.Instances, Waiting: r.Waiting}}, s.Others...)
	targets := allocate(all, rate)
	target := targets[0]

	grant := target
	if target > s.Own.Grant {
		free := rate - s.Own.Grant
		for _, o := range s.Others {
			free -= o.Grant
		}
		grant = s.Own.Grant + max(min(target-s.Own.Grant, free), 0)
	}
	// A pause (s.PausedUntil) keeps the grant: each replica holds its calls
	// until the pause ends, and its slice is there when it does.

	// Today's budget: what is left after what was sent and what the others
	// may still send, at most what this grant can spend before the next sync.
	left := r.DayLimit - s.DayUsed
	for _, o := range s.Others {
		left -= o.DayReserved
	}
	reserve := min(max(left, 0), int(math.Ceil(float64(grant)*horizon.Seconds())))
	return Decision{
		Grant:           grant,
		Now:             grant > s.Own.Grant && s.FreedAt.Before(s.Now.Truncate(time.Second)),
		DayReserved:     reserve,
		ReportExhausted: !s.Exhausted && s.DayUsed >= r.DayLimit,
	}
}

// allocate gives each lease a whole number of calls a second, adding up to
// at most rate: max-min fair by weight, where a replica's weight is its
// instances, each counted once over all the replicas it is active on, and
// nobody gets more than its cap. Every replica with demand gets at least one
// while there are enough to go round.
func allocate(leases []Lease, rate int) []int {
	spread := map[int64]int{}
	for _, l := range leases {
		for _, id := range l.Instances {
			spread[id]++
		}
	}
	weight := make([]float64, len(leases))
	for i, l := range leases {
		for _, id := range l.Instances {
			weight[i] += 1 / float64(spread[id])
		}
		if l.Cap <= 0 {
			weight[i] = 0
		}
	}
	share := make([]float64, len(leases))
	// Water filling: hand out what is left by weight among the replicas not
	// yet at their cap, until it is all given or every replica is capped.
	left := float64(rate)
	open := make([]bool, len(leases))
	for i := range leases {
		open[i] = weight[i] > 0
	}
	for range leases {
		var w float64
		for i := range leases {
			if open[i] {
				w += weight[i]
			}
		}
		if w == 0 || left <= 1e-9 {
			break
		}
		capped := false
		for i, l := range leases {
			if open[i] && share[i]+left*weight[i]/w >= l.Cap {
				left -= l.Cap - share[i]
				share[i], open[i], capped = l.Cap, false, true
			}
		}
		if !capped {
			for i := range leases {
				if open[i] {
					share[i] += left * weight[i] / w
				}
			}
			left = 0
			break
		}
	}
	// What nobody's demand takes is not left idle: it goes by weight to the
	// replicas with demand (it is handed back at their next sync when another
	// needs it), but for a fifth of the rate, kept free so that a replica
	// whose demand starts takes it at once rather than after that hand-back.
	if left -= float64(rate) / 5; left > 1e-9 {
		var w float64
		for i := range leases {
			w += weight[i]
		}
		for i := range leases {
			if w > 0 {
				share[i] += left * weight[i] / w
			}
		}
	}
	// Whole calls: floors, then the remainders by largest fraction, at least
	// one each for replicas with demand while calls remain.
	out := make([]int, len(leases))
	given := 0
	for i := range leases {
		out[i] = int(share[i])
		given += out[i]
	}
	order := make([]int, len(leases))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		fa, fb := share[order[a]]-float64(out[order[a]]), share[order[b]]-float64(out[order[b]])
		if (out[order[a]] == 0) != (out[order[b]] == 0) && weight[order[a]] > 0 && weight[order[b]] > 0 {
			return out[order[a]] == 0
		}
		if fa != fb {
			return fa > fb
		}
		return leases[order[a]].Replica < leases[order[b]].Replica
	})
	for _, i := range order {
		if given >= rate {
			break
		}
		if weight[i] > 0 && (share[i] > float64(out[i]) || out[i] == 0) {
			out[i]++
			given++
		}
	}
	return out
}
