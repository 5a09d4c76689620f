package httpapi

import (
	"bytes"
	"context"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/proxy"
	"github.com/connectord/connectord/internal/tenants"
)

// proxier prepares and sends callers' requests to Keap (internal/proxy).
type proxier interface {
	Prepare(ctx context.Context, who tenants.Principal, req proxy.Request) (*proxy.Call, error)
	Send(c *proxy.Call, out *http.Request) (*http.Response, error)
	Bridge(ctx context.Context, c *proxy.Call) ([]byte, error)
}

// callKey carries a request's prepared call to the reverse proxy's hooks.
type callKey struct{}

// proxyKeap serves /proxy/{path…}, routed with chi's "/proxy/*" pattern:
// the request is read and prepared (any refusal is connectord's own error),
// then httputil.ReverseProxy passes it to Keap and Keap's answer back,
// streamed, with the call sent through p (credential, quotas, retries).
// A caller that hangs up cancels the call to Keap.
func proxyKeap(p proxier, log zerolog.Logger) http.Handler {
	pool := &buffers{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
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
			return withLength(resp, pool)
		},
		ErrorHandler: writeError,
		BufferPool:   pool,
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
		if c.Bridged { // xmlrpc.mode bridge: connectord answers the XML-RPC call itself
			answer, err := p.Bridge(r.Context(), c)
			if err != nil {
				writeError(w, r, err)
				return
			}
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			_, _ = w.Write(answer)
			return
		}
		delete(w.Header(), "X-Request-Id") // ModifyResponse decides whose it is
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	})
}

// withLength gives a chunked answer that is already whole its length: one
// read of Keap's body (most answers arrive in one piece) that reaches its
// end means the answer goes out with a Content-Length in one write, instead
// of chunked and flushed part by part, which httputil.ReverseProxy does for
// every answer of unknown length so that streams are not held back. An answer
// that is not whole after one read streams as before, starting with what was
// read. Event streams and answers with trailers are left alone.
func withLength(resp *http.Response, pool *buffers) error {
	if resp.ContentLength >= 0 || resp.Body == nil || resp.Body == http.NoBody || len(resp.Trailer) > 0 ||
		resp.Request.Method == http.MethodHead || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return nil
	}
	buf := pool.Get()
	n, err := resp.Body.Read(buf)
	switch {
	case err == io.EOF:
		resp.Body.Close()
		resp.Body = &bufferedBody{Reader: bytes.NewReader(buf[:n]), buf: buf, pool: pool}
		resp.ContentLength = int64(n)
		resp.Header["Content-Length"] = []string{strconv.Itoa(n)}
	case err != nil:
		pool.Put(buf)
		return &apperr.Error{Code: apperr.ProviderDown, Message: "Keap's answer broke off before its body", Err: err}
	default:
		resp.Body = &bufferedBody{Reader: io.MultiReader(bytes.NewReader(buf[:n]), resp.Body), rest: resp.Body, buf: buf, pool: pool}
	}
	return nil
}

// bufferedBody is an answer's body that starts with (or is) what withLength
// read; its buffer goes back to the pool when it is closed.
type bufferedBody struct {
	io.Reader
	rest io.Closer // Keap's body, when it was not read to its end
	buf  []byte
	pool *buffers
}

func (b *bufferedBody) Close() error {
	if b.buf != nil {
		b.pool.Put(b.buf)
		b.buf = nil
	}
	if b.rest != nil {
		return b.rest.Close()
	}
	return nil
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
