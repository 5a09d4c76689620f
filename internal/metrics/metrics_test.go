package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/store"
)

// fakeDB stands for the store: its figures, or an error, or a wait past the
// scrape's time-out.
type fakeDB struct {
	figures store.Figures
	err     error
	block   bool
}

func (f fakeDB) Figures(ctx context.Context) (store.Figures, error) {
	if f.block {
		<-ctx.Done()
		return store.Figures{}, ctx.Err()
	}
	return f.figures, f.err
}

func (f fakeDB) PoolStats() store.PoolStats { return store.PoolStats{InUse: 2, Max: 20, Waiting: 1} }

func TestDBCollector_FiguresOrAnErrorNeverStaleOnes(t *testing.T) {
	t.Parallel()
	ok := New(Options{DB: fakeDB{figures: store.Figures{InvalidInstances: 3, PendingNotifications: 5, OldestPending: 90 * time.Second,
		PollOverdue: map[string]time.Duration{"contacts": 2 * time.Second}, PollSince: map[string]time.Duration{"contacts": 4 * time.Second}}}})
	want := `
# HELP connectord_notifications_oldest_pending_age_seconds Age of the oldest pending notification (delivery lag); 0 when none is pending.
# TYPE connectord_notifications_oldest_pending_age_seconds gauge
connectord_notifications_oldest_pending_age_seconds 90
# HELP connectord_poll_lag_seconds Per polled resource, how late its most overdue poll is (0 when all are on time).
# TYPE connectord_poll_lag_seconds gauge
connectord_poll_lag_seconds{resource="contacts"} 2
# HELP connectord_db_pool_waiting Callers asking the pool for a connection right now.
# TYPE connectord_db_pool_waiting gauge
connectord_db_pool_waiting 1
`
	if err := testutil.GatherAndCompare(ok.Registry(), strings.NewReader(want),
		"connectord_notifications_oldest_pending_age_seconds", "connectord_poll_lag_seconds", "connectord_db_pool_waiting"); err != nil {
		t.Fatal(err)
	}
	for _, db := range []fakeDB{{err: errors.New("down")}, {block: true}} {
		m := New(Options{DB: db, ScrapeTimeout: 50 * time.Millisecond, Log: zerolog.Nop()})
		start := time.Now()
		n, err := testutil.GatherAndCount(m.Registry(), "connectord_instances", "connectord_notifications_pending", "connectord_database_scrape_error", "connectord_db_pool_in_use_connections")
		if err != nil || n != 2 { // the error gauge and the pool's, not the figures
			t.Fatalf("with %+v: %d series, %v", db, n, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a scrape waited for the database past its time-out")
		}
		if v := gathered(t, m, "connectord_database_scrape_error"); v != 1 {
			t.Fatalf("connectord_database_scrape_error %v", v)
		}
	}
}

func TestObserveRequest_OrganizationLabelOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	off, on := New(Options{}), New(Options{OrgLabels: true})
	for _, m := range []*Metrics{off, on} {
		m.ObserveRequest("/instances/{id}", "GET", 200, 42, time.Millisecond)
		m.ObserveRequest("", "BREW", 404, 0, time.Millisecond)
	}
	if got := testutil.ToFloat64(off.httpRequests.WithLabelValues("/instances/{id}", "GET", "200")); got != 1 {
		t.Fatalf("without org labels: %v", got)
	}
	if got := testutil.ToFloat64(on.httpRequests.WithLabelValues("/instances/{id}", "GET", "200", "42")); got != 1 {
		t.Fatalf("with org labels: %v", got)
	}
	if got := testutil.ToFloat64(off.httpRequests.WithLabelValues("unmatched", "other", "404")); got != 1 {
		t.Fatalf("an unrouted request with an odd method: %v", got)
	}
}

// gathered is the value of the one-series gauge name.
func gathered(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
