package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// A Keap that answers with endless headers or endless informational (1xx)
// answers is cut off: the caller gets a 502 at once, not a hang until the
// time-out nor a process that buffers whatever Keap sends.
func TestUpstream_HugeHeadersAndEndless1xxAreCutOff(t *testing.T) {
	t.Parallel()
	hostile := func(w http.ResponseWriter, r *http.Request, endless1xx bool) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		bw := bufio.NewWriterSize(buf, 64<<10)
		if endless1xx {
			for i := 0; i < 100_000; i++ { // bounded: connectord must stop reading long before
				if _, err := bw.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"); err != nil {
					return
				}
			}
		} else {
			_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
			line := "X-Padding: " + strings.Repeat("a", 8000) + "\r\n"
			for i := 0; i < 1000; i++ { // 8 MB of headers
				if _, err := bw.WriteString(line); err != nil {
					return
				}
			}
			_, _ = bw.WriteString("Content-Length: 2\r\n\r\n{}")
		}
		_ = bw.Flush()
	}
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/contacts/666"):
				hostile(w, r, false)
			case strings.HasSuffix(r.URL.Path, "/contacts/777"):
				hostile(w, r, true)
			default:
				h.ServeHTTP(w, r)
			}
		})
	})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	auth := "User " + o.User.Secret + ", Element " + r.JSON(t)["token"].(string)
	for _, path := range []string{"/proxy/crm/rest/v1/contacts/666", "/proxy/crm/rest/v1/contacts/777", "/hubs/crm/contacts/666", "/hubs/crm/contacts/777"} {
		start := time.Now()
		r := s.do("GET", path, auth, nil)
		if took := time.Since(start); r.Status != 502 || took > 10*time.Second {
			t.Errorf("GET %s: %d after %v, want a 502 at once: %.300s", path, r.Status, took, r.Body)
		}
	}
}

// Event hook registration carries the instance's key: a 307 from Keap's
// POST /hooks is not followed to the host in its Location, and no hook is
// taken as registered on that host's word.
func TestHooks_RegistrationRedirectIsNotFollowedWithTheKey(t *testing.T) {
	t.Parallel()
	var leaked, calls atomic.Int64
	third := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if strings.Contains(r.Header.Get("X-Keap-API-Key")+r.Header.Get("Authorization"), testServiceKey) {
			leaked.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"key":"1","eventKey":"company.add","hookUrl":"x","status":"Verified"}`)
	}))
	defer third.Close()
	k := newKeapWrapped(t, fakekeap.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/crm/rest/v1/hooks") {
				http.Redirect(w, r, third.URL+r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	env := eventsEnv(t, k)
	env["CONNECTORD_HOOK_CHECK_INTERVAL"] = "200ms"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	body := apiKeyBody("infusionsoftcrm", testServiceKey, "")
	for key, v := range map[string]any{"event.notification.enabled": true, "event.notification.callback.url": "http://127.0.0.1:9/cb", "event.objects": "companies"} {
		body["configuration"].(map[string]any)[key] = v
	}
	r := s.do("POST", "/instances", o.auth(), body)
	if r.Status != 200 {
		t.Fatalf("provision: %d %s", r.Status, r.Body)
	}
	id := fmt.Sprint(r.JSON(t)["id"])
	time.Sleep(1500 * time.Millisecond) // several reconciler rounds
	if leaked.Load() > 0 || calls.Load() > 0 {
		t.Fatalf("the host in Keap's Location got %d requests, %d with the key", calls.Load(), leaked.Load())
	}
	hooks := s.do("GET", "/instances/"+id+"/events/hooks", o.auth(), nil)
	if hooks.Status != 200 || strings.Contains(string(hooks.Body), `"Verified"`) {
		t.Fatalf("hooks after a redirected registration: %d %s", hooks.Status, hooks.Body)
	}
}
