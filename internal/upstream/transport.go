package upstream

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is an HTTP/1.1 client transport, plain or over TLS, with
// keep-alive connections, for the one host connectord calls all day. It does
// the exchange on the calling goroutine: it writes the request, then reads
// the answer, on the connection it took from its pool. net/http's Transport
// hands each request to two goroutines per connection (one writes, one
// reads) and the answer back over channels; on a proxy that spends most of
// its time in that hand-off, the difference is a large part of its CPU.
//
// Like net/http's, it asks for gzip when the request names no encoding and
// decompresses the answer transparently. What it does not do, the caller
// does not need: no proxies (connectord builds an http.Transport when
// HTTP(S)_PROXY is set), no HTTP/2, no 100-continue wait (the proxy drops
// Expect). Use it through an
// http.Client for redirects; give the time limit to Timeout, not to the client,
// which would otherwise start a goroutine per request to enforce it.
type Transport struct {
	// Timeout bounds one exchange: writing the request, reading the
	// answer and its body. Zero means none.
	Timeout time.Duration
	// MaxIdlePerHost is how many idle connections are kept per host; default 256.
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle for longer; default 90s.
	IdleTimeout time.Duration
	// TLS is the base TLS configuration for https; nil takes the defaults.
	TLS *tls.Config
	// Dial dials TCP; nil uses a net.Dialer with a 30s time-out.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex
	idle map[string][]*conn // by scheme://host:port, the most recently used last
}

// conn is one keep-alive connection.
type conn struct {
	key    string
	nc     net.Conn
	lr     *io.LimitedReader // under br: bounds what an answer's head may take
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
}

// aLongTimeAgo is a deadline in the past: setting it makes pending I/O fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil && req.Body != nil {
		req.Body.Close() // a RoundTripper always closes the body
	}
	return resp, err
}

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		return nil, errors.New("upstream: request has no URL host")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("upstream: unsupported protocol scheme %q", req.URL.Scheme)
	}
	ctx := req.Context()
	for {
		c, err := t.conn(ctx, req.URL.Scheme, req.URL.Host, replayable(req))
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A kept connection the server closed while it was idle fails
		// before any answer: send again on a new one, when the request can
		// be sent again without harm.
		var before *beforeAnswer
		if !c.reused || !errors.As(err, &before) || !replayable(req) {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			again := *req // the caller's request stays as it was
			if again.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
			req = &again
		}
	}
}

// beforeAnswer is a failure before any byte of the answer was read.
type beforeAnswer struct{ err error }

func (e *beforeAnswer) Error() string { return e.err.Error() }
func (e *beforeAnswer) Unwrap() error { return e.err }

// Timeout lets a time-out be seen through url.Error, which asks its own Err.
func (e *beforeAnswer) Timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// replayable says whether req may be sent twice: a safe method whose body,
// if any, can be made again (as net/http's Transport decides).
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		if _, ok := req.Header["Idempotency-Key"]; !ok {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// exchange writes req on c and reads the answer's head. The answer's body
// reads from c and gives c back to the pool when it is read to its end.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request) (*http.Response, error) {
	if t.Timeout > 0 {
		if err := c.nc.SetDeadline(time.Now().Add(t.Timeout)); err != nil {
			return nil, err
		}
	}
	// When ctx ends first, pending I/O on c fails at once.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	gzipped := wantsGzip(req)
	if err := writeRequest(c.bw, req, gzipped); err != nil {
		return fail(&beforeAnswer{err})
	}
	if err := c.bw.Flush(); err != nil {
		return fail(&beforeAnswer{err})
	}
	c.lr.N = maxHeadBytes - int64(c.br.Buffered())
	if _, err := c.br.Peek(1); err != nil {
		return fail(&beforeAnswer{err})
	}
	var resp *http.Response
	for n := 0; ; n++ {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			if c.lr.N <= 0 {
				err = fmt.Errorf("Keap's answer headers are larger than %d bytes", maxHeadBytes)
			}
			return fail(err)
		}
		// Informational answers (100 Continue, 103 Early Hints) come
		// before the real one; 101 would switch protocols, which no
		// caller of Keap asks for.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n == max1xx {
			return fail(fmt.Errorf("Keap sent more than %d informational (1xx) answers", max1xx))
		}
	}
	c.lr.N = math.MaxInt64
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("Keap answered 101 Switching Protocols, which connectord does not do"))
	}
	b := &body{t: t, c: c, ctx: ctx, src: resp.Body, stop: stop, keep: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	if gzipped && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
		resp.Body = &gzipBody{body: b}
	}
	return resp, nil
}

// gzipBody decompresses a body, from its first read on.
type gzipBody struct {
	body *body
	zr   *gzip.Reader
	err  error
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.zr == nil && g.err == nil {
		g.zr, g.err = gzip.NewReader(g.body)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.zr.Read(p)
}

func (g *gzipBody) Close() error { return g.body.Close() }

// body is an answer's body; it gives its connection back at its end.
type body struct {
	t    *Transport
	c    *conn
	ctx  context.Context
	src  io.ReadCloser
	stop func() bool
	keep bool  // the connection may carry another request
	err  error // what Read returns once the exchange is over
	// finished guards the connection's hand-back: a connection in the
	// pool twice would carry two exchanges at once.
	finished atomic.Bool
}

// errBodyClosed is what a body read after Close returns.
var errBodyClosed = errors.New("upstream: read on a closed response body")

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.src.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
		b.err = io.EOF
	case err != nil:
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
		b.finish(false)
		b.err = err
	}
	return n, err
}

// Close gives up the rest of the body, and with it the connection.
func (b *body) Close() error {
	if b.err == nil {
		b.finish(false)
		b.err = errBodyClosed
	}
	return nil
}

// finish ends the exchange: the connection goes back to the pool when the
// whole answer was read, nothing follows it and the server keeps it open.
func (b *body) finish(whole bool) {
	if !b.finished.CompareAndSwap(false, true) {
		return
	}
	inTime := b.stop() // false: ctx ended, and the connection's deadline is past
	if whole && b.keep && inTime && b.c.br.Buffered() == 0 {
		b.t.put(b.c)
		return
	}
	b.c.nc.Close()
}

// conn returns an idle connection to scheme://host that is still open, or a new
// one. For a replayable request, a connection idle for less than freshIdle is
// taken without the liveness peek.
func (t *Transport) conn(ctx context.Context, scheme, host string, replay bool) (*conn, error) {
	key := scheme + "://" + host
	now := time.Now()
	for {
		t.mu.Lock()
		cs := t.idle[key]
		if len(cs) == 0 {
			t.mu.Unlock()
			break
		}
		c := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		t.idle[key] = cs[:len(cs)-1]
		t.mu.Unlock()
		if idle := now.Sub(c.idleAt); idle < t.idleTimeout() && (replay && idle < freshIdle || alive(c.nc)) {
			c.reused = true
			return c, nil
		}
		c.nc.Close()
	}
	return t.dial(ctx, key, scheme, host)
}

// freshIdle is how long a connection may have been idle and still be reused
// by a replayable request without the liveness peek: servers close keep-alive
// connections after seconds of idleness, not milliseconds, so under load (when
// connections come straight back) the peek's system call per request rarely
// finds anything. A connection the server closed anyway fails before any
// answer, and the request, being replayable, is sent again on a fresh one.
// Other requests (POST, PATCH) always peek first.
const freshIdle = 250 * time.Millisecond

func (t *Transport) dial(ctx context.Context, key, scheme, host string) (*conn, error) {
	addr := host
	hostname, port, err := net.SplitHostPort(host)
	if err != nil {
		hostname, port = host, "80"
		if scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(host, port)
	}
	dial := t.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if scheme == "https" {
		cfg := &tls.Config{}
		if t.TLS != nil {
			cfg = t.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = hostname
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	lr := &io.LimitedReader{R: nc, N: math.MaxInt64}
	return &conn{key: key, nc: nc, lr: lr, br: bufio.NewReaderSize(lr, 8<<10), bw: bufio.NewWriterSize(nc, 8<<10)}, nil
}

// maxHeadBytes bounds the heads of one answer, informational ones included,
// as net/http's Transport does with MaxResponseHeaderBytes; max1xx bounds how
// many informational answers may come before the real one (net/http's
// number too).
const (
	maxHeadBytes = 1 << 20
	max1xx       = 5
)

// put keeps c for another request, or closes it when the pool is full.
func (t *Transport) put(c *conn) {
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 256
	}
	c.idleAt = time.Now()
	var stale []*conn
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	// The pool is ordered by idleAt, oldest first: close those idle for
	// too long, which the server has likely closed already.
	cs := t.idle[c.key]
	for len(cs) > 0 && c.idleAt.Sub(cs[0].idleAt) >= t.idleTimeout() {
		stale = append(stale, cs[0])
		cs[0] = nil
		cs = cs[1:]
	}
	kept := len(cs) < max
	if kept {
		cs = append(cs, c)
	}
	t.idle[c.key] = cs
	t.mu.Unlock()
	for _, s := range stale {
		s.nc.Close()
	}
	if !kept {
		c.nc.Close()
	}
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout <= 0 {
		return 90 * time.Second
	}
	return t.IdleTimeout
}

// CloseIdleConnections closes the connections kept for later requests
// (http.Client.CloseIdleConnections calls it).
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.nc.Close()
		}
	}
}
