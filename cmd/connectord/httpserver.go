package main

import (
	"context"
	stdlog "log"
	"net"
	"net/http"

	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"
)

// maxHeaderBytes bounds a request's line and header; larger ones get 431.
// connectord's callers send an Authorization header and a few others.
const maxHeaderBytes = 64 << 10

// newHTTPServer returns net/http's server for handler with c's bounds:
// a header must arrive within ReadHeaderTimeout (which also closes a new
// connection that sends nothing), a kept-alive connection that sends no
// request is closed after IdleTimeout, and every answer must be written
// within WriteTimeout, which a client that never reads runs into. Body reads
// are bounded per request by the HTTP layer (BodyReadTimeout): the server's
// own ReadTimeout would also cut off handlers that are still waiting for
// Keap once the body is read. Request contexts descend from ctx without its
// cancellation, so that a shutdown lets the calls under way finish; each is
// still cancelled when its caller hangs up.
func newHTTPServer(ctx context.Context, c httpConfig, handler http.Handler, log zerolog.Logger) *http.Server {
	base := log.WithContext(context.WithoutCancel(ctx))
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          stdlog.New(serverErrors{log.With().Str("component", "http").Logger()}, "", 0),
	}
}

// serverErrors writes what net/http reports through a log.Logger (the
// server's accept errors or a handler's misuse of the ResponseWriter, the
// client's unsolicited answers) as warnings.
type serverErrors struct{ log zerolog.Logger }

func (s serverErrors) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	s.log.Warn().Msg(msg)
	return len(p), nil
}

// limitConnections caps the connections served at once at max, or by
// default at what the descriptor limit leaves room for. Past the cap, new
// connections wait in the kernel's accept queue until one closes, rather
// than take the descriptors PostgreSQL's pool and the calls to Keap need:
// when a process runs out of them, accept fails, the server backs off for up
// to a second at a time, and so does every new connection to the database
// and to Keap. The time-outs above bound how long an idle or silent
// connection holds its place.
func limitConnections(ln net.Listener, max int, log zerolog.Logger) (net.Listener, int) {
	if max == 0 {
		max = defaultMaxConnections()
	} else if limit := descriptorLimit(); limit > 0 && uint64(max) > limit {
		log.Warn().Int("max_connections", max).Uint64("descriptor_limit", limit).
			Msg("CONNECTORD_MAX_CONNECTIONS is above the process's descriptor limit (ulimit -n): past the limit, connections fail instead of waiting, and so may PostgreSQL's and Keap's")
	}
	return netutil.LimitListener(ln, max), max
}

// defaultMaxConnections is 10,000, or three quarters of the descriptor limit
// when that is lower: the rest is for PostgreSQL, Keap and the process itself.
func defaultMaxConnections() int {
	const most = 10_000
	limit := descriptorLimit()
	if limit == 0 || limit*3/4 >= most {
		return most
	}
	return max(int(limit*3/4), 16)
}
