package httpapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
)

type ctxKey int

const requestKey ctxKey = iota

// requestInfo is what the middleware keeps about a request, in one context
// value: its id, the logger its lines go to, and room for the principal, so
// that the request log, outside the authenticated group, can name the
// organization.
type requestInfo struct {
	id        string
	base      *zerolog.Logger // without the request id
	log       *zerolog.Logger // with it, made when a handler first asks
	principal tenants.Principal
	query     url.Values // the parsed query string (checkQuery)
	// clientClosed: the caller hung up before its answer (logged as 499).
	clientClosed bool
}

// logger returns the request's logger, whose lines carry the request id.
func (i *requestInfo) logger() *zerolog.Logger {
	if i.log == nil {
		l := i.base.With().Str("request_id", i.id).Logger()
		i.log = &l
	}
	return i.log
}

func infoOf(ctx context.Context) *requestInfo {
	i, _ := ctx.Value(requestKey).(*requestInfo)
	return i
}

// RequestIDHeader carries the request id on every response (Open Connectors' name).
const RequestIDHeader = "Elements-Request-Id"

// RequestID returns the request's id.
func RequestID(ctx context.Context) string {
	if i := infoOf(ctx); i != nil {
		return i.id
	}
	return ""
}

// logger returns the logger r's lines go to, each with the request id.
func logger(r *http.Request) *zerolog.Logger {
	if i := infoOf(r.Context()); i != nil {
		return i.logger()
	}
	return zerolog.Ctx(r.Context())
}

// newRequestID returns 24 random hex digits. Request ids need to be unique,
// not secret: math/rand/v2's generator (ChaCha8, seeded by the system) makes
// them without a system call per request.
func newRequestID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	var out [24]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// withRequestID gives every request an id, in its context, its log lines and
// its response headers.
func withRequestID(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := newRequestID()
			h := w.Header()
			h[RequestIDHeader] = []string{id}
			h["X-Request-Id"] = []string{id}
			info := &requestInfo{id: id, base: &log}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey, info)))
		})
	}
}

// logRequests writes one line per request. Query values whose names suggest a
// secret are replaced, and paths are logged as routed patterns when they carry
// secrets of their own.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		// Most requests log only this line: it names the request id itself
		// rather than make the request a logger of its own.
		log, id := zerolog.Ctx(r.Context()), ""
		if i := infoOf(r.Context()); i != nil {
			log, id = i.base, i.id
		}
		status := ww.Status()
		if i := infoOf(r.Context()); i != nil && i.clientClosed {
			status = StatusClientClosedRequest
		}
		ev := log.Info()
		if status >= 500 {
			ev = log.Error()
		}
		if id != "" {
			ev = ev.Str("request_id", id)
		}
		ev = ev.Str("method", r.Method).Str("path", loggedPath(r)).
			Int("status", status).Int("bytes", ww.BytesWritten()).
			Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)
		// A query checkQuery refused is not logged: it could not be
		// parsed, so its secrets could not be told apart.
		if i := infoOf(r.Context()); i != nil && i.query != nil {
			if q := redactQuery(i.query); q != "" {
				ev = ev.Str("query", q)
			}
		}
		if i := infoOf(r.Context()); i != nil && i.principal.OrganizationID != 0 {
			ev = ev.Int64("organization_id", i.principal.OrganizationID)
		}
		ev.Msg("request")
	})
}

// secretPaths is where a path segment is a secret: the Keap hook receiver,
// /events/keap/{secret}.
const secretPaths = "/events/keap/"

// loggedPath is the request's path as logs and error messages show it: with
// the secret of a receiver path replaced by {secret}, whatever the method and
// whether or not it routed.
func loggedPath(r *http.Request) string {
	if i := strings.Index(r.URL.Path, secretPaths); i >= 0 {
		return r.URL.Path[:i] + secretPaths + "{secret}"
	}
	return r.URL.Path
}

// secretParam says whether a query parameter's value must not be logged.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"secret", "token", "code", "key", "password", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func redactQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	out := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if secretParam(k) {
				v = "REDACTED"
			}
			out.Add(k, v)
		}
	}
	return out.Encode()
}

// recoverPanics turns a panic into a logged 500 with the request id.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger(r).Error().Interface("panic", v).Str("stack", string(debug.Stack())).Msg("panic")
				writeError(w, r, apperr.Errorf(apperr.Internal, "panic"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies at MaxBodyBytes and the time their reading
// may take at timeout, counted from the header: a caller that sends half a
// body and stops is cut off then, whether or not the handler reads it (the
// server reads what a handler left, up to a limit, before the next request).
// Once the body is read to its end the deadline is lifted, so that the
// server can watch the connection for a hang-up while the handler works.
func limitBody(timeout time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > MaxBodyBytes {
				writeError(w, r, apperr.Errorf(apperr.TooLarge, "request body is larger than %d bytes", MaxBodyBytes))
				return
			}
			if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
				rc := http.NewResponseController(w)
				if rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
					r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
				}
				r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// deadlineBody lifts the connection's read deadline when the body ends.
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// authenticator checks credentials from the Authorization header.
type authenticator interface {
	Authenticate(ctx context.Context, c tenants.Credentials, need tenants.Need) (tenants.Principal, error)
}

// authenticate requires the Authorization parts need names and puts the
// principal in the request context.
func authenticate(auth authenticator, need tenants.Need) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			creds, err := tenants.ParseAuthorization(r.Header.Get("Authorization"))
			if err != nil {
				writeError(w, r, err)
				return
			}
			p, err := auth.Authenticate(r.Context(), creds, need)
			if err != nil {
				writeError(w, r, err)
				return
			}
			// The log line is written after the handler, so it reads the
			// principal from the request's info.
			if i := infoOf(r.Context()); i != nil {
				i.principal = p
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey, &requestInfo{base: zerolog.Ctx(r.Context()), log: zerolog.Ctx(r.Context()), principal: p})))
		})
	}
}

func principal(r *http.Request) tenants.Principal {
	if i := infoOf(r.Context()); i != nil {
		return i.principal
	}
	return tenants.Principal{}
}
