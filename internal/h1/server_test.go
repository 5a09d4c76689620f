package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// start serves h on a loopback port and returns its address; the server
// stops at the end of the test.
func start(t *testing.T, h http.Handler, tune ...func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	for _, f := range tune {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// exchange sends raw on a new connection and returns everything the server
// sends until it closes the connection or goes quiet for 500 ms.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

// readResponses parses n answers to requests with method from s.
func readResponses(t *testing.T, s string, method string, n int) []*http.Response {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(s))
	var out []*http.Response
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer %d of %d: %v in %q", i+1, n, err, s)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("answer %d body: %v", i+1, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

func bodyOf(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServer_SmallAnswerGoesOutWithItsLength(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello, ")
		_, _ = io.WriteString(w, "world")
	}))
	raw := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp := readResponses(t, raw, "GET", 1)[0]
	if resp.StatusCode != 200 || resp.ContentLength != 12 || len(resp.TransferEncoding) != 0 {
		t.Fatalf("status %d, length %d, transfer encoding %v; want 200 with Content-Length 12:\n%s", resp.StatusCode, resp.ContentLength, resp.TransferEncoding, raw)
	}
	if got := bodyOf(t, resp); got != "hello, world" {
		t.Fatalf("body %q", got)
	}
	if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("want a Date and a sniffed Content-Type, got %v", resp.Header)
	}
}

func TestServer_LongOrFlushedAnswerIsChunkedAndStreams(t *testing.T) {
	release := make(chan struct{})
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "first part")
		http.NewResponseController(w).Flush()
		<-release
		_, _ = w.Write(bytes.Repeat([]byte("z"), 3*maxPending))
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("transfer encoding %v, want chunked", resp.TransferEncoding)
	}
	// The flushed part arrives while the handler still waits.
	first := make([]byte, len("first part"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first part" {
		t.Fatalf("first part before the rest: %q, %v", first, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 3*maxPending {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
}

func TestServer_DeclaredLengthIsKeptAndHeld(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		if _, err := io.WriteString(w, "abc"); err != nil {
			t.Errorf("write: %v", err)
		}
		if _, err := io.WriteString(w, "d"); !errors.Is(err, http.ErrContentLength) {
			t.Errorf("writing past the declared length: %v, want http.ErrContentLength", err)
		}
	}))
	raw := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	rs := readResponses(t, raw, "GET", 2)
	for _, r := range rs {
		if r.ContentLength != 3 || bodyOf(t, r) != "abc" {
			t.Fatalf("want two answers of abc with Content-Length 3, got:\n%s", raw)
		}
	}
}

func TestServer_ShortDeclaredAnswerClosesTheConnection(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "abc")
	}))
	raw := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if strings.Count(raw, "HTTP/1.1 200") != 1 || !strings.HasSuffix(raw, "\r\n\r\nabc") {
		t.Fatalf("want one answer cut at abc and the connection closed, got %q", raw)
	}
}

func TestServer_KeepAliveAndPipelinedRequestsAnswerInOrder(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	raw := exchange(t, addr, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	rs := readResponses(t, raw, "GET", 3)
	for i, want := range []string{"/one", "/two", "/three"} {
		if got := bodyOf(t, rs[i]); got != want {
			t.Fatalf("answer %d: %q, want %q", i+1, got, want)
		}
	}
	if !rs[2].Close {
		t.Fatalf("the answer to Connection: close must say Connection: close: %v", rs[2].Header)
	}
}

func TestServer_HeadSendsNoBodyButItsLength(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "twelve bytes")
	}))
	raw := exchange(t, addr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	rs := readResponses(t, raw, "HEAD", 1)
	if rs[0].ContentLength != 12 {
		t.Fatalf("HEAD: Content-Length %d, want 12:\n%s", rs[0].ContentLength, raw)
	}
	_, after, _ := strings.Cut(raw, "\r\n\r\n")
	if !strings.HasPrefix(after, "HTTP/1.1 200") {
		t.Fatalf("HEAD answer carried a body, or the next answer is missing: %q", after)
	}
}

func TestServer_NoContentAndNotModifiedCarryNoBody(t *testing.T) {
	for _, code := range []int{http.StatusNoContent, http.StatusNotModified} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
				if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
					t.Errorf("write after %d: %v, want http.ErrBodyNotAllowed", code, err)
				}
			}))
			raw := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if strings.Count(raw, fmt.Sprintf("HTTP/1.1 %d", code)) != 2 || strings.Contains(raw, "Content-Length") || strings.Contains(raw, "chunked") {
				t.Fatalf("want two bare %d answers, got %q", code, raw)
			}
		})
	}
}

func TestServer_TrailersFollowAChunkedBody(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := bodyOf(t, resp); got != "body" {
		t.Fatalf("body %q", got)
	}
	if resp.Trailer.Get("X-Checksum") != "abc" || resp.Trailer.Get("X-Late") != "late" {
		t.Fatalf("trailers %v, want X-Checksum: abc and X-Late: late", resp.Trailer)
	}
	if resp.Header.Get("X-Late") != "" || resp.Header.Get(http.TrailerPrefix+"X-Late") != "" {
		t.Fatalf("a trailer leaked into the headers: %v", resp.Header)
	}
}

func TestServer_ExpectContinueIsAnsweredWhenTheBodyIsRead(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		_, _ = w.Write(bytes.ToUpper(b))
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("want 100 Continue before the body is sent, got %q, %v", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue not ended by a blank line: %q", blank)
	}
	_, _ = io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	if got := bodyOf(t, resp); got != "HELLO" {
		t.Fatalf("body %q, want HELLO", got)
	}
}

func TestServer_ExpectContinueUnreadClosesWithoutWaitingForTheBody(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}))
	raw := exchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 413") || strings.Contains(raw, "100 Continue") || !strings.Contains(raw, "Connection: close") {
		t.Fatalf("want 413 with Connection: close and no 100 Continue, got %q", raw)
	}
}

func TestServer_UnreadBodyIsDrainedOrTheConnectionClosed(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ignored your body")
	}))
	small := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	raw := exchange(t, addr, small+"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if n := strings.Count(raw, "HTTP/1.1 200"); n != 2 {
		t.Fatalf("a small unread body must not cost the connection: %d answers in %q", n, raw)
	}
	big := fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 4*maxDrainBytes)
	raw = exchange(t, addr, big+strings.Repeat("x", 1000))
	if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.Contains(raw, "Connection: close") {
		t.Fatalf("a large unread body closes the connection, and the answer says so: %q", raw)
	}
}

func TestServer_ChunkedRequestBodyIsDecoded(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%d:%s", r.ContentLength, b)
	}))
	raw := exchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	rs := readResponses(t, raw, "POST", 2)
	if got := bodyOf(t, rs[0]); got != "-1:abcde" {
		t.Fatalf("body %q, want -1:abcde", got)
	}
}

func TestServer_RefusesMalformedRequestsNamingTheProblem(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the handler must not see %s %s", r.Method, r.URL)
	}), func(s *Server) { s.MaxHeaderBytes = 1 << 10 })
	for _, tc := range []struct {
		name, raw string
		status    int
		says      string
	}{
		{"garbage", "HELLO\r\n\r\n", 400, "malformed HTTP request"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "malformed Host header"},
		{"bad header line", "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "malformed"},
		{"HTTP/2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "unsupported protocol version"},
		{"huge headers", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 8<<10) + "\r\n\r\n", 431, "larger than 1024 bytes"},
		{"gzip request body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported transfer encoding"},
		{"odd expectation", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\nx", 417, "100-continue"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400, "Content-Length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := exchange(t, addr, tc.raw)
			rs := readResponses(t, raw, "GET", 1)
			if rs[0].StatusCode != tc.status || !strings.Contains(bodyOf(t, rs[0]), tc.says) || !rs[0].Close {
				t.Fatalf("want %d naming %q and Connection: close, got %q", tc.status, tc.says, raw)
			}
		})
	}
}

func TestServer_HTTP10GetsAnHTTP10Answer(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "a")
		http.NewResponseController(w).Flush() // length unknown: the body ends with the connection
		_, _ = io.WriteString(w, "b")
	}))
	raw := exchange(t, addr, "GET / HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.0 200") || strings.Contains(raw, "chunked") || !strings.HasSuffix(raw, "\r\n\r\nab") {
		t.Fatalf("want an HTTP/1.0 answer, unchunked, ended by the close: %q", raw)
	}
	raw = exchange(t, addr, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.0 200") || !strings.HasSuffix(raw, "ab") {
		t.Fatalf("HTTP/1.0 keep-alive with an unknown length still closes: %q", raw)
	}
}

func TestServer_PanicsBreakOffTheAnswerAndAreLogged(t *testing.T) {
	var logs syncBuffer
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("p"), 2*maxPending))
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	}), func(s *Server) { s.Log = zerolog.New(&logs) })
	for _, path := range []string{"/abort", "/boom"} {
		resp, err := http.Get("http://" + addr + path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Fatalf("%s: the client must see the answer broken off", path)
		}
	}
	if got := logs.String(); strings.Count(got, "panic serving a request") != 1 || !strings.Contains(got, "boom") {
		t.Fatalf("want the one non-abort panic logged, got %q", got)
	}
}

func TestServer_HeaderValuesCannotStartAnotherHeader(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/a\r\nX-Evil: 1")
		w.Header()["Bad Name"] = []string{"v"}
		w.WriteHeader(http.StatusFound)
	}))
	raw := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	rs := readResponses(t, raw, "GET", 1)
	if rs[0].Header.Get("X-Evil") != "" || rs[0].Header.Get("Location") != "/a  X-Evil: 1" || strings.Contains(raw, "Bad Name") {
		t.Fatalf("header injection or an invalid name got through: %q", raw)
	}
}

func TestServer_ContextIsBaseContext(t *testing.T) {
	type key struct{}
	got := make(chan context.Context, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Context()
		if r.RemoteAddr == "" {
			t.Error("RemoteAddr is empty")
		}
	}), func(s *Server) { s.BaseContext = context.WithValue(context.Background(), key{}, "base") })
	exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	ctx := <-got
	if ctx.Value(key{}) != "base" {
		t.Fatal("the request's context does not carry BaseContext's values")
	}
	if ctx.Done() != nil {
		t.Fatal("the request's context is BaseContext, which cannot be cancelled")
	}
}

func TestServer_IdleAndSlowHeaderConnectionsAreClosed(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server) {
		s.IdleTimeout = 100 * time.Millisecond
		s.ReadHeaderTimeout = 100 * time.Millisecond
	})
	for name, raw := range map[string]string{
		"idle after an answer": "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"headers never ended":  "GET / HTTP/1.1\r\nHost: x\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, raw)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = io.ReadAll(c)
		c.Close()
		if err != nil || time.Since(start) > 4*time.Second {
			t.Fatalf("%s: want the server to close the connection soon, got %v after %v", name, err, time.Since(start))
		}
	}
}

func TestServer_ShutdownClosesIdleConnectionsAndWaitsForActiveOnes(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the idle connection must be closed by Shutdown: %d bytes, %v", n, err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request under way", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("new connections must be refused once Shutdown began")
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil || bodyOf(t, resp) != "done" || !resp.Close {
		t.Fatalf("the request under way must finish, with Connection: close: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestServer_AnswersAsNetHTTPDoes runs the same handlers under net/http's
// server and this one and compares what a client sees.
func TestServer_AnswersAsNetHTTPDoes(t *testing.T) {
	handlers := map[string]http.HandlerFunc{
		"/small": func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>hi</html>") },
		"/json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"a":1}`)
		},
		"/large":    func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bytes.Repeat([]byte("L"), 100<<10)) },
		"/empty":    func(w http.ResponseWriter, r *http.Request) {},
		"/error":    func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusTeapot) },
		"/redirect": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/small", http.StatusFound) },
		"/status":   func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) },
		"/echo": func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "%s %s %q %s", r.Method, r.URL.RequestURI(), r.Header.Get("X-In"), b)
		},
	}
	mux := http.NewServeMux()
	for p, h := range handlers {
		mux.Handle(p, h)
	}
	ref := httptest.NewServer(mux)
	defer ref.Close()
	_, addr := start(t, mux)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for p := range handlers {
		for _, method := range []string{"GET", "HEAD", "POST"} {
			answer := func(base string) (int, string, http.Header) {
				req, _ := http.NewRequest(method, base+p+"?q=1", strings.NewReader("in"))
				req.Header.Set("X-In", "x")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s at %s: %v", method, p, base, err)
				}
				defer resp.Body.Close()
				return resp.StatusCode, bodyOf(t, resp), resp.Header
			}
			ws, wb, wh := answer(ref.URL)
			gs, gb, gh := answer("http://" + addr)
			if gs != ws || gb != wb {
				t.Errorf("%s %s: got %d %q, net/http gives %d %q", method, p, gs, gb, ws, wb)
			}
			for _, k := range []string{"Content-Type", "Content-Length", "Location", "X-Content-Type-Options"} {
				if gh.Get(k) != wh.Get(k) {
					t.Errorf("%s %s: %s %q, net/http gives %q", method, p, k, gh.Get(k), wh.Get(k))
				}
			}
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FuzzServer_RawRequest sends arbitrary bytes as requests: the server must
// neither panic nor hang, and whatever it sends back must be well-formed
// HTTP answers, its refusals naming the problem.
func FuzzServer_RawRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"GET http://example.test/abs HTTP/1.1\r\nHost: other\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %d", r.URL.Path, len(b))
	}), ReadHeaderTimeout: time.Second, IdleTimeout: time.Second}
	go func() { _ = s.Serve(ln) }()
	f.Cleanup(func() { _ = s.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write(in)
		_ = c.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading the answers: %v (input %q)", err, in)
		}
		if bytes.Contains(bytes.ToUpper(in), []byte("HEAD")) || bytes.Contains(in, []byte("100-continue")) {
			return // answers without bodies or interim answers: framing is checked by the unit tests
		}
		br := bufio.NewReader(bytes.NewReader(out))
		for br.Buffered() > 0 || len(out) > 0 {
			if _, err := br.Peek(1); err != nil {
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("not an HTTP answer: %v in %q (input %q)", err, out, in)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("answer body: %v in %q (input %q)", err, out, in)
			}
			if resp.StatusCode >= 400 && !bytes.Contains(body, []byte(`"message"`)) {
				t.Fatalf("refusal %d without a message: %q (input %q)", resp.StatusCode, body, in)
			}
		}
	})
}

func TestServer_RefusedLargeBodyStillReachesTheClientAsAnAnswer(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge) // without reading the body
	}))
	for i := 0; i < 3; i++ {
		resp, err := http.Post("http://"+addr+"/", "text/plain", bytes.NewReader(make([]byte, 8<<20)))
		if err != nil {
			t.Fatalf("attempt %d: the client must get the 413, not %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
}
