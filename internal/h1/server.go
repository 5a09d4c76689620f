// Package h1 serves connectord's HTTP API over HTTP/1.1 (and 1.0) with any
// http.Handler, one goroutine per connection and nothing else.
//
// net/http's server starts a second goroutine for every request, reading the
// connection in the background so that it can cancel the request's context
// when the client goes away, and stops it again when the handler returns
// (a read, two deadline changes and two goroutine switches per request).
// Without that, and net/http's other per-request bookkeeping, a proxied call
// costs connectord 11–18% less CPU (bench/, docs/performance.md). This
// server parses requests with net/http's own parser (http.ReadRequest) and
// hands handlers ordinary *http.Request and http.ResponseWriter values, so
// the handlers, chi and the middleware are the same as under net/http.
//
// What it does not do, by choice: HTTP/2, TLS (connectord runs behind a
// terminating proxy or on a private network), Hijack, and cancelling
// request contexts: every request's context is BaseContext, which ends
// neither when the client disconnects (a request runs until its handler
// returns, and a handler writing to a gone client gets an error) nor when
// the handler returns (nothing in connectord leaves work behind on it, and a
// cancellable context per request costs each Keap call a registration).
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for the Server's zero fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 1 << 20
)

// maxDrainBytes is how much of a request body the handler left unread the
// server reads and throws away to keep the connection; beyond that it closes
// the connection instead (net/http's figure).
const maxDrainBytes = 256 << 10

// Server serves HTTP/1.x on the connections of the listeners given to Serve.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's line and headers, from
	// accepting the connection or from the first byte of a later request.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers; larger ones get 431.
	MaxHeaderBytes int
	// BaseContext is the parent of every request's context.
	BaseContext context.Context
	// Log receives what goes wrong outside handlers: panics and accept errors.
	Log zerolog.Logger

	closing   atomic.Bool
	dateCache atomic.Pointer[cachedDate]
	readers   sync.Pool // *bufio.Reader
	writers   sync.Pool // *bufio.Writer
	pending   sync.Pool // *[]byte of maxPending capacity
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
}

// Serve accepts connections on ln and serves each on its own goroutine until
// Shutdown or Close; it then returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	base := s.BaseContext
	if base == nil {
		base = context.Background()
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and try again,
			// as net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.Log.Error().Err(err).Dur("retry_in", backoff).Msg("accept failed")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		go c.serve(base)
	}
}

// Shutdown stops accepting connections, closes idle ones, and waits for the
// requests under way to finish (their connections then close) or for ctx to
// end, whichever is first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops accepting connections and closes every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		_ = c.nc.Close()
	}
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.listeners {
		_ = ln.Close()
	}
}

// closeIdle closes the connections waiting for a request and returns how
// many connections remain.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.nc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		_ = nc.Close()
		return nil
	}
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	c.state.Store(stateIdle)
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return DefaultReadHeaderTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return DefaultMaxHeaderBytes
}

// A connection is idle while it waits for a request, which Shutdown may
// close under it; active while it reads one and serves it; closed after.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	state  atomic.Int32
	lr     io.LimitedReader // the connection, read through it so a request's headers cannot grow without bound
	br     *bufio.Reader
	bw     *bufio.Writer
	num    [20]byte // room to format a number
	unread bool     // the connection ends with part of a request body unread
}

func (c *conn) serve(base context.Context) {
	c.lr.R = c.nc
	if br, ok := c.s.readers.Get().(*bufio.Reader); ok {
		br.Reset(&c.lr)
		c.br = br
	} else {
		c.br = bufio.NewReaderSize(&c.lr, 4<<10)
	}
	if bw, ok := c.s.writers.Get().(*bufio.Writer); ok {
		bw.Reset(c.nc)
		c.bw = bw
	} else {
		c.bw = bufio.NewWriterSize(c.nc, 4<<10)
	}
	c.lr.N = 1<<63 - 1
	defer c.close()
	wait := c.s.readHeaderTimeout() // for the first request, from the accept
	for {
		if c.br.Buffered() == 0 {
			// Idle, which Shutdown may end, until the request's first byte.
			_ = c.nc.SetReadDeadline(time.Now().Add(wait))
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		wait = c.s.idleTimeout()
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // closed by Shutdown
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout()))
		// The request line and headers may take MaxHeaderBytes and a little
		// slack, as under net/http, counting what is already buffered.
		c.lr.N = c.s.maxHeaderBytes() + 4<<10 - int64(c.br.Buffered())
		req, err := http.ReadRequest(c.br)
		tooLarge := c.lr.N <= 0
		c.lr.N = 1<<63 - 1
		if err != nil {
			c.refuse(err, tooLarge)
			return
		}
		if !c.serveRequest(base, req) {
			return
		}
		if c.s.closing.Load() || !c.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
	}
}

func (c *conn) close() {
	// What a handler that panicked or broke off had written goes out, so the
	// client sees the answer cut short rather than nothing at all.
	_ = c.bw.Flush()
	c.state.Store(stateClosed)
	if c.unread {
		c.linger()
	}
	_ = c.nc.Close()
	c.s.forget(c)
	c.br.Reset(nil)
	c.s.readers.Put(c.br)
	c.bw.Reset(nil)
	c.s.writers.Put(c.bw)
}

// linger ends a connection on which the client may still be sending a body
// the server did not read. Closing at once would make the kernel answer
// that data with a reset, which can reach the client before it has read the
// answer; instead the server says it is done sending, and reads and throws
// away what still comes, for a short while, before it closes.
func (c *conn) linger() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, lingerBytes))
}

// How long and how much a closing connection reads of what the client still sends.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 4 << 20
)

// refuse answers a request that could not be read, when there is anyone to
// answer, and the connection then closes.
func (c *conn) refuse(err error, tooLarge bool) {
	var ne net.Error
	switch {
	case tooLarge:
		c.writeRefusal(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("the request line and headers are larger than %d bytes: send fewer or shorter headers", c.s.maxHeaderBytes()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		// The client closed the connection, between requests or halfway through one.
	case errors.As(err, &ne) && ne.Timeout():
		// Too slow to send its headers: closed without a word, as net/http does.
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		c.writeRefusal(http.StatusNotImplemented, err.Error()+": send the body with a Content-Length or Transfer-Encoding: chunked")
	default:
		// net/http's parser names the problem ("malformed HTTP request
		// \"HELLO\"", "missing colon", "multiple Content-Length headers").
		why := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "net/http: "), "http: ")
		if !strings.HasPrefix(why, "malformed HTTP request") {
			why = "malformed HTTP request: " + why
		}
		c.writeRefusal(http.StatusBadRequest, why)
	}
}

// writeRefusal writes an error answer of the server's own and closes the connection.
func (c *conn) writeRefusal(status int, msg string) {
	body, _ := jsonMessage(msg)
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	_, _ = c.bw.Write(body)
}

// serveRequest runs the handler for req and finishes its answer. It reports
// whether the connection can carry another request.
func (c *conn) serveRequest(base context.Context, req *http.Request) (keep bool) {
	if req.ProtoMajor != 1 {
		c.writeRefusal(http.StatusHTTPVersionNotSupported, "unsupported protocol version: this server speaks HTTP/1.1")
		return false
	}
	if req.ProtoMinor >= 1 && req.Host == "" {
		c.writeRefusal(http.StatusBadRequest, "missing required Host header: an HTTP/1.1 request names the host it is sent to")
		return false
	}
	if !validHost(req.Host) {
		c.writeRefusal(http.StatusBadRequest, "malformed Host header")
		return false
	}
	req.RemoteAddr = c.remote
	w := newResponse(c, req)
	if req.Body != http.NoBody {
		// The body is read while the handler runs, at the client's pace.
		_ = c.nc.SetReadDeadline(time.Time{})
		if ex := req.Header["Expect"]; len(ex) > 0 {
			if !req.ProtoAtLeast(1, 1) || len(ex) > 1 || !strings.EqualFold(ex[0], "100-continue") {
				c.writeRefusal(http.StatusExpectationFailed, "the only expectation this server meets is Expect: 100-continue")
				c.unread = true
				return false
			}
			w.body.continueNeeded = true
		}
		req.Body = &w.body
	}
	if !c.runHandler(w, req.WithContext(base)) {
		c.unread = !w.body.eof
		return false
	}
	w.finish()
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if w.closeAfter {
		c.unread = !w.body.eof
		return false
	}
	if !w.body.drain() {
		c.unread = true
		return false
	}
	return true
}

// runHandler calls the handler, and reports false when it panicked: the
// answer is then broken off and the connection closed.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				c.s.Log.Error().Str("remote", c.remote).Interface("panic", v).Str("stack", string(debug.Stack())).Msg("panic serving a request")
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// validHost reports whether h can be a Host header: the bytes of a host
// name, an IP literal and a port (RFC 3986), as net/http allows.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
