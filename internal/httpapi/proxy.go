package httpapi

import (
	"context"
	stdlog "log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/proxy"
	"github.com/connectord/connectord/internal/tenants"
)

// proxier prepares and sends callers' requests to Keap (internal/proxy).
type proxier interface {
	Prepare(ctx context.Context, who tenants.Principal, req proxy.Request) (*proxy.Call, error)
	Send(c *proxy.Call, out *http.Request) (*http.Response, error)
}

// callKey carries a request's prepared call to the reverse proxy's hooks.
type callKey struct{}

// proxyKeap serves /proxy/{path…}, routed with chi's "/proxy/*" pattern:
// the request is read and prepared (any refusal is connectord's own error),
// then httputil.ReverseProxy passes it to Keap and Keap's answer back,
// streamed, with the call sent through p (credential, quotas, retries).
// A caller that hangs up cancels the call to Keap.
func proxyKeap(p proxier, log zerolog.Logger) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			c := pr.In.Context().Value(callKey{}).(*proxy.Call)
			pr.Out.URL, pr.Out.Host = c.URL, ""
			proxy.OutgoingHeader(pr.Out.Header)
		},
		Transport: sender{p},
		ModifyResponse: func(resp *http.Response) error {
			proxy.IncomingHeader(resp.Header)
			// connectord's request id stays under its own name; Keap's
			// X-Request-Id, if it sends one, takes the place of connectord's copy.
			delete(resp.Header, RequestIDHeader)
			if _, ok := resp.Header["X-Request-Id"]; !ok {
				resp.Header["X-Request-Id"] = []string{RequestID(resp.Request.Context())}
			}
			return nil
		},
		ErrorHandler: writeError,
		BufferPool:   &buffers{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}},
		ErrorLog:     stdlog.New(proxyErrors{log.With().Str("component", "proxy").Logger()}, "", 0),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		c, err := p.Prepare(r.Context(), principal(r), proxy.Request{
			Method: r.Method, Path: wildcard(r), RawQuery: r.URL.RawQuery, Body: body,
		})
		if err != nil {
			writeError(w, r, err)
			return
		}
		delete(w.Header(), "X-Request-Id") // ModifyResponse decides whose it is
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	})
}

// sender is the reverse proxy's transport: every call goes out through the
// proxy service, which puts the instance's credential in.
type sender struct{ p proxier }

func (s sender) RoundTrip(out *http.Request) (*http.Response, error) {
	return s.p.Send(out.Context().Value(callKey{}).(*proxy.Call), out)
}

// buffers lends the reverse proxy its copy buffers.
type buffers struct{ pool sync.Pool }

func (b *buffers) Get() []byte { return b.pool.Get().(*[32 << 10]byte)[:] }
func (b *buffers) Put(p []byte) {
	if cap(p) == 32<<10 {
		b.pool.Put((*[32 << 10]byte)(p[:32<<10]))
	}
}

// proxyErrors logs what the reverse proxy reports: an answer from Keap that
// broke off while it was passed on.
type proxyErrors struct{ log zerolog.Logger }

func (e proxyErrors) Write(p []byte) (int, error) {
	e.log.Warn().Msg(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// wildcard returns the path after /proxy/, escaped as the caller sent it.
// chi matches on the raw path when the request has one, else on the decoded
// path, which then escapes back to what was sent.
func wildcard(r *http.Request) string {
	rest := chi.URLParam(r, "*")
	if r.URL.RawPath != "" {
		return rest
	}
	return strings.TrimPrefix((&url.URL{Path: "/" + rest}).EscapedPath(), "/")
}
