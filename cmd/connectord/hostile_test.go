package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// These tests play the hostile callers and the misbehaving Keap of issue 10
// against the binary's run, over real TCP on loopback: each must be refused,
// cut off within a bounded time, or cost nothing.

// rawKeap is Keap at the byte level: a TCP server that reads requests with
// Go's parser and writes whatever answer returns, byte for byte, so that a
// test can send what no HTTP server library would (an extra answer nobody
// asked for, a megabyte of header). What follows "\x00later:" in an answer
// is written 100ms after the rest.
type rawKeap struct {
	URL    string
	ln     net.Listener
	answer func(req *http.Request) string
	conns  atomic.Int64 // connections accepted
}

func newRawKeap(t *testing.T, answer func(req *http.Request) string) *rawKeap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &rawKeap{URL: "http://" + ln.Addr().String(), ln: ln, answer: answer}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			k.conns.Add(1)
			go k.serve(c)
		}
	}()
	return k
}

func (k *rawKeap) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		now, later, _ := strings.Cut(k.answer(req), "\x00later:")
		if _, err := io.WriteString(c, now); err != nil {
			return
		}
		if later != "" {
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(c, later); err != nil {
				return
			}
		}
	}
}

// jsonAnswer is a complete HTTP/1.1 answer with a JSON body.
func jsonAnswer(status int, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// keyedServer starts connectord with Keap's API at apiURL (the OAuth
// endpoints at an ordinary fake) and env's extra variables, and provisions a
// service-account-key instance in each of n organizations; it returns their
// Authorization headers for /proxy and /hubs.
func keyedServer(t *testing.T, apiURL string, env map[string]string, n int) (*server, []string) {
	t.Helper()
	k := newKeap(t, fakekeap.Options{})
	e := baseEnv(t, testdb.New(t), k)
	e["CONNECTORD_INFUSIONSOFT_API_URL"] = apiURL
	e["CONNECTORD_LOG_LEVEL"] = "info"
	for name, v := range env {
		e[name] = v
	}
	s := startServerWith(t, e, k, nil)
	var auths []string
	for i := range n {
		o := s.createOrg(fmt.Sprintf("Org %d", i), fmt.Sprintf("dev%d@org.test", i))
		r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
		if r.Status != 200 {
			t.Fatalf("provision: %d %s", r.Status, r.Body)
		}
		auths = append(auths, "User "+o.User.Secret+", Element "+r.JSON(t)["token"].(string))
	}
	return s, auths
}

// get sends GET path to s with auth, with a bound on the whole exchange.
func get(t *testing.T, s *server, path, auth string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	req.Header.Set("Authorization", auth)
	return s.send(req, nil)
}

// Keap (or something in front of it) sends a second answer nobody asked for
// behind the first: right behind it, or a moment later. The connection it
// came on is dropped, not reused: no caller, of any organization, ever gets
// another call's answer, and the pool is not shifted by one.
//
// (Calls are a moment apart: HTTP/1.1 cannot tell an extra answer that
// arrives while a request is outstanding from that request's answer, so no
// client can refuse those; net/http's Transport refuses every one that
// arrives while the connection is idle, which the custom client did not.
// Over HTTPS connectord speaks HTTP/2 where Keap offers it, whose framed
// streams rule the attack out.)
func TestProxy_UnsolicitedAnswersFromKeapNeverReachTheNextCaller(t *testing.T) {
	t.Parallel()
	const unsolicited = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{\"for\":\"attacker\"}\n"
	var calls atomic.Int64
	keap := newRawKeap(t, func(req *http.Request) string {
		if strings.HasSuffix(req.URL.Path, "/account/profile") {
			return jsonAnswer(200, `{}`)
		}
		if calls.Add(1)%2 == 0 {
			return jsonAnswer(200, fmt.Sprintf(`{"for":%q}`, req.URL.Query().Get("caller"))) + unsolicited
		}
		return jsonAnswer(200, fmt.Sprintf(`{"for":%q}`, req.URL.Query().Get("caller"))) + "\x00later:" + unsolicited
	})
	s, auths := keyedServer(t, keap.URL, nil, 2)
	before := keap.conns.Load()
	const n = 16
	for i := range n {
		caller := fmt.Sprintf("org%d-call%d", i%2, i)
		r := get(t, s, "/proxy/crm/rest/v1/contacts?caller="+caller, auths[i%2])
		if r.Status != 200 || string(r.Body) != fmt.Sprintf(`{"for":%q}`, caller) {
			t.Fatalf("call %d got %d %s, want its own answer", i, r.Status, r.Body)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The first call may reuse the clean connection the key check left.
	if got := keap.conns.Load() - before; got < n-1 {
		t.Errorf("Keap saw %d connections for %d calls that each left an answer behind: some were reused", got, n)
	}
}

// A header name with a space before the colon is how request smuggling
// starts; it is refused with 400 and never reaches Keap.
func TestServer_HeaderNameWithSpaceIsRefusedAndNeverForwarded(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)
	before := f.wire.count()
	addr := strings.TrimPrefix(f.URL, "http://")
	for _, raw := range []string{
		"POST /proxy/crm/rest/v1/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: " + f.sakAuth + "\r\nContent-Length : 5\r\n\r\nhello",
		"GET /proxy/crm/rest/v1/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: " + f.sakAuth + "\r\nX-Keap Smuggled: 1\r\n\r\n",
	} {
		status := rawExchange(t, addr, raw)
		if !strings.Contains(status, " 400 ") {
			t.Errorf("%q answered %q, want 400", strings.SplitN(raw, "\r\n", 4)[2:], status)
		}
	}
	if got := f.wire.since(before); len(got) != 0 {
		t.Errorf("Keap received %d requests; want none: %+v", len(got), got)
	}
}

// rawExchange writes raw on a new connection and returns the answer's status line.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return strings.TrimSpace(line)
}

// halfSend opens a connection, sends head and then part of a body of length
// total, and keeps it open. It returns the connection.
func halfSend(t *testing.T, addr, head string, sent, total int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, _ = fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n", head, total)
		_, _ = c.Write(make([]byte, sent))
	}()
	return c
}

// readUntilClosed reads c until the server closes it and returns the status
// line it answered (empty for none) and how long that took from start.
func readUntilClosed(c net.Conn, start time.Time, bound time.Duration) (string, time.Duration, error) {
	_ = c.SetReadDeadline(start.Add(bound))
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	_, err := io.Copy(io.Discard, br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return strings.TrimSpace(line), time.Since(start), err
	}
	return strings.TrimSpace(line), time.Since(start), nil
}

// The hook receiver is open to anyone: with a wrong secret it answers 404
// before the body has arrived (it is never read), and a hundred half-sent
// 1 MiB bodies cost no memory to speak of. On an authenticated route a body
// sent in part, or a trickle, is cut off with 408 once
// CONNECTORD_BODY_READ_TIMEOUT has passed.
func TestServer_HalfSentAndSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_BODY_READ_TIMEOUT"] = "1s"
	env["CONNECTORD_LOG_LEVEL"] = "info"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	addr := strings.TrimPrefix(s.URL, "http://")

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	const conns = 100
	results := make(chan string, conns)
	for range conns {
		c := halfSend(t, addr, "POST /events/keap/not-a-hook-secret HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", 512<<10, 1<<20)
		go func() {
			line, took, err := readUntilClosed(c, start, 10*time.Second)
			results <- fmt.Sprintf("%s|%v|%v", line, took.Round(time.Millisecond), err)
		}()
	}
	for range conns {
		got := <-results
		if !strings.HasPrefix(got, "HTTP/1.1 404 ") || !strings.HasSuffix(got, "|<nil>") {
			t.Fatalf("half-sent body to the hook receiver: %s; want 404 and the connection closed", got)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 20<<20 {
		t.Errorf("the heap grew by %d MB over %d half-sent 1 MiB bodies to the hook receiver; they should not be read", grown>>20, conns)
	}

	for name, trickle := range map[string]bool{"half-sent": false, "trickled": true} {
		head := "POST /instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: " + o.auth() + "\r\n"
		start := time.Now()
		var c net.Conn
		if trickle {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				_, _ = fmt.Fprintf(c, "%sContent-Length: 1000\r\n\r\n", head)
				for range 100 {
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
		} else {
			c = halfSend(t, addr, head, 500, 1000)
		}
		line, took, err := readUntilClosed(c, start, 10*time.Second)
		if !strings.HasPrefix(line, "HTTP/1.1 408 ") || err != nil || took > 5*time.Second {
			t.Errorf("%s body: %q after %v (%v); want 408 and the connection closed after about 1s", name, line, took, err)
		}
	}
}

// A caller that asks for a large answer and never reads it holds its
// connection only until the write time-out; the call to Keap behind it
// ends too.
func TestProxy_ACallerThatNeverReadsIsCutOff(t *testing.T) {
	t.Parallel()
	var upstreamGaveUp atomic.Int64
	big := strings.Repeat("x", 64<<10)
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/account/profile") {
			_, _ = io.WriteString(w, "{}")
			return
		}
		for range 1024 { // 64 MiB, far more than the sockets between hold
			if _, err := io.WriteString(w, big); err != nil {
				upstreamGaveUp.Add(1)
				return
			}
		}
	}))
	t.Cleanup(keap.Close)
	s, auths := keyedServer(t, keap.URL, map[string]string{"CONNECTORD_KEAP_TIMEOUT": "1s", "CONNECTORD_WRITE_TIMEOUT": "2s"}, 1)
	addr := strings.TrimPrefix(s.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = fmt.Fprintf(c, "GET /proxy/crm/rest/v1/files/big HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", auths[0])
	deadline := time.Now().Add(15 * time.Second)
	for upstreamGaveUp.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if upstreamGaveUp.Load() == 0 {
		t.Fatalf("the call to Keap was still being answered %v after a caller that reads nothing asked for it", time.Since(start))
	}
	// Only now does the caller read: the answer is cut short and the connection closed.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open %v later (%d bytes read)", time.Since(start), n)
	}
	if n >= 64<<20 {
		t.Errorf("the whole answer (%d bytes) was held for a caller that did not read", n)
	}
	if took := time.Since(start); took > 12*time.Second {
		t.Errorf("cut off after %v", took)
	}
}

// Thousands of idle connections, kept alive after a request or never used,
// leave /healthz answering at once. Past CONNECTORD_MAX_CONNECTIONS new
// connections wait, and connections that send nothing are closed after
// CONNECTORD_READ_HEADER_TIMEOUT, which frees their places.
func TestServer_IdleConnectionsAndTheConnectionCap(t *testing.T) {
	t.Parallel()
	t.Run("thousands idle", func(t *testing.T) {
		t.Parallel()
		s := startServer(t)
		addr := strings.TrimPrefix(s.URL, "http://")
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range 2000 {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
			if i%2 == 0 { // half kept alive after a request, half never used
				_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			}
		}
		for i, c := range conns {
			if i%2 == 0 {
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("request on connection %d: %v", i, err)
				}
			}
		}
		start := time.Now()
		r := get(t, s, "/healthz", "")
		if r.Status != 200 || time.Since(start) > 2*time.Second {
			t.Errorf("/healthz with 2000 idle connections: %d after %v", r.Status, time.Since(start))
		}
	})
	t.Run("cap", func(t *testing.T) {
		t.Parallel()
		k := newKeap(t, fakekeap.Options{})
		env := baseEnv(t, testdb.New(t), k)
		env["CONNECTORD_MAX_CONNECTIONS"] = "20"
		env["CONNECTORD_READ_HEADER_TIMEOUT"] = "1s"
		s := startServerWith(t, env, k, nil)
		addr := strings.TrimPrefix(s.URL, "http://")
		for range 20 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		start := time.Now()
		r := get(t, s, "/healthz", "")
		took := time.Since(start)
		if r.Status != 200 || took < 500*time.Millisecond || took > 5*time.Second {
			t.Errorf("/healthz behind 20 silent connections at a cap of 20: %d after %v; want 200 once they are closed after about 1s", r.Status, took)
		}
	})
}

// A caller that hangs up cancels its call to Keap: Keap sees the request
// go away, and the log shows a quiet 499, not a 502 or an error.
func TestProxy_ACallerThatHangsUpCancelsItsKeapCall(t *testing.T) {
	t.Parallel()
	arrived, cancelled := make(chan struct{}, 1), make(chan time.Time, 1)
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/account/profile") {
			_, _ = io.WriteString(w, "{}")
			return
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- time.Now()
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(keap.Close)
	s, auths := keyedServer(t, keap.URL, nil, 1)
	for _, path := range []string{"/proxy/crm/rest/v1/contacts", "/hubs/crm/contacts"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
		req.Header.Set("Authorization", auths[0])
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never reached Keap", path)
		}
		hungUp := time.Now()
		cancel()
		<-done
		select {
		case at := <-cancelled:
			if d := at.Sub(hungUp); d > 2*time.Second {
				t.Errorf("%s: Keap saw the cancellation %v after the caller hung up", path, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Keap's request was still open 10s after its caller hung up", path)
		}
	}
	// Both requests are logged as 499 at info; nothing at warn or error.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var closed int
		var loud []string
		for _, line := range s.logs.Lines() {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if m["message"] == "request" && m["status"] == float64(499) && m["level"] == "info" {
				closed++
			}
			if m["level"] == "warn" || m["level"] == "error" {
				loud = append(loud, line)
			}
		}
		if len(loud) > 0 {
			t.Fatalf("a hang-up was logged loudly:\n%s", strings.Join(loud, "\n"))
		}
		if closed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want two request lines with status 499; logs:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A Keap edge that accepts TCP and then says nothing during the TLS
// handshake fails the call after CONNECTORD_KEAP_TLS_HANDSHAKE_TIMEOUT with
// 504, instead of hanging it. The key check at provisioning is such a call,
// through the same client as the proxy's and the hubs'.
func TestKeapCall_SilentTLSEdgeIsBoundedByTheHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	t.Cleanup(func() { ln.Close(); held.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held.Add(1)
			go func() { // hold it, silent, until the other side gives up
				defer held.Done()
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_INFUSIONSOFT_API_URL"] = "https://" + ln.Addr().String()
	env["CONNECTORD_KEAP_TLS_HANDSHAKE_TIMEOUT"] = "500ms"
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	start := time.Now()
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	took := time.Since(start)
	if r.Status != http.StatusGatewayTimeout || took > 5*time.Second {
		t.Errorf("provisioning against a silent TLS edge: %d after %v: %s; want 504 after about 0.5s", r.Status, took, r.Body)
	}
}

// An answer whose header runs to a megabyte is cut off: the caller gets
// connectord's 502, not the header.
func TestProxy_HugeHeaderFromKeapIsCutOff(t *testing.T) {
	t.Parallel()
	keap := newRawKeap(t, func(req *http.Request) string {
		if strings.HasSuffix(req.URL.Path, "/account/profile") {
			return jsonAnswer(200, `{}`)
		}
		return "HTTP/1.1 200 OK\r\nX-Huge: " + strings.Repeat("h", 1<<20) + "\r\nContent-Length: 2\r\n\r\n{}"
	})
	s, auths := keyedServer(t, keap.URL, nil, 1)
	r := get(t, s, "/proxy/crm/rest/v1/contacts", auths[0])
	if r.Status != http.StatusBadGateway || r.Header.Get("X-Huge") != "" || !strings.Contains(string(r.Body), "Keap") {
		t.Errorf("a 1 MiB header from Keap: %d %.200s", r.Status, r.Body)
	}
}

// A query string that is not validly escaped is a 400 naming the parameter,
// on every route, instead of being read as if it had not been sent.
func TestQuery_MalformedIsA400NamingTheParameter(t *testing.T) {
	t.Parallel()
	f := newProxyFixture(t)
	for _, tc := range []struct{ path, auth, param string }{
		{"/hubs/crm/contacts?nextPage=%%%garbage", f.sakAuth, "nextPage"},
		{"/elements/api-v2/hubs/crm/contacts?pageSize=10&nextPage=%zz", f.sakAuth, "nextPage"},
		{"/instances?tags=%%%", f.org.auth(), "tags"},
		{"/instances/" + f.sakID + "/events?status=%G0", f.org.auth(), "status"},
		{"/elements?x%=1", "", `"x%"`},
		{"/healthz?probe=%", "", "probe"},
		{"/proxy/crm/rest/v1/contacts?limit=%%%garbage", f.sakAuth, "limit"},
	} {
		before := f.wire.count()
		r := f.do("GET", tc.path, tc.auth, nil)
		if r.Status != 400 || !strings.Contains(r.JSON(t)["message"].(string), tc.param) {
			t.Errorf("GET %s: %d %s; want 400 naming %s", tc.path, r.Status, r.Body, tc.param)
		}
		if f.wire.count() != before {
			t.Errorf("GET %s reached Keap", tc.path)
		}
	}
	// A ; is part of a value (Keap's v2 filters), and escapes still work.
	r := f.do("GET", "/proxy/crm/rest/v1/contacts?limit=1&filter=a%3D%3Db;c%3D%3Dd", f.sakAuth, nil)
	if r.Status != 200 {
		t.Fatalf("a valid query: %d %s", r.Status, r.Body)
	}
	if seen := f.wire.since(f.wire.count() - 1); seen[0].RawQuery != "limit=1&filter=a%3D%3Db;c%3D%3Dd" {
		t.Errorf("Keap received the query %q, want it as sent", seen[0].RawQuery)
	}
}
