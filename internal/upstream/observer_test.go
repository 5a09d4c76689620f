package upstream

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/trace"
)

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	attempts []string
	retries  []string
}

func (r *recorder) KeapAttempt(kind, operation string, orgID int64, status int, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, fmt.Sprintf("%s %s %d", kind, operation, status))
}

func (r *recorder) KeapRetry(kind, operation string, orgID int64, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, fmt.Sprintf("%s %s %s", kind, operation, reason))
}

func TestDo_TellsTheObserverEachAttemptAndRetry(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	fk, c, tg := setup(t, Options{Observer: rec})
	fk.FailNext(1, http.StatusTooManyRequests, "0")
	if resp, err := call(t, c, tg, "GET", "/contacts/999999", ""); err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	fk.FailNext(1, http.StatusServiceUnavailable, "")
	if resp, err := call(t, c, tg, "GET", "/contacts", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	want := fmt.Sprint([]string{"api_key GET rest/v1 429", "api_key GET rest/v1 404", "api_key GET rest/v1 503", "api_key GET rest/v1 200"})
	if fmt.Sprint(rec.attempts) != want {
		t.Errorf("attempts %v, want %v", rec.attempts, want)
	}
	if fmt.Sprint(rec.retries) != fmt.Sprint([]string{"api_key GET rest/v1 throttled", "api_key GET rest/v1 server_error"}) {
		t.Errorf("retries %v", rec.retries)
	}
}

func TestOperation_NamesTheAPINeverThePath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"https://api.infusionsoft.com/crm/rest/v1/contacts/12/tags": "GET rest/v1",
		"https://api.infusionsoft.com/crm/rest/v2/contacts":         "GET rest/v2",
		"https://api.infusionsoft.com/crm/xmlrpc/v1":                "GET xmlrpc",
		"https://ab123.infusionsoft.com/api/xmlrpc":                 "GET xmlrpc",
		"https://api.infusionsoft.com/token":                        "GET other",
	} {
		req, _ := http.NewRequest("GET", path, nil)
		if got := operation(req); got != want {
			t.Errorf("operation(%s) = %q, want %q", path, got, want)
		}
	}
	req, _ := http.NewRequest("PROPFIND", "https://api.infusionsoft.com/crm/rest/v1/x", nil)
	if got := operation(req); got != "OTHER rest/v1" {
		t.Errorf("an unusual method: %q", got)
	}
}

// Do sets connectord's trace on the request it sends, over the caller's
// (the wire is checked end to end in cmd/connectord's trace test).
func TestDo_SendsTheContextsTraceToKeap(t *testing.T) {
	t.Parallel()
	_, c, tg := setup(t, Options{})
	tc := trace.New()
	req, _ := http.NewRequestWithContext(trace.With(t.Context(), tc), "GET", tg.RESTBase+"/contacts", nil)
	req.Header.Set("traceparent", "00-11111111111111111111111111111111-2222222222222222-01") // the caller's, passed through the proxy
	resp, err := c.Do(req.Context(), tg, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := req.Header.Get("traceparent"); got != tc.String() {
		t.Fatalf("Keap was sent traceparent %q, want connectord's %q", got, tc.String())
	}
}
