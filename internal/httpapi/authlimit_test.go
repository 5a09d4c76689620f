package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
)

// countingAuth stands for the database lookup: it counts every call and
// accepts one user secret.
type countingAuth struct{ calls atomic.Int64 }

func (a *countingAuth) Authenticate(_ context.Context, c tenants.Credentials, _ tenants.Need) (tenants.Principal, error) {
	a.calls.Add(1)
	if c.User == "good" || c.User == "colleague" {
		return tenants.Principal{OrganizationID: 1, UserID: 1}, nil
	}
	return tenants.Principal{}, apperr.Errorf(apperr.Unauthorized, "the User secret in the Authorization header is not valid")
}

func TestAuthFailures_RefusedCheaplyWithoutLockingOutUsers(t *testing.T) {
	t.Parallel()
	db := &countingAuth{}
	h := withRequestID(zerolog.Nop())(authenticate(limitAuthFailures(db, 60), tenants.NeedOrganization)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	call := func(from, user string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/instances", nil)
		req.RemoteAddr = from
		req.Header.Set("Authorization", "User "+user+", Organization org")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	const attacker = "198.51.100.7:40000"
	if rec := call(attacker, "good"); rec.Code != http.StatusNoContent {
		t.Fatalf("a user at the address, before: %d", rec.Code)
	}
	statuses := map[int]int{}
	const attempts = 5000
	for i := range attempts {
		rec := call("198.51.100.7:"+string(rune('0'+i%10))+"1", "guess")
		statuses[rec.Code]++
		switch rec.Code {
		case http.StatusUnauthorized:
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("a 401 without WWW-Authenticate")
			}
		case http.StatusTooManyRequests:
			if rec.Header().Get("Retry-After") == "" {
				t.Fatal("a 429 without Retry-After")
			}
		}
	}
	// 60 at once, then one a second: the loop takes well under a minute.
	if statuses[http.StatusUnauthorized] > 120 || statuses[http.StatusTooManyRequests] < attempts-120 {
		t.Fatalf("failed attempts were not refused: %v", statuses)
	}
	if n := db.calls.Load(); n > 121 {
		t.Fatalf("%d of %d attempts reached the database", n, attempts)
	}
	// The user who already worked from there still does; another address is
	// not affected at all.
	if rec := call(attacker, "good"); rec.Code != http.StatusNoContent {
		t.Fatalf("a known user at the refused address: %d %s", rec.Code, rec.Body)
	}
	if rec := call("203.0.113.9:5000", "colleague"); rec.Code != http.StatusNoContent {
		t.Fatalf("another address: %d %s", rec.Code, rec.Body)
	}
	if rec := call("[2001:db8:1:2::1]:443", "guess"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("another address's first failure: %d", rec.Code)
	}
}

func TestLoggedPathAndNotFound_AreCapped(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := withRequestID(zerolog.New(&logs))(logRequests(notFound()))
	path := "/" + strings.Repeat("a", 1<<20)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
	if rec.Body.Len() > 2048 || !strings.Contains(rec.Body.String(), "1048577 bytes") {
		t.Fatalf("the answer repeats %d bytes of the path: %.300s", rec.Body.Len(), rec.Body)
	}
	if logs.Len() > 4096 {
		t.Fatalf("the log line is %d bytes", logs.Len())
	}
}
