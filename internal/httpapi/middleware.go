package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

const (
	requestIDKey ctxKey = iota
	principalKey
)

// RequestIDHeader carries the request id on every response (Open Connectors' name).
const RequestIDHeader = "Elements-Request-Id"

// RequestID returns the request's id.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withRequestID gives every request an id, in its context, its logger and its response headers.
func withRequestID(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := newRequestID()
			w.Header().Set(RequestIDHeader, id)
			w.Header().Set("X-Request-Id", id)
			l := log.With().Str("request_id", id).Logger()
			ctx := context.WithValue(r.Context(), requestIDKey, id)
			next.ServeHTTP(w, r.WithContext(l.WithContext(ctx)))
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
		ev := zerolog.Ctx(r.Context()).Info()
		if ww.Status() >= 500 {
			ev = zerolog.Ctx(r.Context()).Error()
		}
		ev = ev.Str("method", r.Method).Str("path", loggedPath(r)).
			Int("status", ww.Status()).Int("bytes", ww.BytesWritten()).
			Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)
		if q := redactQuery(r.URL.Query()); q != "" {
			ev = ev.Str("query", q)
		}
		if p, ok := r.Context().Value(principalKey).(*tenants.Principal); ok && p.OrganizationID != 0 {
			ev = ev.Int64("organization_id", p.OrganizationID)
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
				zerolog.Ctx(r.Context()).Error().Interface("panic", v).Str("stack", string(debug.Stack())).Msg("panic")
				writeError(w, r, apperr.Errorf(apperr.Internal, "panic"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies at MaxBodyBytes.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeError(w, r, apperr.Errorf(apperr.TooLarge, "request body is larger than %d bytes", MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
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
			// principal through the pointer placed here.
			if holder, ok := r.Context().Value(principalKey).(*tenants.Principal); ok {
				*holder = p
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, &p)))
		})
	}
}

// principalHolder makes room in the context for the principal so that the
// request log, outside the authenticated group, can name the organization.
func principalHolder(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, &tenants.Principal{})))
	})
}

func principal(r *http.Request) tenants.Principal {
	p, _ := r.Context().Value(principalKey).(*tenants.Principal)
	if p == nil {
		return tenants.Principal{}
	}
	return *p
}
