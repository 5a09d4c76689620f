package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
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
			// A 1xx Keap sent first was passed on with the headers the
			// answer had then, and the reverse proxy cleared them: the
			// request id goes back in with Keap's answer.
			resp.Header[RequestIDHeader] = []string{RequestID(resp.Request.Context())}
			if _, ok := resp.Header["X-Request-Id"]; !ok {
				resp.Header["X-Request-Id"] = []string{RequestID(resp.Request.Context())}
			}
			return withLength(resp, pool)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header()[RequestIDHeader] = []string{RequestID(r.Context())} // cleared if a 1xx went out
			writeError(w, r, err)
		},
		BufferPool: pool,
		ErrorLog:   stdlog.New(proxyErrors{log.With().Str("component", "proxy").Logger()}, "", 0),
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
	// The reverse proxy passes Keap's informational (1xx) answers on, and
	// net/http's Transport leaves counting them to whoever sees them: past
	// max1xx, the call is cancelled (502) instead of relaying an endless
	// stream. (A trace hook's error cannot stop it: composed with the
	// reverse proxy's, only the latter's result counts.)
	ctx, cancel := context.WithCancelCause(out.Context())
	n := 0
	out = out.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			if n++; n > max1xx {
				cancel(fmt.Errorf("Keap sent more than %d informational (1xx) answers", max1xx))
			}
			return nil
		},
	}))
	resp, err := s.p.Send(out.Context().Value(callKey{}).(*proxy.Call), out)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose releases a call's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// max1xx is how many informational answers from Keap are passed on before the
// real one, as net/http's Transport allows when it reads them itself.
const max1xx = 5

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
//
// A path of one segment holding escaped slashes (crm%2Frest%2Fv1%2Fcontacts)
// is the whole Keap path escaped as the one parameter of the OpenAPI
// document's /proxy/{path}, as a generated client sends it: it is unescaped
// once. No Keap API path is one segment, so this form is unambiguous; in a
// path of several segments an escaped slash stays part of its segment.
func wildcard(r *http.Request) string {
	rest := chi.URLParam(r, "*")
	if r.URL.RawPath != "" {
		if !strings.Contains(rest, "/") && (strings.Contains(rest, "%2F") || strings.Contains(rest, "%2f")) {
			if whole, err := url.PathUnescape(rest); err == nil {
				return whole
			}
		}
		return rest
	}
	return strings.TrimPrefix((&url.URL{Path: "/" + rest}).EscapedPath(), "/")
}
