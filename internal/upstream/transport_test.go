package upstream

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/keap"
)

// countingServer is an httptest server that counts the connections it accepted.
func countingServer(t *testing.T, h http.Handler, tlsToo bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if tlsToo {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

func get(t *testing.T, c *http.Client, method, url, body string) (int, string, http.Header) {
	t.Helper()
	var rdr io.Reader
	if body != "" {
		rdr = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rdr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestTransport_AnswersOfEveryShapeKeepTheConnection(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("chunked ", 2000) // over net/http's 2 KiB, so sent chunked
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Body", string(b))
		switch r.URL.Path {
		case "/chunked":
			_, _ = io.WriteString(w, big)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/length":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		}
	}), false)
	c := &http.Client{Transport: &Transport{}}
	for i := range 3 {
		if st, b, _ := get(t, c, "GET", srv.URL+"/chunked", ""); st != 200 || b != big {
			t.Fatalf("chunked: %d, %d bytes", st, len(b))
		}
		if st, b, _ := get(t, c, "GET", srv.URL+"/length", ""); st != 200 || b != "hello" {
			t.Fatalf("length: %d %q", st, b)
		}
		if st, b, _ := get(t, c, "DELETE", srv.URL+"/empty", ""); st != 204 || b != "" {
			t.Fatalf("no content: %d %q", st, b)
		}
		if st, b, h := get(t, c, "HEAD", srv.URL+"/length", ""); st != 200 || b != "" || h.Get("X-Method") != "HEAD" {
			t.Fatalf("HEAD: %d %q %v", st, b, h)
		}
		if st, _, h := get(t, c, "POST", srv.URL+"/length", `{"n":1}`); st != 200 || h.Get("X-Body") != `{"n":1}` {
			t.Fatalf("POST: %d %v", st, h)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/trailer", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "body" || resp.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("trailer: %q %v", b, resp.Trailer)
		}
		if n := conns.Load(); n != 1 {
			t.Fatalf("round %d: %d connections, want the one kept alive", i, n)
		}
	}
}

func TestTransport_ServerClosingIdleConnectionsIsNotAnError(t *testing.T) {
	t.Parallel()
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}), false)
	c := &http.Client{Transport: &Transport{}}
	for i := range 3 {
		// POST is not sent twice, so the dead connection must be found
		// before the request goes out on it.
		if st, b, _ := get(t, c, "POST", srv.URL, "call "+string(rune('a'+i))); st != 200 || b != "call "+string(rune('a'+i)) {
			t.Fatalf("POST %d: %d %q", i, st, b)
		}
		if st, _, _ := get(t, c, "GET", srv.URL, ""); st != 200 {
			t.Fatalf("GET %d: %d", i, st)
		}
		srv.CloseClientConnections()
		time.Sleep(20 * time.Millisecond) // the close reaches the client's socket
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want one per round", n)
	}
}

func TestTransport_ClosedOrUnfinishedAnswersDoNotReuseTheConnection(t *testing.T) {
	t.Parallel()
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 10000))
	}), false)
	c := &http.Client{Transport: &Transport{}}
	get(t, c, "GET", srv.URL+"/close", "")
	resp, err := c.Get(srv.URL + "/unread")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = resp.Body.Read(make([]byte, 10))
	resp.Body.Close() // most of the body unread: the connection cannot carry another answer
	if _, err := resp.Body.Read(make([]byte, 10)); err == nil {
		t.Fatal("a closed body still reads")
	}
	if st, b, _ := get(t, c, "GET", srv.URL+"/", ""); st != 200 || len(b) != 10000 {
		t.Fatalf("after: %d, %d bytes", st, len(b))
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3: none of the first two could be reused", n)
	}
}

func TestTransport_AnswerEndingWithTheConnection(t *testing.T) {
	t.Parallel()
	// An HTTP/1.0 answer without a length: its body ends when the server closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = http.ReadRequest(bufio.NewReader(nc))
			_, _ = io.WriteString(nc, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
			nc.Close()
		}
	}()
	c := &http.Client{Transport: &Transport{}}
	for range 2 {
		if st, b, _ := get(t, c, "GET", "http://"+ln.Addr().String()+"/", ""); st != 200 || b != "until the end" {
			t.Fatalf("%d %q", st, b)
		}
	}
}

func TestTransport_TLSKeepsTheConnectionAndSpeaksHTTP11(t *testing.T) {
	t.Parallel()
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}), true)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := &http.Client{Transport: &Transport{TLS: &tls.Config{RootCAs: roots}}}
	for range 3 {
		if st, b, _ := get(t, c, "GET", srv.URL+"/", ""); st != 200 || b != "HTTP/1.1" {
			t.Fatalf("%d %q", st, b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	// A server whose certificate is not trusted is refused.
	if _, err := (&http.Client{Transport: &Transport{}}).Get(srv.URL); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

func TestTransport_TimeoutIsATimeoutAndCancelStopsTheWait(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), false)
	c := &http.Client{Transport: &Transport{Timeout: 100 * time.Millisecond}}
	for _, path := range []string{"/slow", "/slow-body"} {
		start := time.Now()
		resp, err := c.Get(srv.URL + path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: %v after %v, want a time-out", path, err, time.Since(start))
		}
		if got := apperr.CodeOf(keap.TransportError("calling Keap", err)); got != apperr.ProviderTimeout {
			t.Fatalf("%s: %v is %s, want %s", path, err, got, apperr.ProviderTimeout)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow", nil)
	_, err := (&http.Client{Transport: &Transport{}}).Do(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}

func TestTransport_ConcurrentCallers(t *testing.T) {
	t.Parallel()
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Query().Get("n"))
	}), false)
	c := &http.Client{Transport: &Transport{MaxIdlePerHost: 4}}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				want := string(rune('A'+g)) + string(rune('a'+i%26))
				req, _ := http.NewRequest("GET", srv.URL+"/?n="+want, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != want {
					t.Errorf("got %q, want %q", b, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n < 1 || n > 16*50/2 {
		t.Fatalf("%d connections for 800 requests", n)
	}
	c.CloseIdleConnections()
}

func TestTransport_AsksForGzipAndDecompressesAsNetHTTPDoes(t *testing.T) {
	t.Parallel()
	body := strings.Repeat(`{"id":1,"given_name":"Gzip"},`, 200)
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Asked", r.Header.Get("Accept-Encoding"))
		if r.Header.Get("Accept-Encoding") != "gzip" || r.Method == http.MethodHead {
			_, _ = io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
	}), false)
	c := &http.Client{Transport: &Transport{}}
	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != body || !resp.Uncompressed || resp.Header.Get("Content-Encoding") != "" || resp.ContentLength != -1 || resp.Header.Get("X-Asked") != "gzip" {
			t.Fatalf("%d bytes, uncompressed %v, %v", len(b), resp.Uncompressed, resp.Header)
		}
		if req.Header.Get("Accept-Encoding") != "" {
			t.Fatal("the caller's request was changed")
		}
	}
	// A caller naming its own encoding gets Keap's answer as Keap sent it.
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Uncompressed || resp.Header.Get("Content-Encoding") != "gzip" || string(b) == body {
		t.Fatalf("the caller's gzip was decompressed: %v", resp.Header)
	}
	if _, _, h := get(t, c, "HEAD", srv.URL, ""); h.Get("X-Asked") != "" {
		t.Fatalf("HEAD asked for %q", h.Get("X-Asked"))
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestTransport_ConnectionsIdleTooLongAreClosed(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			<-release
		}
	}), false)
	tr := &Transport{IdleTimeout: 300 * time.Millisecond}
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 3 { // three connections at once
		wg.Go(func() { get(t, c, "GET", srv.URL+"/wait", "") })
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	idle := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.idle["http://"+strings.TrimPrefix(srv.URL, "http://")])
	}
	// One connection stays in use; the two under it age past the limit.
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		get(t, c, "GET", srv.URL+"/", "")
	}
	if n := idle(); n != 1 {
		t.Fatalf("%d idle connections kept, want the one in use", n)
	}
}
