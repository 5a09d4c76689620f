// Command proxybench measures what connectord's pass-through costs: it drives
// the same Keap call with concurrent clients straight at a fast local upstream,
// through nginx proxy_pass, through connectord's /proxy and (when asked)
// through connectord's hub list endpoint, interleaved in one run, and reports
// throughput and p50/p99 latency for each.
//
//	proxybench upstream -addr 127.0.0.1:18081 -key KeapAK-…   # the fast upstream
//	proxybench load -direct … -nginx … -connectord … -auth …   # the measurement
//
// bench/run.sh starts everything and runs both; bench/README.md explains it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: proxybench upstream|load [flags]; run 'proxybench load -h'")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "upstream":
		err = serveUpstream(ctx, os.Args[2:])
	case "load":
		err = load(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: want upstream or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

// serveUpstream answers like Keap's REST v1, as fast as it can: the account
// profile (connectord checks a service account key with it) and a fixed page
// of contacts, to callers presenting the key.
func serveUpstream(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18081", "listen address")
	key := fs.String("key", "KeapAK-bench-service-account-key", "the service account key callers must send in X-Keap-API-Key")
	n := fs.Int("contacts", 10, "contacts in the list answer")
	spentEvery := fs.Int("spent-every", 0, "report Keap's throttle window spent (x-keap-product-throttle-available: 0) on every n-th answer, as Keap does on the last call of a window; 0 never")
	_ = fs.Parse(args)

	contacts := make([]map[string]any, *n)
	for i := range contacts {
		contacts[i] = map[string]any{
			"id": i + 1, "given_name": "Bench", "family_name": fmt.Sprintf("Contact %d", i+1),
			"email_addresses": []any{map[string]any{"email": fmt.Sprintf("bench%d@example.test", i+1), "field": "EMAIL1"}},
			"phone_numbers":   []any{}, "addresses": []any{}, "tag_ids": []any{},
			"date_created": "2026-01-01T00:00:00.000Z", "last_updated": "2026-01-02T00:00:00.000Z",
			"email_status": "SingleOptIn", "email_opted_in": true, "middle_name": nil, "company": nil,
		}
	}
	list, _ := json.Marshal(map[string]any{"contacts": contacts, "count": *n, "next": nil, "previous": nil})
	profile := []byte(`{"name":"Bench","email":"bench@example.test","website":null}`)
	refused := []byte(`{"fault":{"faultstring":"Invalid Access Token","detail":{"errorcode":"keymanagement.service.invalid_access_token"}}}`)
	notFound := []byte(`{"message":"No resource found"}`)

	var answers atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json;charset=UTF-8"}
		hd["X-Keap-Product-Throttle-Limit"] = []string{"10"}
		hd["X-Keap-Product-Throttle-Available"] = []string{"9"}
		if *spentEvery > 0 && answers.Add(1)%int64(*spentEvery) == 0 {
			hd["X-Keap-Product-Throttle-Available"] = []string{"0"}
		}
		hd["X-Keap-Product-Throttle-Time-Unit"] = []string{"second"}
		var body []byte
		switch {
		case r.Header.Get("X-Keap-API-Key") != *key:
			w.WriteHeader(http.StatusUnauthorized)
			body = refused
		case r.URL.Path == "/crm/rest/v1/contacts" && r.Method == http.MethodGet:
			body = list
		case r.URL.Path == "/crm/rest/v1/account/profile" && r.Method == http.MethodGet:
			body = profile
		default:
			w.WriteHeader(http.StatusNotFound)
			body = notFound
		}
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(os.Stderr, "proxybench upstream on %s (%d contacts, %d bytes)\n", ln.Addr(), *n, len(list))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// target is one way of making the same call.
type target struct {
	name   string
	url    string
	header http.Header
	pid    int // the process that answers it (with its children), whose CPU time is counted; 0: none
}

// result is what one target did over every round at one concurrency.
type result struct {
	name      string
	requests  int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration
	cpu       time.Duration // CPU time of the target's process while it was driven
}

func (r *result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// slow counts the calls that took at least d.
func (r *result) slow(d time.Duration) int {
	i, _ := slices.BinarySearch(r.latencies, d)
	return len(r.latencies) - i
}

func (r *result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(int(float64(len(r.latencies))*p), len(r.latencies)-1)]
}

func load(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	direct := fs.String("direct", "http://127.0.0.1:18081", "the upstream's base URL")
	nginx := fs.String("nginx", "", "nginx's base URL (proxy_pass to the upstream, adding the key); empty skips it")
	connectord := fs.String("connectord", "http://127.0.0.1:18080", "connectord's base URL")
	key := fs.String("key", "KeapAK-bench-service-account-key", "the key sent straight to the upstream")
	auth := fs.String("auth", "", "connectord's Authorization header: 'User <secret>, Element <token>' (required)")
	path := fs.String("path", "/crm/rest/v1/contacts?limit=10", "the Keap call, as a path and query on Keap's API host")
	hub := fs.String("hub", "", "a hub call on connectord, e.g. /hubs/crm/contacts?pageSize=10; empty skips it")
	concurrency := fs.String("c", "1,32", "comma-separated numbers of concurrent clients; each is measured")
	duration := fs.Duration("d", 5*time.Second, "how long each target is driven in each round")
	rounds := fs.Int("rounds", 3, "rounds; targets take turns within each round, so drift hits them alike")
	warmup := fs.Duration("warmup", time.Second, "unmeasured load on each target before the first round")
	upstreamPID := fs.Int("upstream-pid", 0, "the upstream's process id, to report its CPU time per request (Linux)")
	nginxPID := fs.Int("nginx-pid", 0, "nginx's master process id, to report nginx's CPU time per request (Linux)")
	connectordPID := fs.Int("connectord-pid", 0, "connectord's process id, to report its CPU time per request (Linux)")
	_ = fs.Parse(args)
	if *auth == "" {
		return errors.New("-auth is required: connectord's 'User <secret>, Element <token>'")
	}
	var levels []int
	for _, s := range strings.Split(*concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-c %q: want positive whole numbers", *concurrency)
		}
		levels = append(levels, n)
	}

	targets := []target{{"direct to the upstream", *direct + *path, http.Header{"X-Keap-Api-Key": {*key}}, *upstreamPID}}
	if *nginx != "" {
		targets = append(targets, target{"nginx proxy_pass", *nginx + *path, http.Header{}, *nginxPID})
	}
	targets = append(targets, target{"connectord /proxy", *connectord + "/proxy" + *path, http.Header{"Authorization": {*auth}}, *connectordPID})
	if *hub != "" {
		targets = append(targets, target{"connectord " + strings.SplitN(*hub, "?", 2)[0], *connectord + *hub, http.Header{"Authorization": {*auth}}, *connectordPID})
	}

	maxC := slices.Max(levels)
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4 * maxC, MaxIdleConnsPerHost: 2 * maxC, IdleConnTimeout: time.Minute,
		DisableCompression: true, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}, Timeout: 30 * time.Second}

	// Every target must answer 200 before anything is measured.
	for _, t := range targets {
		if _, err := once(ctx, client, t); err != nil {
			return fmt.Errorf("%s (%s): %w", t.name, t.url, err)
		}
	}
	fmt.Fprintf(out, "proxybench: %d CPUs (GOMAXPROCS %d), %s per target per round, %d rounds, concurrency %v\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), *duration, *rounds, levels)

	for _, c := range levels {
		results := make([]*result, len(targets))
		for i, t := range targets {
			results[i] = &result{name: t.name}
			drive(ctx, client, t, c, *warmup, nil)
		}
		for range *rounds {
			for i, t := range targets {
				drive(ctx, client, t, c, *duration, results[i])
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		report(out, c, results)
	}
	return nil
}

// once makes one call and checks it succeeds.
func once(ctx context.Context, client *http.Client, t target) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header = t.header.Clone()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %d: %.200s", resp.StatusCode, body)
	}
	return took, nil
}

// drive runs c clients against t for d, adding what they measured to res (nil: warm-up).
func drive(ctx context.Context, client *http.Client, t target, c int, d time.Duration, res *result) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	cpu0 := cpuTime(t.pid)
	start := time.Now()
	deadline := start.Add(d)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var errs int
			var firstErr string
			for time.Now().Before(deadline) && ctx.Err() == nil {
				took, err := once(ctx, client, t)
				if err != nil {
					if errs == 0 {
						firstErr = err.Error()
					}
					errs++
					continue
				}
				lat = append(lat, took)
			}
			if res == nil {
				return
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.requests += len(lat)
			if res.errors == 0 && errs > 0 {
				res.firstErr = firstErr
			}
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	if res != nil {
		res.elapsed += time.Since(start)
		res.cpu += cpuTime(t.pid) - cpu0
	}
}

// cpuTime is the user and system CPU time of process pid and its children
// (nginx's workers) so far, from /proc; 0 when pid is 0 or /proc cannot tell.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	total := time.Duration(utime+stime) * time.Second / clockTicks
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, c := range strings.Fields(string(children)) {
		if n, err := strconv.Atoi(c); err == nil {
			total += cpuTime(n)
		}
	}
	return total
}

// clockTicks is Linux's USER_HZ, the unit of /proc's CPU times.
const clockTicks = 100

func report(out io.Writer, c int, results []*result) {
	for _, r := range results {
		slices.Sort(r.latencies)
	}
	base := results[0]
	var ngx *result
	for _, r := range results {
		if r.name == "nginx proxy_pass" {
			ngx = r
		}
	}
	fmt.Fprintf(out, "### %d concurrent client(s)\n\n", c)
	fmt.Fprintln(out, "| path | requests | errors | req/s | p50 | p90 | p99 | max | p50 over direct | p99 over direct | ≥ 0.5 s | req/s vs nginx | CPU per request |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		vsNginx, cpu := "—", "—"
		if ngx != nil {
			vsNginx = fmt.Sprintf("%.0f%%", 100*r.rate()/ngx.rate())
		}
		if r.cpu > 0 && r.requests > 0 {
			cpu = fmt.Sprintf("%.0f µs", float64(r.cpu.Microseconds())/float64(r.requests))
		}
		fmt.Fprintf(out, "| %s | %d | %d | %.0f | %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", r.name, r.requests, r.errors, r.rate(),
			ms(r.pct(0.50)), ms(r.pct(0.90)), ms(r.pct(0.99)), ms(r.pct(1)), ms(r.pct(0.50)-base.pct(0.50)), ms(r.pct(0.99)-base.pct(0.99)),
			r.slow(500*time.Millisecond), vsNginx, cpu)
	}
	fmt.Fprintln(out, "\nCPU per request is the CPU time of the process answering that path (the upstream, nginx with its workers, connectord) over the requests it answered.")
	fmt.Fprintln(out)
	for _, r := range results {
		if r.errors > 0 {
			fmt.Fprintf(out, "%s: %d errors, the first: %s\n", r.name, r.errors, r.firstErr)
		}
		if !strings.HasPrefix(r.name, "connectord") {
			continue
		}
		added, added99 := r.pct(0.50)-base.pct(0.50), r.pct(0.99)-base.pct(0.99)
		fmt.Fprintf(out, "- %s adds %s at p50 (target under 1 ms): %s; %s at p99 (target under 10 ms): %s", r.name,
			ms(added), verdict(added < time.Millisecond), ms(added99), verdict(added99 < 10*time.Millisecond))
		if ngx != nil {
			share := r.rate() / ngx.rate()
			fmt.Fprintf(out, "; %.0f%% of nginx's throughput (target at least 70%%): %s", 100*share, verdict(share >= 0.70))
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
