package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/oauthflow"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/testdb"
)

// pgStats are a database's cumulative counters from pg_stat_database.
type pgStats struct{ xact, returned, fetched, inserted, updated, blocks int64 }

func readPGStats(b testing.TB, u *tokenUser) pgStats {
	b.Helper()
	var s pgStats
	err := u.db.Pool().QueryRow(context.Background(), `
		SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, blks_read + blks_hit
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.xact, &s.returned, &s.fetched, &s.inserted, &s.updated, &s.blocks)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// exchangeCodes returns n fresh token pairs from the fake.
func exchangeCodes(b testing.TB, k *keapServer, n int) []oauthflow.Token {
	b.Helper()
	p := &oauthflow.Provider{TokenURL: k.URL + "/token"}
	out := make([]oauthflow.Token, n)
	parallel(n, 8, func(i int) {
		code, err := k.IssueCode(testClientID, "https://www.yourcallbackurl.com")
		if err == nil {
			out[i], err = p.Exchange(context.Background(), testClientID, testClientSecret, "https://www.yourcallbackurl.com", code)
		}
		if err != nil {
			b.Error(err)
		}
	})
	return out
}

// BenchmarkRefreshStorm measures how long N OAuth instances that all fall due at
// once take to refresh with two replicas against the fake Keap, and what each
// refresh costs the database. Run it with
//
//	go test -run '^$' -bench RefreshStorm -benchtime 1x ./cmd/connectord
//
// (CONNECTORD_BENCH_INSTANCES sets N, default 10000). The baseline is the fake's
// token endpoint alone, driven by as many goroutines as the replicas' workers.
func BenchmarkRefreshStorm(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("CONNECTORD_BENCH_INSTANCES")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		k := newKeap(b, fakekeap.Options{})
		env := baseEnv(b, testdb.New(b), k)
		env["CONNECTORD_LOG_LEVEL"] = "info"
		env["CONNECTORD_REFRESH_POLL_INTERVAL"] = "100ms"
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"migrate"}, getenvFrom(env), &out, &errb); err != nil {
			b.Fatal(err)
		}
		user := newTokenUser(b, env, k)
		ctx := context.Background()
		org, err := tenants.NewService(user.db).CreateOrganization(ctx, "bench", "bench@bench.test")
		if err != nil {
			b.Fatal(err)
		}

		// Baseline: the fake's refresh grant alone, 8 concurrent callers.
		spare := exchangeCodes(b, k, n)
		p := &oauthflow.Provider{TokenURL: k.URL + "/token"}
		start := time.Now()
		parallel(n, 8, func(i int) {
			if _, err := p.Refresh(ctx, testClientID, testClientSecret, spare[i].RefreshToken); err != nil {
				b.Error(err)
			}
		})
		baseline := time.Since(start)

		// N instances, scheduled far ahead so the replicas start idle.
		toks := exchangeCodes(b, k, n)
		later := time.Now().Add(24 * time.Hour)
		cid, cb := testClientID, "https://www.yourcallbackurl.com"
		parallel(n, 8, func(i int) {
			refreshed := time.Now().Add(-time.Hour)
			inst := &instances.Instance{
				OrganizationID: org.Organization.ID, ElementKey: "infusionsoftcrm", Name: "bench", AuthType: instances.AuthOAuth2,
				TokenHash: secrets.Hash(secrets.NewToken()), Tags: []string{}, Valid: true,
				Config:         map[string]*string{instances.KeyClientID: &cid, instances.KeyCallbackURL: &cb},
				Secrets:        map[string]string{instances.KeyClientSecret: testClientSecret, instances.KeyAccessToken: toks[i].AccessToken, instances.KeyRefreshToken: toks[i].RefreshToken},
				TokenExpiresAt: &toks[i].Expiry, RefreshedAt: &refreshed, RefreshDueAt: &later,
			}
			if err := user.db.CreateInstance(ctx, inst); err != nil {
				b.Error(err)
			}
		})
		a := startServerWith(b, env, k, nil)
		c := startServerWith(b, env, k, nil)
		refreshesBefore := k.Stats().Refreshes
		time.Sleep(1500 * time.Millisecond) // let the statistics settle
		before := readPGStats(b, user)

		b.ResetTimer()
		start = time.Now()
		if _, err := user.db.Pool().Exec(ctx, `UPDATE instance_credentials SET due_at = now(), refreshed_at = now() - interval '1 day'`); err != nil {
			b.Fatal(err)
		}
		for {
			var left int
			if err := user.db.Pool().QueryRow(ctx, `SELECT count(*) FROM instance_credentials WHERE refreshed_at < $1`, start).Scan(&left); err != nil {
				b.Fatal(err)
			}
			if left == 0 {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("%d instances still not refreshed after 10 minutes", left)
			}
			time.Sleep(250 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		a.stop()
		c.stop()
		time.Sleep(1500 * time.Millisecond)
		after := readPGStats(b, user)

		refreshed := k.Stats().Refreshes - refreshesBefore
		st := k.Stats()
		if st.RefreshTokenReuse != 0 || st.InvalidRefreshAttempts != 0 || refreshed < n {
			b.Fatalf("refreshed %d of %d; reuse %d; invalid attempts %d", refreshed, n, st.RefreshTokenReuse, st.InvalidRefreshAttempts)
		}
		per := func(v int64) float64 { return float64(v) / float64(refreshed) }
		b.ReportMetric(took.Seconds(), "s/storm")
		b.ReportMetric(float64(refreshed)/took.Seconds(), "refreshes/s")
		b.ReportMetric(took.Seconds()/baseline.Seconds(), "x-baseline")
		b.ReportMetric(baseline.Seconds(), "baseline-s")
		b.ReportMetric(per(after.xact-before.xact), "xact/refresh")
		b.ReportMetric(per(after.returned-before.returned+after.fetched-before.fetched), "rows-read/refresh")
		b.ReportMetric(per(after.updated-before.updated+after.inserted-before.inserted), "rows-written/refresh")
		b.ReportMetric(per(after.blocks-before.blocks), "buffers/refresh")
	}
}
