package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// quotaLoad is a run of several replicas against a fake Keap that refuses
// calls over perSecond, with instances of unequal demand.
type quotaLoad struct {
	Replicas  int
	PerSecond int
	Equal     int // instances calling with 2 connections each
	Busy      int // connections of the one busy instance
	Duration  time.Duration
}

type quotaResult struct {
	Sent, Throttled   int             // calls Keap received, and refused with 429
	OK                map[string]int  // successful calls per instance ("busy", "equal-N", "quiet")
	Refused           map[string]int  // connectord's own 429s
	Other             map[int]int     // any other status, by status
	PerSecond         []int           // successful calls in each second of the run
	QuietOK, QuietAll int             // the quiet instance's calls
	QuietLatency      []time.Duration // of its calls
	Jain              float64         // over the equal instances
	BusyRatio         float64         // the busy instance's successes over an equal one's mean
	Spent             float64         // successful calls over what the quota allowed in Duration
	Commits, Writes   int             // the database's transactions and rows written during the run (every query, not only the quotas')
	servers           []*server
	tokens            map[string]string
	org               org
}

// runQuotaLoad starts the replicas through run on one database and one fake
// Keap, provisions the instances, and hammers them for l.Duration: the busy
// instance with l.Busy connections, each equal one with 2, the quiet one
// once every 0.5 s; connections take the replicas in turn.
func runQuotaLoad(t testing.TB, l quotaLoad) quotaResult {
	t.Helper()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_LOG_LEVEL"] = "info"
	env["CONNECTORD_KEAP_QUOTAS"] = fmt.Sprintf("client:second=%d,minute=%d", l.PerSecond, 60*l.PerSecond)
	env["CONNECTORD_QUOTA_MAX_WAIT"] = "5s"
	res := quotaResult{OK: map[string]int{}, Refused: map[string]int{}, Other: map[int]int{}, tokens: map[string]string{}}
	for range l.Replicas {
		res.servers = append(res.servers, startServerWith(t, env, k, nil))
	}
	s := res.servers[0]
	res.org = s.createOrg("quota", "quota@example.test")
	names := []string{"busy", "quiet"}
	for i := range l.Equal {
		names = append(names, fmt.Sprintf("equal-%d", i))
	}
	for _, n := range names {
		res.tokens[n] = s.provisionOAuth(res.org, "infusionsoftcrm", n)["token"].(string)
	}
	k.SetRateLimit(l.PerSecond)
	before := k.Stats()
	commits0, writes0 := dbActivity(t, s)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	res.PerSecond = make([]int, int(l.Duration.Seconds())+1)
	ctx, cancel := context.WithTimeout(context.Background(), l.Duration)
	defer cancel()
	began := time.Now()
	call := func(ctx context.Context, name string, replica int) {
		req, _ := http.NewRequestWithContext(ctx, "GET", res.servers[replica%len(res.servers)].URL+"/proxy/crm/rest/v1/contacts?limit=1", nil)
		req.Header.Set("Authorization", "User "+res.org.User.Secret+", Element "+res.tokens[name])
		start := time.Now()
		resp, err := client.Do(req)
		took := time.Since(start)
		if err != nil {
			return // the run ended
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case resp.StatusCode == 200:
			res.OK[name]++
			if sec := int(time.Since(began).Seconds()); sec < len(res.PerSecond) {
				res.PerSecond[sec]++
			}
		case resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "":
			res.Refused[name]++
		default:
			res.Other[resp.StatusCode]++
		}
		if name == "quiet" {
			res.QuietAll++
			if resp.StatusCode == 200 {
				res.QuietOK++
			}
			res.QuietLatency = append(res.QuietLatency, took)
		}
	}
	var wg sync.WaitGroup
	loop := func(name string, replica int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				call(ctx, name, replica)
			}
		}()
	}
	for c := range l.Busy {
		loop("busy", c)
	}
	for i := range l.Equal {
		loop(fmt.Sprintf("equal-%d", i), i)
		loop(fmt.Sprintf("equal-%d", i), i+1)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			call(ctx, "quiet", n)
		}
	}()
	wg.Wait()

	after := k.Stats()
	res.Sent, res.Throttled = after.APICalls-before.APICalls, after.Throttled-before.Throttled
	commits1, writes1 := dbActivity(t, s)
	res.Commits, res.Writes = commits1-commits0, writes1-writes0
	var sum, sq float64
	total := 0
	for _, n := range res.OK {
		total += n
	}
	for i := range l.Equal {
		x := float64(res.OK[fmt.Sprintf("equal-%d", i)])
		sum += x
		sq += x * x
	}
	if sq > 0 {
		res.Jain = sum * sum / (float64(l.Equal) * sq)
		res.BusyRatio = float64(res.OK["busy"]) / (sum / float64(l.Equal))
	}
	res.Spent = float64(total) / (float64(l.PerSecond) * l.Duration.Seconds())
	return res
}

// dbActivity reads the server's database's committed transactions and rows
// written so far (PostgreSQL's statistics, flushed within a second).
func dbActivity(t testing.TB, s *server) (commits, writes int) {
	t.Helper()
	time.Sleep(1100 * time.Millisecond)
	s.queryRow(`SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()`, nil, &commits, &writes)
	return commits, writes
}

func (r quotaResult) quietP50() time.Duration {
	if len(r.QuietLatency) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), r.QuietLatency...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)/2]
}

// Two replicas share one OAuth client's quota through the database: Keap
// refuses (almost) nothing, the quota is spent, equal instances get equal
// shares, the busy one no more than its share, and the quiet one gets
// through quickly. The margins are wide: the machine is shared and the run
// short (bench figures: BenchmarkQuota_Replicas, docs/performance.md).
func TestQuota_TwoReplicasShareKeapsQuotaFairly(t *testing.T) {
	t.Parallel()
	r := runQuotaLoad(t, quotaLoad{Replicas: 2, PerSecond: 10, Equal: 3, Busy: 8, Duration: 8 * time.Second})
	t.Logf("sent %d, Keap 429s %d, ok %v, connectord 429s %v, other %v, spent %.2f, Jain %.3f, busy %.2fx, quiet %d/%d p50 %v, db commits %d rows written %d, per second %v",
		r.Sent, r.Throttled, r.OK, r.Refused, r.Other, r.Spent, r.Jain, r.BusyRatio, r.QuietOK, r.QuietAll, r.quietP50(), r.Commits, r.Writes, r.PerSecond)
	if float64(r.Throttled) > 0.03*float64(r.Sent) {
		t.Errorf("Keap refused %d of %d calls; want under 3%%", r.Throttled, r.Sent)
	}
	if r.Spent < 0.7 {
		t.Errorf("successful calls were %.0f%% of the quota over 8s with start-up; want at least 70%%", 100*r.Spent)
	}
	if r.Jain < 0.85 {
		t.Errorf("Jain's index over equal instances %.3f (%v); want at least 0.85", r.Jain, r.OK)
	}
	if r.BusyRatio > 2 {
		t.Errorf("the busy instance got %.2fx an equal one's calls; want at most 2x", r.BusyRatio)
	}
	if r.QuietAll < 10 || r.QuietOK < r.QuietAll-1 {
		t.Errorf("the quiet instance: %d of %d calls succeeded", r.QuietOK, r.QuietAll)
	}
	if p50 := r.quietP50(); p50 > 600*time.Millisecond {
		t.Errorf("the quiet instance's p50 latency %v; want under 600ms", p50)
	}

	// The quota as the organization sees it, over both replicas.
	s := r.servers[0]
	var id int64
	s.queryRow(`SELECT id FROM instances WHERE name = 'busy'`, nil, &id)
	resp := s.do("GET", fmt.Sprintf("/instances/%d/quota", id), r.org.auth(), nil)
	if resp.Status != 200 {
		t.Fatalf("GET quota: %d %s", resp.Status, resp.Body)
	}
	q := resp.JSON(t)["quotas"].([]any)
	if len(q) != 1 {
		t.Fatalf("quotas %s", resp.Body)
	}
	f := q[0].(map[string]any)
	day := f["day"].(map[string]any)
	inst, orgShare := f["instance"].(map[string]any), f["organization"].(map[string]any)
	if f["quota"] != "oauthClient:"+testClientID || day["used"].(float64) < float64(r.OK["busy"]) ||
		inst["dayUsed"].(float64) < float64(r.OK["busy"]) || orgShare["dayUsed"].(float64) < day["used"].(float64)*0.9 ||
		f["ratePerSecond"].(float64) != 10 {
		t.Fatalf("quota figures do not match the run (busy ok %d): %s", r.OK["busy"], resp.Body)
	}
	if strings.Contains(string(resp.Body), testClientSecret) {
		t.Fatal("the quota answer holds the client secret")
	}
}

// A call whose turn does not come within CONNECTORD_QUOTA_MAX_WAIT is
// answered 429 by connectord, with Retry-After and the quota named; Keap
// never sees it.
func TestQuota_OverTheWaitBoundConnectordAnswers429(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_KEAP_QUOTAS"] = "client:second=2,minute=120"
	env["CONNECTORD_QUOTA_MAX_WAIT"] = "1s"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("q", "q@example.test")
	token := s.provisionOAuth(o, "infusionsoftcrm", "one")["token"].(string)
	before := k.Stats().APICalls
	var mu sync.Mutex
	var refused []response
	ok := 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do("GET", "/proxy/crm/rest/v1/contacts?limit=1", "User "+o.User.Secret+", Element "+token, nil)
			mu.Lock()
			defer mu.Unlock()
			if r.Status == 200 {
				ok++
			} else {
				refused = append(refused, r)
			}
		}()
	}
	wg.Wait()
	if len(refused) < 6 || ok < 1 {
		t.Fatalf("%d ok, %d refused; at 2 a second with a 1s wait most of 12 calls must be refused", ok, len(refused))
	}
	for _, r := range refused {
		msg, _ := r.JSON(t)["message"].(string)
		if r.Status != 429 || r.Header.Get("Retry-After") == "" || !strings.Contains(msg, "OAuth client "+testClientID) || !strings.Contains(msg, "spent") {
			t.Fatalf("refusal %d Retry-After %q: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
		}
	}
	if got := k.Stats().APICalls - before; got != ok {
		t.Fatalf("Keap saw %d calls for %d successes: refused calls reached it", got, ok)
	}
}

// BenchmarkQuota_Replicas runs two and three replicas for 30 s against the
// fake Keap refusing over 25 calls a second (one OAuth client), twelve
// instances: one busy with 16 connections, ten with 2, one quiet. Its
// figures go to docs/performance.md. Run it alone:
//
//	go test -run '^$' -bench BenchmarkQuota_Replicas -benchtime 1x ./cmd/connectord
func BenchmarkQuota_Replicas(b *testing.B) {
	for _, replicas := range []int{2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			for range b.N {
				r := runQuotaLoad(b, quotaLoad{Replicas: replicas, PerSecond: 25, Equal: 10, Busy: 16, Duration: 30 * time.Second})
				b.ReportMetric(float64(r.Sent), "keap_calls")
				b.ReportMetric(100*float64(r.Throttled)/math.Max(float64(r.Sent), 1), "keap_429_%")
				b.ReportMetric(100*r.Spent, "quota_spent_%")
				b.ReportMetric(r.Jain, "jain")
				b.ReportMetric(r.BusyRatio, "busy_x")
				b.ReportMetric(100*float64(r.QuietOK)/math.Max(float64(r.QuietAll), 1), "quiet_ok_%")
				b.ReportMetric(float64(r.quietP50().Milliseconds()), "quiet_p50_ms")
				refused := 0
				for _, n := range r.Refused {
					refused += n
				}
				b.ReportMetric(float64(refused), "connectord_429s")
				b.ReportMetric(float64(r.Commits)/math.Max(float64(r.Sent), 1), "db_commits/call")
				b.ReportMetric(float64(r.Writes)/math.Max(float64(r.Sent), 1), "db_rows_written/call")
				// The quotas' own share of that, as each replica logs it when it stops.
				var trips, rows float64
				for _, s := range r.servers {
					s.stop()
					for _, line := range s.logs.Lines() {
						var m map[string]any
						if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "quota syncs" {
							trips += m["round_trips"].(float64)
							rows += m["rows_written"].(float64)
						}
					}
				}
				b.ReportMetric(trips/math.Max(float64(r.Sent), 1), "quota_round_trips/call")
				b.ReportMetric(rows/math.Max(float64(r.Sent), 1), "quota_rows_written/call")
				b.Logf("replicas %d: sent %d, Keap 429s %d, ok %v, connectord 429s %v, other %v, per second %v",
					replicas, r.Sent, r.Throttled, r.OK, r.Refused, r.Other, r.PerSecond)
			}
		})
	}
}

// A service account key's quota is named by the key's hash, never the key;
// when its day is spent the next call is refused at once until midnight UTC;
// another organization cannot read an instance's quota.
func TestQuota_APIKeyDayQuotaAndItsView(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_KEAP_QUOTAS"] = "key:second=10,minute=600,day=4"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("k", "k@example.test")
	// Provisioning checks the key at Keap: that call counts against the
	// key's day as well, and Keap's quota headers tell connectord so.
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	id, token := int64(r.JSON(t)["id"].(float64)), r.JSON(t)["token"].(string)
	auth := "User " + o.User.Secret + ", Element " + token
	ok := 0
	var refused response
	for deadline := time.Now().Add(5 * time.Second); ; {
		start := time.Now()
		refused = s.do("GET", "/proxy/crm/rest/v1/contacts?limit=1", auth, nil)
		if refused.Status == 200 {
			ok++
			continue
		}
		if refused.Status == 429 {
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("the refusal took %v; a spent day's quota is refused at once", took)
			}
			break
		}
		if time.Now().After(deadline) || refused.Status != 200 {
			t.Fatalf("after %d calls on a quota of 4 a day: %d %s", ok, refused.Status, refused.Body)
		}
	}
	// Every call Keap received on the key today, connectord's key check
	// included, fits in the day's 4.
	if got := k.Stats().APICalls; ok < 1 || got > 4 {
		t.Fatalf("%d calls went through, Keap received %d on a key allowed 4 a day", ok, got)
	}
	msg := refused.JSON(t)["message"].(string)
	ra, _ := strconv.Atoi(refused.Header.Get("Retry-After"))
	if !strings.Contains(msg, "spent for today") || !strings.Contains(msg, "API key with SHA-256") || ra < 1 || ra > 86400 || strings.Contains(msg, testServiceKey) {
		t.Fatalf("refusal Retry-After %q: %s", refused.Header.Get("Retry-After"), refused.Body)
	}

	// The figures are the database's, synced every 250 ms.
	var view response
	var q, day map[string]any
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		view = s.do("GET", fmt.Sprintf("/instances/%d/quota", id), o.auth(), nil)
		if view.Status != 200 || strings.Contains(string(view.Body), testServiceKey) {
			t.Fatalf("quota view: %d %s", view.Status, view.Body)
		}
		q = view.JSON(t)["quotas"].([]any)[0].(map[string]any)
		day = q["day"].(map[string]any)
		if day["used"].(float64) >= 4 || time.Now().After(deadline) {
			break
		}
	}
	inst := q["instance"].(map[string]any)
	if q["kind"] != "apiKey" || !strings.HasPrefix(q["quota"].(string), "apiKey:") || day["used"].(float64) < 4 || day["remaining"].(float64) != 0 ||
		q["ratePerSecond"].(float64) != 10 || inst["dayUsed"].(float64) != float64(ok) {
		t.Fatalf("quota view: %s", view.Body)
	}
	other := s.createOrg("other", "other@example.test")
	if r := s.do("GET", fmt.Sprintf("/instances/%d/quota", id), other.auth(), nil); r.Status != 404 {
		t.Fatalf("another organization reading the quota: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/instances/abc/quota", o.auth(), nil); r.Status != 400 {
		t.Fatalf("a bad id: %d %s", r.Status, r.Body)
	}
}

// A replica SIGKILLed while both replicas hammer one quota loses only its
// calls in flight: its lease expires (CONNECTORD_QUOTA_LEASE, 1 s here) and
// the survivor has the whole quota a few seconds later, Keap refusing nothing.
func TestQuota_SIGKILLedReplicasShareIsReclaimed(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_KEAP_QUOTAS"] = "client:second=10,minute=600"
	env["CONNECTORD_QUOTA_LEASE"] = "1s"
	a := startServerWith(t, env, k, nil)
	o := a.createOrg("kill", "kill@example.test")
	tokens := []string{a.provisionOAuth(o, "infusionsoftcrm", "a")["token"].(string), a.provisionOAuth(o, "infusionsoftcrm", "b")["token"].(string)}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	childURL := "http://" + ln.Addr().String()
	childEnv := maps.Clone(env)
	childEnv["CONNECTORD_ADDR"] = ln.Addr().String()
	ln.Close()
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "CONNECTORD_TEST_SERVE=1")
	for k, v := range childEnv {
		child.Env = append(child.Env, k+"="+v)
	}
	child.Stdout, child.Stderr = io.Discard, io.Discard
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	waitUntil(t, "the child replica to listen", 20*time.Second, func() bool {
		resp, err := http.Get(childURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	k.SetRateLimit(10)
	before := k.Stats()

	var mu sync.Mutex
	perSec := map[int64]int{}
	hammer := func(ctx context.Context, base, token string, record bool) {
		for range 6 {
			go func() {
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "GET", base+"/proxy/crm/rest/v1/contacts?limit=1", nil)
					req.Header.Set("Authorization", "User "+o.User.Secret+", Element "+token)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if record && resp.StatusCode == 200 {
						mu.Lock()
						perSec[time.Now().Unix()]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hammer(ctx, a.URL, tokens[0], true)
	hammer(ctx, childURL, tokens[1], false)
	time.Sleep(4 * time.Second)
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now().Unix()
	time.Sleep(5 * time.Second)
	cancel()
	mu.Lock()
	defer mu.Unlock()
	shared, alone := perSec[killed-1], perSec[killed+3]+perSec[killed+4]
	t.Logf("survivor's calls a second: %v (killed at %d)", perSec, killed)
	if shared > 8 {
		t.Errorf("before the kill the survivor sent %d calls a second of 10: the quota was not shared", shared)
	}
	if alone < 16 {
		t.Errorf("3 and 4 s after the kill the survivor sent %d calls in 2 s; want most of 20", alone)
	}
	if after := k.Stats(); after.Throttled != before.Throttled {
		t.Errorf("Keap refused %d calls", after.Throttled-before.Throttled)
	}
}
