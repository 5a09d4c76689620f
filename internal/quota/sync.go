package quota

import (
	"context"
	"sort"
	"time"
)

// Run keeps this replica's leases: every SyncEvery (and at once when a new
// quota is used or Keap refused a call), each active quota reports what was
// sent and renews its slice. When ctx ends it hands its slices back, and calls still
// waiting for a turn, or asking for one later, are answered a 503 at once.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.opt.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.release()
			s.stop()
			s.mu.Lock()
			s.opt.Log.Info().Int64("syncs", s.syncs).Int64("failed", s.failed).Int64("round_trips", 2*s.syncs).
				Int64("rows_written", s.rows).Msg("quota syncs")
			s.mu.Unlock()
			return
		case <-t.C:
		case <-s.kick:
		}
		s.syncAll(ctx)
	}
}

func (s *Scheduler) syncAll(ctx context.Context) {
	now := time.Now()
	s.mu.Lock()
	var due []*quota
	for k, q := range s.quotas {
		switch {
		case q.waiting > 0 || now.Sub(q.lastActive) < idleAfter || q.sent > 0 || q.grant > 0 || q.pauseReport.After(now):
			due = append(due, q)
		case now.Sub(q.lastActive) > 10*idleAfter:
			delete(s.quotas, k) // long idle: its lease was handed back and has expired
		}
	}
	s.mu.Unlock()
	for _, q := range due {
		s.sync(ctx, q)
	}
}

// release hands every slice back so the other replicas need not wait for the
// leases to expire.
func (s *Scheduler) release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.mu.Lock()
	var held []*quota
	for _, q := range s.quotas {
		q.lastActive = time.Time{}
		q.lastSeen = map[int64]time.Time{}
		held = append(held, q)
	}
	s.mu.Unlock()
	for _, q := range held {
		s.sync(ctx, q)
	}
}

// stop answers every waiting call, and every later one, at once: with the
// slices handed back no turn will come.
func (s *Scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, q := range s.quotas {
		q.failAll(errStopped(q.key))
		q.signal() // its dispatcher finds nobody waiting and ends
	}
}

// sync reports q's calls since the last sync and takes its new slice.
func (s *Scheduler) sync(ctx context.Context, q *quota) {
	now := time.Now()
	s.mu.Lock()
	r := Report{Key: q.key.String(), Replica: s.opt.Replica, Lease: s.opt.Lease, Sent: q.sent, SentBy: q.sentBy,
		KeapDayUsed: q.keapDayUsed, PauseUntil: q.pauseReport, DayLimit: q.limits.PerDay}
	q.sent, q.sentBy, q.keapDayUsed, q.pauseReport = 0, map[int64]int{}, 0, time.Time{}
	if el := now.Sub(q.lastSync).Seconds(); !q.lastSync.IsZero() && el > 0 {
		q.arrivalRate = 0.7*q.arrivalRate + 0.3*float64(q.arrivals)/el
		for id := range q.lastSeen {
			q.instRate[id] = 0.85*q.instRate[id] + 0.15*float64(r.SentBy[id])/el
		}
		for id := range q.instRate {
			if _, ok := q.lastSeen[id]; !ok {
				delete(q.instRate, id)
			}
		}
	}
	q.arrivals, q.lastSync = 0, now
	for id, seen := range q.lastSeen {
		if q.waitingBy[id] == 0 && now.Sub(seen) > 2*time.Second {
			delete(q.lastSeen, id)
			continue
		}
		r.Instances = append(r.Instances, id)
	}
	for k, f := range q.flows {
		// A flow long idle and owing nothing is forgotten: coming back, it
		// starts level with the others as a new one would.
		if len(f.queue) == 0 && f.pass <= q.vtime[k.class] && now.Sub(f.drainedAt) > 10*time.Second {
			delete(q.flows, k)
		}
	}
	sort.Slice(r.Instances, func(i, j int) bool { return r.Instances[i] < r.Instances[j] })
	for _, id := range r.Instances {
		r.Waiting = append(r.Waiting, int32(q.waitingBy[id]))
	}
	if len(r.Instances) > 0 {
		// What it could use: what arrives, with room to grow; with calls
		// waiting, at least what it has, a quarter more, and what waits.
		r.Cap = q.arrivalRate*1.25 + 1
		if q.waiting > 0 {
			g := q.grant
			if q.nextFrom != 0 {
				g = q.nextGrant
			}
			r.Cap = max(q.arrivalRate, float64(g))*1.25 + float64(q.waiting) + 1
		}
	}
	mark := q.sentTotal
	rate := q.rate
	s.mu.Unlock()

	horizon := s.opt.Lease
	sctx, cancel := context.WithTimeout(ctx, min(s.opt.Lease/2, time.Second))
	shared, d, err := s.opt.Ledger.SyncQuota(sctx, r, func(sh Shared) Decision { return decide(sh, r, rate, horizon) })
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	defer q.signal()
	s.syncs++
	if err != nil {
		s.failed++
		// Keep what was not reported for the next try.
		q.sent += r.Sent
		for id, n := range r.SentBy {
			q.sentBy[id] += n
		}
		q.keapDayUsed = max(q.keapDayUsed, r.KeapDayUsed)
		if r.PauseUntil.After(q.pauseReport) {
			q.pauseReport = r.PauseUntil
		}
		if q.syncErr == nil {
			s.opt.Log.Warn().Err(err).Str("quota", q.key.String()).Msg("cannot sync Keap's quota with the other replicas; this replica stops sending on it when its lease ends")
		}
		q.syncErr = err
		return
	}
	if q.syncErr != nil {
		s.opt.Log.Info().Str("quota", q.key.String()).Msg("quota synced with the other replicas again")
	}
	s.rows += 2 + int64(len(r.SentBy)) // the quota's row, the lease, each instance's usage
	q.syncErr, q.synced = nil, true
	q.leaseUntil = now.Add(s.opt.Lease)
	next := time.Now().Unix() + 1
	switch {
	case d.Grant <= q.grant || d.Now:
		q.grant, q.nextFrom = d.Grant, 0 // a cut, or a raise out of capacity nobody had this second
	case q.nextFrom == 0 || q.nextFrom == next:
		// A raise takes effect in the next second: the slice it takes may
		// have been another replica's in this one.
		q.nextGrant, q.nextFrom = d.Grant, next
	case d.Grant < q.nextGrant:
		q.nextGrant = d.Grant // less of a pending raise, in its second
	default:
		// A raise from an earlier second is pending: it keeps its second,
		// and this one's extra waits for the next sync.
	}
	q.dayLeft = d.DayReserved - (q.sentTotal - mark)
	if shared.PausedUntil.After(q.pausedTill) {
		q.pausedTill = shared.PausedUntil
	}
	q.shared = shared
	if err := s.refusalLocked(q, time.Now()); err != nil && q.waiting > 0 {
		q.failAll(err) // today's quota is spent: waiting cannot help the calls in line
	}
	spread := map[int64]int{}
	for _, id := range r.Instances {
		spread[id] = 1
	}
	for _, o := range shared.Others {
		for _, id := range o.Instances {
			if _, ok := spread[id]; ok {
				spread[id]++
			}
		}
	}
	clear(q.weight)
	for id, n := range spread {
		q.weight[id] = 1 / float64(n)
	}
	if d.ReportExhausted {
		s.opt.Log.Warn().Str("quota", q.key.String()).Int("per_day", q.limits.PerDay).Msg("Keap's daily quota is spent; the instances that used it today are notified")
	}
}

// Snapshot returns this replica's view of every quota it draws on, as of its
// last sync: the figures Prometheus gauges would show. Per-instance and
// per-organization figures are left zero (see Figures).
func (s *Scheduler) Snapshot() []Figures {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Figures, 0, len(s.quotas))
	for _, q := range s.quotas {
		out = append(out, q.figuresLocked())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

func (q *quota) figuresLocked() Figures {
	f := Figures{Key: q.key, Limits: q.limits, Rate: q.rate, MinuteUsed: q.shared.MinuteUsed, DayUsed: q.shared.DayUsed,
		Waiting: q.waiting, PausedUntil: q.pausedTill, DayResetsAt: nextMidnight(time.Now()), Grant: q.grant, Replicas: 1}
	for _, o := range q.shared.Others {
		f.Replicas++
		for _, n := range o.Waiting {
			f.Waiting += int(n)
		}
	}
	if q.nextFrom != 0 {
		f.Grant = q.nextGrant
	}
	return f
}

// Figures reads key's figures as every replica together spent it, with the
// share of instanceID and of its organization orgID.
func (s *Scheduler) Figures(ctx context.Context, key Key, instanceID, orgID int64) (Figures, error) {
	sh, use, err := s.opt.Ledger.QuotaFigures(ctx, key.String(), instanceID, orgID)
	if err != nil {
		return Figures{}, err
	}
	s.mu.Lock()
	l := s.opt.Client
	if key.Kind == APIKey {
		l = s.opt.Key
	}
	f := Figures{Key: key, Limits: l, Rate: l.rate(), MinuteUsed: sh.MinuteUsed, DayUsed: sh.DayUsed, PausedUntil: sh.PausedUntil,
		DayResetsAt: nextMidnight(time.Now()), InstanceMinute: use.InstanceMinute, InstanceDay: use.InstanceDay,
		OrgMinute: use.OrgMinute, OrgDay: use.OrgDay}
	if q := s.quotas[key]; q != nil {
		f.Grant = q.grant
	}
	s.mu.Unlock()
	if !f.PausedUntil.After(time.Now()) {
		f.PausedUntil = time.Time{}
	}
	org := map[int64]bool{}
	for _, id := range use.OrgInstances {
		org[id] = true
	}
	for _, l := range sh.Others {
		f.Replicas++
		for i, id := range l.Instances {
			n := int(l.Waiting[i])
			f.Waiting += n
			if id == instanceID {
				f.InstanceWaiting += n
			}
			if org[id] {
				f.OrgWaiting += n
			}
		}
	}
	return f, nil
}
