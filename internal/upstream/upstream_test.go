package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/quota"
)

const sak = "KeapAK-upstream-test"

func setup(t *testing.T, opt Options) (*fakekeap.Server, *Client, Target) {
	t.Helper()
	fk := fakekeap.New(fakekeap.Options{})
	fk.AddServiceAccountKey(sak)
	srv := httptest.NewServer(fk)
	t.Cleanup(func() { srv.Close(); fk.Close() })
	if opt.BackoffBase == 0 {
		opt.BackoffBase = 10 * time.Millisecond
	}
	if opt.Quotas == nil {
		opt.Quotas = quotas(t)
	}
	return fk, New(nil, opt), Target{InstanceID: 1, AuthType: instances.AuthAPIKey, APIKey: sak, APIURL: srv.URL, RESTBase: srv.URL + "/crm/rest/v1"}
}

// quotas runs a Scheduler with Keap's limits for keys, but 10 a second
// all minute long.
func quotas(t *testing.T) *quota.Scheduler {
	t.Helper()
	q := quota.New(quota.Options{Key: quota.Limits{PerSecond: 10, PerMinute: 600, PerDay: 30_000}, SyncEvery: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return q
}

func call(t *testing.T, c *Client, tg Target, method, path, body string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(method, tg.RESTBase+path, nil)
	var b []byte
	if body != "" {
		b = []byte(body)
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(context.Background(), tg, req, b)
	if resp != nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func TestDo_RetryPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		failN      int
		status     int
		retryAfter string
		wantStatus int
		wantCalls  int
	}{
		{"GET 503 retried until it heals", "GET", 2, 503, "", 200, 3},
		{"GET 500 gives up after the retries", "GET", 10, 500, "", 500, 4},
		{"GET 429 without Retry-After backs off and heals", "GET", 1, 429, "", 200, 2},
		{"GET 429 honours Retry-After", "GET", 1, 429, "1", 200, 2},
		{"POST 503 is not retried", "POST", 1, 503, "", 503, 1},
		{"POST 429 is retried", "POST", 1, 429, "", 201, 2},
		{"PUT 502 is retried (idempotent)", "PUT", 1, 502, "", 200, 2},
		{"Retry-After beyond the cap is handed back", "GET", 1, 429, "3600", 429, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fk, c, tg := setup(t, Options{})
			fk.FailNext(tt.failN, tt.status, tt.retryAfter)
			path, body := "/contacts", ""
			switch tt.method {
			case "POST":
				body = `{"email_addresses":[{"email":"a@b.test","field":"EMAIL1"}]}`
			case "PUT":
				body = `{"email_addresses":[{"email":"a@b.test","field":"EMAIL1"}],"duplicate_option":"Email"}`
			}
			start := time.Now()
			resp, err := call(t, c, tg, tt.method, path, body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus && !(tt.method == "PUT" && resp.StatusCode == 201) {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := fk.Stats().APICalls; got != tt.wantCalls {
				t.Fatalf("Keap saw %d calls, want %d", got, tt.wantCalls)
			}
			if tt.retryAfter == "1" && time.Since(start) < 900*time.Millisecond {
				t.Fatalf("Retry-After: 1 was not waited for (%v)", time.Since(start))
			}
		})
	}
}

func TestDo_KeyRateLimitHoldsTenPerSecond(t *testing.T) {
	t.Parallel()
	fk, c, tg := setup(t, Options{})
	start := time.Now()
	for range 25 {
		if resp, err := call(t, c, tg, "GET", "/account/profile", ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
	}
	// 10 a second in whole seconds: 25 calls cannot take less than 1.5 s.
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Fatalf("25 calls took %v: the 10/s limit was not kept", took)
	}
	if fk.Stats().APICalls != 25 {
		t.Fatalf("calls %d", fk.Stats().APICalls)
	}
}

func TestDo_UnreachableAndTimeout(t *testing.T) {
	t.Parallel()
	_, c, tg := setup(t, Options{MaxRetries: 1})
	tg.RESTBase = "http://127.0.0.1:1/crm/rest/v1"
	if _, err := call(t, c, tg, "GET", "/contacts", ""); apperr.CodeOf(err) != apperr.ProviderDown {
		t.Fatalf("unreachable: %v", err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	defer slow.Close()
	c2 := New(nil, Options{MaxRetries: -1, HTTP: &http.Client{Timeout: 50 * time.Millisecond}})
	tg.RESTBase = slow.URL
	_, err := call(t, c2, tg, "GET", "/x", "")
	if apperr.CodeOf(err) != apperr.ProviderTimeout || !strings.Contains(err.Error(), "time") {
		t.Fatalf("time-out: %v", err)
	}
}

// A successful answer saying the second's quota is used up makes the next
// call wait for the next second.
func TestDo_ThrottleHeaderPausesTheQuota(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			w.Header().Set("x-keap-product-throttle-available", "0")
			w.Header().Set("x-keap-product-throttle-time-unit", "second")
		}
	}))
	defer srv.Close()
	c := New(nil, Options{Quotas: quotas(t)})
	tg := Target{InstanceID: 9, AuthType: instances.AuthAPIKey, APIKey: sak, RESTBase: srv.URL}
	for range 2 {
		if _, err := call(t, c, tg, "GET", "/x", ""); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 || at[1].Unix() <= at[0].Unix() {
		t.Fatalf("calls at %v: the second call did not wait for the next second", at)
	}
}

// With the client-side limits off (CONNECTORD_KEAP_RATE_LIMIT_OFF) connectord
// adds no wait of its own: an answer saying the window is spent does not
// hold the calls that follow.
func TestDo_LimitsOffIgnoreTheThrottlePause(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-keap-product-throttle-available", "0")
		w.Header().Set("x-keap-product-throttle-time-unit", "second")
	}))
	defer srv.Close()
	c := New(nil, Options{Quotas: quotas(t), KeyRate: rate.Inf, ClientRate: rate.Inf})
	tg := Target{InstanceID: 9, AuthType: instances.AuthAPIKey, APIKey: sak, RESTBase: srv.URL}
	start := time.Now()
	for range 5 {
		if _, err := call(t, c, tg, "GET", "/x", ""); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 700*time.Millisecond {
		t.Fatalf("five calls took %v: the throttle pause applied with the limits off", took)
	}
}

// Keap counts a service account key's calls however many instances hold it.
func TestDo_InstancesSharingAKeyShareItsLimit(t *testing.T) {
	t.Parallel()
	_, c, tg := setup(t, Options{})
	other := tg
	other.InstanceID = 2
	start := time.Now()
	for i := range 20 {
		target := tg
		if i%2 == 1 {
			target = other
		}
		if resp, err := call(t, c, target, "GET", "/account/profile", ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
	}
	// 10 a second in whole seconds: 20 calls cannot take less than 1 s.
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("20 calls on one key from two instances took %v: each instance had its own limit", took)
	}
}

// tokenStub is a TokenSource that hands out current and counts the calls.
type tokenStub struct {
	mu              sync.Mutex
	current         string
	access, renewed int
}

func (s *tokenStub) AccessToken(context.Context, int64, int64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access++
	return s.current, nil
}

func (s *tokenStub) Renew(_ context.Context, _, _ int64, _ string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renewed++
	return s.current, nil
}

// An OAuth call sends the access token its caller loaded, without asking the
// token source, while that token is not about to expire; once Keap rejected
// it, the renewed token is used, and a caller's stale copy is not sent again.
func TestDo_OAuthUsesTheCallersTokenUntilRejected(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	valid := "tok-a"
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer "+valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	stub := &tokenStub{current: "tok-a"}
	c := New(stub, Options{BackoffBase: time.Millisecond})
	later := time.Now().Add(time.Hour)
	tg := Target{InstanceID: 7, AuthType: instances.AuthOAuth2, ClientID: "cid", APIURL: srv.URL, RESTBase: srv.URL,
		AccessToken: "tok-a", TokenExpiresAt: &later}
	status := func() int {
		t.Helper()
		resp, err := call(t, c, tg, "GET", "/contacts", "")
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	last := func() string { mu.Lock(); defer mu.Unlock(); return seen[len(seen)-1] }

	if s := status(); s != 200 || stub.access != 0 || last() != "Bearer tok-a" {
		t.Fatalf("fresh token: status %d, token source asked %d times, sent %s", s, stub.access, last())
	}
	soon := time.Now().Add(time.Minute)
	tg.TokenExpiresAt = &soon
	if s := status(); s != 200 || stub.access != 1 {
		t.Fatalf("token about to expire: status %d, token source asked %d times, want once", s, stub.access)
	}
	tg.TokenExpiresAt = &later

	// Keap moved on to tok-c (another replica refreshed): one 401, one renewal.
	mu.Lock()
	valid = "tok-c"
	mu.Unlock()
	stub.current = "tok-c"
	if s := status(); s != 200 || stub.renewed != 1 || last() != "Bearer tok-c" {
		t.Fatalf("after Keap rejected the copy: status %d, renewed %d, sent %s", s, stub.renewed, last())
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	// The caller still holds the rejected tok-a: it is not sent again.
	if s := status(); s != 200 || stub.renewed != 1 || last() != "Bearer tok-c" {
		t.Fatalf("stale copy: status %d, renewed %d, sent %s", s, stub.renewed, last())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n+1 {
		t.Fatalf("the stale copy cost %d requests, want 1 (no second 401)", len(seen)-n)
	}
}

func TestDo_KeapsRedirectIsReturnedNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/somewhere", http.StatusFound)
	}))
	defer srv.Close()
	c := New(nil, Options{})
	tg := Target{InstanceID: 1, AuthType: instances.AuthAPIKey, APIKey: "k", APIURL: srv.URL, RESTBase: srv.URL}
	resp, err := call(t, c, tg, "GET", "/contacts", "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != other.URL+"/somewhere" || elsewhere.Load() != 0 {
		t.Fatalf("want Keap's 302 with its Location and nothing sent elsewhere, got %d %q (%d calls elsewhere)",
			resp.StatusCode, resp.Header.Get("Location"), elsewhere.Load())
	}
}
