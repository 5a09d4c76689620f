// Package proxy owns connectord's pass-through to Keap: a request to
// /proxy/{path…} made with an instance's Element token goes to that instance's
// Keap API as the caller sent it, with the instance's credential put in, and
// Keap's answer comes back as Keap gave it, streamed. XML-RPC goes through the
// same door: for a legacy-key instance it is sent to the application's legacy
// XML-RPC URL with the key as the call's first parameter.
//
// It must not interpret Keap's answers, nor change what the caller sent beyond
// the credential and what is connectord's or the connection's own
// (Authorization, Elements-* headers, hop-by-hop headers, cookies). Quotas,
// retries and token renewal belong to the upstream package. It never logs a
// credential or a body.
package proxy

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/upstream"
)

// resolver finds the instance an Element token authenticated (instances.Service).
type resolver interface {
	Resolve(ctx context.Context, p tenants.Principal) (*instances.Instance, *elements.Element, error)
}

// caller sends one request to Keap for an instance (upstream.Client).
type caller interface {
	Do(ctx context.Context, t upstream.Target, req *http.Request, body []byte) (*http.Response, error)
}

// Proxy forwards callers' requests to Keap.
type Proxy struct {
	instances resolver
	keap      caller
	log       zerolog.Logger
}

// New returns a Proxy that resolves instances with instances and calls Keap through keap.
func New(instances resolver, keap caller, log zerolog.Logger) *Proxy {
	return &Proxy{instances: instances, keap: keap, log: log}
}

// call is one proxied request, prepared before it is handed to the reverse proxy.
type call struct {
	target upstream.Target
	url    *url.URL
	body   []byte
	header http.Header // the response headers connectord already set
}

type callKey struct{}

// Handler serves /proxy/{path…}, routed with chi's "/proxy/*" pattern. who
// returns the authenticated caller and fail writes connectord's own errors;
// both belong to the HTTP layer.
func (p *Proxy) Handler(who func(*http.Request) tenants.Principal, fail func(http.ResponseWriter, *http.Request, error)) http.Handler {
	pool := newBufferPool()
	rp := &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: transport{p.keap},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del("Set-Cookie")
			resp.Header.Del(requestIDHeader) // connectord's own, set by the HTTP layer
			// Keap's X-Request-Id, if it sends one, replaces connectord's
			// copy rather than adding a second value.
			if _, ok := resp.Header["X-Request-Id"]; ok && resp.Request != nil {
				if c, ok := resp.Request.Context().Value(callKey{}).(*call); ok {
					c.header.Del("X-Request-Id")
				}
			}
			gather(resp, pool)
			return nil
		},
		// Transport errors are already *apperr.Error (502, 504, or the
		// instance's token being unusable), written as connectord's errors.
		ErrorHandler: fail,
		ErrorLog:     stdlog.New(p.log.With().Str("component", "proxy").Logger(), "", 0),
		BufferPool:   pool,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := p.prepare(r, who(r))
		if err != nil {
			fail(w, r, err)
			return
		}
		c.header = w.Header()
		// The body is in c; the reverse proxy must not read the original again.
		r.Body = http.NoBody
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	})
}

// requestIDHeader is the HTTP layer's request id header (Open Connectors' name).
const requestIDHeader = "Elements-Request-Id"

// prepare resolves the caller's instance, reads the body (it is sent again on
// a retry) and works out where the request goes.
func (p *Proxy) prepare(r *http.Request, who tenants.Principal) (*call, error) {
	inst, el, err := p.instances.Resolve(r.Context(), who)
	if err != nil {
		return nil, err
	}
	t := upstream.TargetFor(el, inst)
	rawRest := wildcard(r)
	rest, err := url.PathUnescape(rawRest)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "the proxied path is not validly escaped: %s", err.Error())
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "." || seg == ".." {
			return nil, apperr.Errorf(apperr.Invalid, "the proxied path must not contain . or .. segments")
		}
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	xmlrpc := "/"+rest == el.Endpoints.XMLRPCPath
	if !t.Legacy {
		u, err := join(t.APIURL, rawRest, r.URL.RawQuery)
		if err != nil {
			return nil, err
		}
		return &call{target: t, url: u, body: body}, nil
	}
	if !xmlrpc || r.Method != http.MethodPost {
		return nil, apperr.Errorf(apperr.Invalid, "instance %d uses a legacy API key, which speaks only XML-RPC: send POST /proxy%s with a methodCall body", inst.ID, el.Endpoints.XMLRPCPath)
	}
	body, err = withKey(body, t.APIKey)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "%s", err.Error())
	}
	u, err := url.Parse(t.LegacyURL)
	if err != nil {
		return nil, apperr.Errorf(apperr.Internal, "instance %d: legacy XML-RPC URL: %v", inst.ID, err)
	}
	u.RawQuery = r.URL.RawQuery
	return &call{target: t, url: u, body: body}, nil
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

// join appends the escaped path rawRest and the query to base.
func join(base, rawRest, query string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, apperr.Errorf(apperr.Internal, "Keap API URL %q: %v", base, err)
	}
	raw := strings.TrimRight(u.EscapedPath(), "/") + "/" + rawRest
	path, err := url.PathUnescape(raw)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "the proxied path is not validly escaped: %s", err.Error())
	}
	u.Path, u.RawPath, u.RawQuery = path, raw, query
	return u, nil
}

// readBody reads the whole request body, which the HTTP layer limits.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apperr.Errorf(apperr.TooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return nil, apperr.Errorf(apperr.Invalid, "request body could not be read")
	}
	if len(body) == 0 {
		return nil, nil
	}
	return body, nil
}

// rewrite makes the outgoing request: Keap's URL, and the caller's headers
// without connectord's own. The reverse proxy has already removed hop-by-hop
// and X-Forwarded-* headers; upstream puts the credential in.
func rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	pr.Out.URL = c.url
	pr.Out.Host = ""
	pr.Out.RequestURI = "" // the request goes out through an http.Client
	h := pr.Out.Header
	for k := range h {
		if strings.HasPrefix(k, "Elements-") {
			delete(h, k)
		}
	}
	h.Del("Authorization")
	h.Del("Cookie")
	h.Del("Expect") // the body is already read
}

// transport sends the outgoing request through upstream, which adds the
// credential, keeps the quotas and retries.
type transport struct{ keap caller }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := req.Context().Value(callKey{}).(*call)
	return t.keap.Do(req.Context(), c.target, req, c.body)
}

// gather reads what Keap has already sent of a body of unknown length (a
// chunked answer). When that is the whole body, as it is for most of Keap's
// answers, the answer goes out with its length in one write; the reverse proxy
// would otherwise flush each chunk as it copies it. Otherwise the part read
// goes first and the rest streams as it arrives: nothing waits for more than
// Keap has sent.
func gather(resp *http.Response, pool bufferPool) {
	if resp.ContentLength >= 0 || resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody ||
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return
	}
	buf := pool.Get()
	defer pool.Put(buf)
	n, err := resp.Body.Read(buf)
	head := bytes.Clone(buf[:n])
	switch {
	case errors.Is(err, io.EOF):
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(head))
		resp.ContentLength = int64(n)
		resp.TransferEncoding = nil
		resp.Header.Set("Content-Length", strconv.Itoa(n))
	case err != nil:
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), errReader{err}), resp.Body}
	default:
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// bufferPool reuses the buffers the reverse proxy copies bodies with.
type bufferPool struct{ pool *sync.Pool }

func newBufferPool() bufferPool {
	return bufferPool{&sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (p bufferPool) Get() []byte  { return *p.pool.Get().(*[]byte) }
func (p bufferPool) Put(b []byte) { p.pool.Put(&b) }
