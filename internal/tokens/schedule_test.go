package tokens

import (
	"testing"
	"time"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
)

func scheduleService(t *testing.T, margin time.Duration) *Service {
	t.Helper()
	c, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(nil, c, Options{Margin: margin})
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	s := scheduleService(t, 15*time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	str := func(v string) *string { return &v }
	tests := []struct {
		name string
		inst instances.Instance
		want time.Time
	}{
		{"never refreshed: now", instances.Instance{}, t0.Add(time.Hour)},
		{"24h token: the 8h interval comes first", instances.Instance{RefreshedAt: at(0), TokenExpiresAt: at(24 * time.Hour)}, t0.Add(8 * time.Hour)},
		{"1h token: margin before expiry", instances.Instance{RefreshedAt: at(0), TokenExpiresAt: at(time.Hour)}, t0.Add(45 * time.Minute)},
		{"token shorter than the margin: half its life", instances.Instance{RefreshedAt: at(0), TokenExpiresAt: at(4 * time.Second)}, t0.Add(2 * time.Second)},
		{"configured interval", instances.Instance{RefreshedAt: at(0), TokenExpiresAt: at(24 * time.Hour), Config: map[string]*string{instances.KeyRefreshInterval: str("3600")}}, t0.Add(time.Hour)},
		{"huge interval capped so the refresh token never idles out", instances.Instance{RefreshedAt: at(0), Config: map[string]*string{instances.KeyRefreshInterval: str("99999999")}}, t0.Add(7 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.inst.ElementKey = "infusionsoftcrm"
			if got := s.nextDue(&tt.inst, t0.Add(time.Hour)); !got.Equal(tt.want) {
				t.Fatalf("nextDue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDue_RespectsRetryTime(t *testing.T) {
	t.Parallel()
	s := scheduleService(t, 15*time.Minute)
	now := time.Now()
	past, future := now.Add(-time.Hour), now.Add(time.Minute)
	expired := now.Add(-time.Second)
	inst := instances.Instance{ElementKey: "infusionsoftcrm", RefreshedAt: &past, TokenExpiresAt: &expired, RefreshDueAt: &future}
	if s.due(&inst, now) {
		t.Fatal("an instance waiting out a backoff was due")
	}
	inst.RefreshDueAt = &past
	if !s.due(&inst, now) {
		t.Fatal("an expired token past its retry time was not due")
	}
	fresh := now.Add(24 * time.Hour)
	inst.TokenExpiresAt, inst.RefreshedAt = &fresh, &now
	if s.due(&inst, now) {
		t.Fatal("a token refreshed just now was due (another replica refreshed it first)")
	}
}

func TestBackoff_GrowsWithJitterAndCaps(t *testing.T) {
	t.Parallel()
	s := New(nil, nil, Options{BackoffBase: time.Second, BackoffMax: 16 * time.Second})
	for n, mid := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 12: 16 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := s.backoff(n)
			if d < mid/2 || d >= mid*3/2 {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v)", n, d, mid/2, mid*3/2)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("backoff(%d) has no jitter: %v", n, seen)
		}
	}
}
