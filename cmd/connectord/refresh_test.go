package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/store"
	"github.com/connectord/connectord/internal/testdb"
	"github.com/connectord/connectord/internal/tokens"
)

// refreshEnv is the environment of a replica refreshing short-lived tokens fast.
func refreshEnv(t testing.TB, k *keapServer) map[string]string {
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_REFRESH_MARGIN"] = "1s"
	env["CONNECTORD_REFRESH_POLL_INTERVAL"] = "200ms"
	env["CONNECTORD_LOG_LEVEL"] = "info"
	return env
}

// provisionMany creates n OAuth instances through the API, each with its own code.
func (s *server) provisionMany(o org, n int) []int64 {
	s.t.Helper()
	ids := make([]int64, 0, n)
	for i := range n {
		code, err := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
		if err != nil {
			s.t.Fatal(err)
		}
		r := s.do("POST", "/instances", o.auth(), seedBody("infusionsoftcrm", code, fmt.Sprintf("instance %d", i)))
		if r.Status != 200 {
			s.t.Fatalf("provision %d: %d %s", i, r.Status, r.Body)
		}
		ids = append(ids, int64(r.JSON(s.t)["id"].(float64)))
	}
	return ids
}

// tokenUser is a third participant using the instances' tokens the way the proxy
// will: take the token (refreshing inline when it is about to expire), call Keap,
// and on a 401 renew once and retry.
type tokenUser struct {
	svc  *tokens.Service
	db   *store.DB
	keap *keapServer
}

func newTokenUser(t testing.TB, env map[string]string, k *keapServer) *tokenUser {
	t.Helper()
	cfg, err := loadServeConfig(getenvFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), env["DATABASE_URL"], cfg.Ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	catalog, err := elements.Load(map[string]elements.Endpoints{"infusionsoft": cfg.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	return &tokenUser{svc: tokens.New(db, catalog, tokens.Options{InlineMargin: 500 * time.Millisecond}), db: db, keap: k}
}

func (u *tokenUser) call(token string) (int, error) {
	req, _ := http.NewRequest("GET", u.keap.URL+"/crm/rest/v1/account/profile", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// use makes one proxy-style call and reports whether it ended in a 200.
func (u *tokenUser) use(ctx context.Context, org, id int64) error {
	tok, err := u.svc.AccessToken(ctx, org, id)
	if err != nil {
		return err
	}
	status, err := u.call(tok)
	if err != nil {
		return err
	}
	if status == http.StatusUnauthorized {
		if tok, err = u.svc.Renew(ctx, org, id, tok); err != nil {
			return err
		}
		if status, err = u.call(tok); err != nil {
			return err
		}
	}
	if status != http.StatusOK {
		return fmt.Errorf("instance %d: Keap answered %d", id, status)
	}
	return nil
}

// checkAllHealthy asserts every instance is valid, holds a refresh token Keap
// still accepts, and can make a call.
func checkAllHealthy(t testing.TB, u *tokenUser, org int64, ids []int64) {
	t.Helper()
	st := u.keap.Stats()
	if st.RefreshTokenReuse != 0 || st.InvalidRefreshAttempts != 0 {
		t.Errorf("fake Keap saw %d refresh-token reuses and %d invalid refresh attempts", st.RefreshTokenReuse, st.InvalidRefreshAttempts)
	}
	for _, id := range ids {
		inst, err := u.db.Instance(context.Background(), org, id)
		if err != nil {
			t.Fatal(err)
		}
		if !inst.Valid {
			t.Errorf("instance %d invalid: %s", id, inst.InvalidReason)
		}
		if !u.keap.RefreshTokenValid(inst.Secrets[instances.KeyRefreshToken]) {
			t.Errorf("instance %d holds a refresh token Keap no longer accepts", id)
		}
		if err := u.use(context.Background(), org, id); err != nil {
			t.Errorf("instance %d unusable: %v", id, err)
		}
	}
}

func TestRefresh_TwoReplicasManyInstancesNoReuse(t *testing.T) {
	t.Parallel()
	const n = 200
	const run = 12 * time.Second
	k := newKeap(t, fakekeap.Options{AccessTokenTTL: 3 * time.Second})
	env := refreshEnv(t, k)
	a := startServerWith(t, env, k, nil)
	b := startServerWith(t, env, k, nil)
	o := a.createOrg("Acme", "dev@acme.test")
	ids := a.provisionMany(o, n)
	user := newTokenUser(t, env, k)

	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	start := time.Now()
	var uses, forced atomic.Int64
	var failures sync.Map
	var wg sync.WaitGroup
	for range 8 { // proxy-style users
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := ids[rand.IntN(len(ids))]
				if err := user.use(context.Background(), o.Organization.ID, id); err != nil {
					failures.Store(id, err)
				}
				uses.Add(1)
			}
		}()
	}
	for _, srv := range []*server{a, b} { // forced refreshes through both replicas' API
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := ids[rand.IntN(len(ids))]
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/instances/%d/tokens/refresh", srv.URL, id), nil)
				req.Header.Set("Authorization", o.auth())
				if r := srv.send(req, nil); r.Status != 200 {
					failures.Store(id, fmt.Errorf("forced refresh: %d %s", r.Status, r.Body))
				}
				forced.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	a.stop()
	b.stop()

	failures.Range(func(id, err any) bool {
		t.Errorf("instance %v: %v", id, err)
		return true
	})
	refreshes := k.Stats().Refreshes
	t.Logf("%d instances, %v: %d refreshes (%.1f per instance), %d proxy-style uses, %d forced refreshes",
		n, time.Since(start).Round(time.Second), refreshes, float64(refreshes)/n, uses.Load(), forced.Load())
	if refreshes < n*4 {
		t.Errorf("only %d refreshes for %d instances: not every instance refreshed many times", refreshes, n)
	}
	// Every instance kept being refreshed through the second half of the run.
	var stale int
	if err := user.db.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM instance_credentials WHERE refreshed_at < $1`, start.Add(run/2)).Scan(&stale); err != nil || stale != 0 {
		t.Errorf("%d instances were not refreshed in the second half of the run (%v)", stale, err)
	}
	for _, srv := range []*server{a, b} {
		if !strings.Contains(srv.logs.String(), `"message":"token refreshed"`) {
			t.Errorf("replica %s refreshed nothing: the work was not shared", srv.URL)
		}
	}
	checkAllHealthy(t, user, o.Organization.ID, ids)
}

// A replica whose context is cancelled while refreshes are in flight finishes
// and saves them: no instance is left with a refresh token Keap has rotated away.
func TestRefresh_ServerCancelledMidRefreshLosesNoToken(t *testing.T) {
	t.Parallel()
	const n = 120
	// Slow token answers keep every worker busy, so the cancel lands mid-refresh.
	var inFlight atomic.Int64
	var slowOn atomic.Bool
	slow := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" && slowOn.Load() {
				inFlight.Add(1)
				defer inFlight.Add(-1)
				time.Sleep(200 * time.Millisecond)
			}
			h.ServeHTTP(w, r)
		})
	}
	k := newKeapWrapped(t, fakekeap.Options{AccessTokenTTL: 3 * time.Second}, slow)
	env := refreshEnv(t, k)
	a := startServerWith(t, env, k, nil)
	o := a.createOrg("Acme", "dev@acme.test")
	ids := a.provisionMany(o, n)
	slowOn.Store(true)
	user := newTokenUser(t, env, k)

	// Wait until replica a, alone, has refreshes in flight, then cancel it.
	deadline := time.Now().Add(20 * time.Second)
	for inFlight.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if inFlight.Load() < 4 {
		t.Fatalf("refreshes never got under way (in flight %d)", inFlight.Load())
	}
	a.stop()
	var afterCancel int
	stopping := false
	for _, line := range a.logs.Lines() {
		stopping = stopping || strings.Contains(line, `"message":"shutting down"`)
		if stopping && strings.Contains(line, `"message":"token refreshed"`) {
			afterCancel++
		}
	}
	if afterCancel == 0 {
		t.Fatalf("replica a finished no refresh after its context was cancelled; logs:\n%s", a.logs)
	}
	b := startServerWith(t, env, k, nil)
	time.Sleep(3 * time.Second) // replica b takes over
	b.stop()
	slowOn.Store(false)
	t.Logf("replica a completed %d refreshes after cancellation; %d refreshes in all", afterCancel, k.Stats().Refreshes)
	checkAllHealthy(t, user, o.Organization.ID, ids)
	var invalid int
	c, err := pgx.Connect(context.Background(), env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM instances WHERE NOT valid`).Scan(&invalid); err != nil || invalid != 0 {
		t.Fatalf("%d invalid instances (%v)", invalid, err)
	}
}

func TestForceRefresh_InvalidationAndRepairThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	other := s.createOrg("Other", "dev@other.test")
	inst := s.provisionOAuth(o, "infusionsoftcrm", "forced")
	id := fmt.Sprint(inst["id"])
	before := inst["configuration"].(map[string]any)["oauth.user.refresh_time"].(string)

	time.Sleep(5 * time.Millisecond)
	r := s.do("PUT", "/elements/api-v2/instances/"+id+"/tokens/refresh", o.auth(), nil)
	if r.Status != 200 {
		t.Fatalf("forced refresh: %d %s", r.Status, r.Body)
	}
	after := r.JSON(t)["oauth.user.refresh_time"].(string)
	if after <= before {
		t.Fatalf("refresh_time did not move: %s -> %s", before, after)
	}
	got := s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)
	if got["configuration"].(map[string]any)["oauth.user.refresh_time"] != after || got["tokenExpiresDate"] == nil || got["nextRefreshDate"] == nil {
		t.Fatalf("the instance does not show the refresh: %v", got)
	}
	if r := s.do("PUT", "/instances/"+id+"/tokens/refresh", other.auth(), nil); r.Status != 404 {
		t.Fatalf("another organization refreshed it: %d", r.Status)
	}
	keyed := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, "")).JSON(t)
	if r := s.do("PUT", fmt.Sprintf("/instances/%v/tokens/refresh", keyed["id"]), o.auth(), nil); r.Status != 409 {
		t.Fatalf("API-key instance: %d %s", r.Status, r.Body)
	}

	// Keap down: 502, the instance stays valid and shows the error.
	s.keap.SetDown(true)
	r = s.do("PUT", "/instances/"+id+"/tokens/refresh", o.auth(), nil)
	s.keap.SetDown(false)
	if r.Status != 502 {
		t.Fatalf("provider down: %d %s", r.Status, r.Body)
	}
	got = s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)
	if got["valid"] != true || got["lastRefreshError"] == nil {
		t.Fatalf("after a transient failure: %v", got)
	}

	// The user revokes access at Keap: the refresh is refused, the instance
	// becomes invalid with the reason.
	s.keap.RevokeRefreshTokens(testClientID)
	r = s.do("PUT", "/instances/"+id+"/tokens/refresh", o.auth(), nil)
	if r.Status != 400 || r.JSON(t)["providerMessage"] == nil {
		t.Fatalf("refused refresh: %d %s", r.Status, r.Body)
	}
	got = s.do("GET", "/instances/"+id, o.auth(), nil).JSON(t)
	if got["valid"] != false || !strings.Contains(fmt.Sprint(got["invalidReason"]), "authorize again") {
		t.Fatalf("refused instance: %v", got)
	}

	// Re-provisioning with a new code repairs it.
	code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	r = s.do("PUT", "/instances/"+id, o.auth(), seedBody("infusionsoftcrm", code, "forced"))
	if r.Status != 200 || r.JSON(t)["valid"] != true || r.JSON(t)["invalidReason"] != nil || r.JSON(t)["lastRefreshError"] != nil {
		t.Fatalf("repair: %d %s", r.Status, r.Body)
	}
	if r := s.do("PUT", "/instances/"+id+"/tokens/refresh", o.auth(), nil); r.Status != 200 {
		t.Fatalf("refresh after repair: %d %s", r.Status, r.Body)
	}
	for _, secret := range s.instanceSecrets(id) {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatal("a token or secret reached the logs")
		}
	}
}
