package main

import (
	"bufio"
	"net/http"
	"strings"
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
