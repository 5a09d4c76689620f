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
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
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
	bases     sync.Map // Keap API URL → *url.URL, parsed once
}

// New returns a Proxy that resolves instances with instances and calls Keap through keap.
func New(instances resolver, keap caller, log zerolog.Logger) *Proxy {
	return &Proxy{instances: instances, keap: keap, log: log}
}

// call is one proxied request, prepared before it is sent.
type call struct {
	target upstream.Target
	url    *url.URL
	body   []byte
}

// Handler serves /proxy/{path…}, routed with chi's "/proxy/*" pattern. who
// returns the authenticated caller and fail writes connectord's own errors;
// both belong to the HTTP layer.
//
// It does what httputil.ReverseProxy does for an HTTP/1.1 exchange, without
// what Keap does not need (protocol upgrades, forwarding 1xx answers) and
// without a second copy of the request: this is connectord's hottest path.
func (p *Proxy) Handler(who func(*http.Request) tenants.Principal, fail func(http.ResponseWriter, *http.Request, error)) http.Handler {
	pool := &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := p.prepare(r, who(r))
		if err != nil {
			fail(w, r, err)
			return
		}
		// Transport errors are already *apperr.Error (502, 504, or the
		// instance's token being unusable), written as connectord's errors.
		resp, err := p.keap.Do(r.Context(), c.target, outgoing(r, c), c.body)
		if err != nil {
			fail(w, r, err)
			return
		}
		defer resp.Body.Close()
		copyHeader(w.Header(), resp.Header)
		buf := pool.Get().(*[]byte)
		defer pool.Put(buf)
		if err := p.copyResponse(w, r, resp, *buf); err != nil {
			// The status is sent: all that is left is to cut the
			// connection, so the caller sees the answer is incomplete.
			panic(http.ErrAbortHandler)
		}
	})
}

// outgoing makes the request Keap receives: Keap's URL and the caller's
// headers without connectord's own (Authorization, Elements-*), cookies,
// Expect (the body is already read), X-Forwarded-* and hop-by-hop headers, as
// httputil.ReverseProxy would. Header values are shared with the caller's
// request, not copied; upstream puts the credential in.
func outgoing(r *http.Request, c *call) *http.Request {
	in := r.Header
	h := make(http.Header, len(in)+1)
	for k, vv := range in {
		if !dropRequestHeader(k) && !listed(k, in["Connection"]) {
			h[k] = vv
		}
	}
	// Te: trailers is the one hop-by-hop value passed on, as the reverse proxy does.
	if listed("Trailers", in["Te"]) {
		h["Te"] = []string{"trailers"}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // send none rather than Go's
	}
	out := &http.Request{
		Method:     r.Method,
		URL:        c.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
	}
	return out.WithContext(r.Context())
}

func dropRequestHeader(k string) bool {
	switch k {
	case "Authorization", "Cookie", "Expect", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return hopByHop(k) || strings.HasPrefix(k, "Elements-")
}

// hopByHop says whether k is a hop-by-hop header (RFC 9110, 7.6.1), which a
// proxy does not pass on.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// listed says whether the comma-separated values vv (a Connection or Te
// header) name k, ignoring case.
func listed(k string, vv []string) bool {
	for _, v := range vv {
		for tok := range strings.SplitSeq(v, ",") {
			tok, _, _ = strings.Cut(tok, ";") // Te's ;q=
			if strings.EqualFold(textproto.TrimString(tok), k) {
				return true
			}
		}
	}
	return false
}

// copyHeader adds Keap's response headers to dst, the caller's, without
// hop-by-hop ones, Set-Cookie and connectord's own request id header. Keap's
// X-Request-Id, if it sends one, replaces connectord's copy rather than adding
// a second value.
func copyHeader(dst, src http.Header) {
	if _, ok := src["X-Request-Id"]; ok {
		delete(dst, "X-Request-Id")
	}
	for k, vv := range src {
		if hopByHop(k) || k == "Set-Cookie" || k == requestIDHeader || listed(k, src["Connection"]) {
			continue
		}
		dst[k] = append(dst[k], vv...)
	}
}

// copyResponse writes Keap's status, body and trailers to w, using buf. A body
// of unknown length (a chunked answer) that one read finds whole, as it does
// for most of Keap's answers, goes out with its length in one write;
// otherwise what has arrived goes out at once and the rest streams as it
// arrives, each part flushed: nothing waits for more than Keap has sent. The
// error is one met after the status was sent.
func (p *Proxy) copyResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, buf []byte) error {
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		w.Header().Add("Trailer", strings.Join(keys, ", "))
	}
	stream := resp.ContentLength < 0 && resp.Body != http.NoBody
	if stream && announced == 0 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		n, err := resp.Body.Read(buf)
		if errors.Is(err, io.EOF) {
			if r.Method != http.MethodHead && bodyAllowed(resp.StatusCode) {
				w.Header().Set("Content-Length", strconv.Itoa(n))
			}
			w.WriteHeader(resp.StatusCode)
			_, err = w.Write(buf[:n])
			return err
		}
		w.WriteHeader(resp.StatusCode)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			_ = http.NewResponseController(w).Flush()
		}
		if err != nil {
			p.readFailed(err)
			return err
		}
	} else {
		w.WriteHeader(resp.StatusCode)
	}
	if err := p.copyBody(w, resp.Body, buf, stream); err != nil {
		return err
	}
	if announced == 0 && len(resp.Trailer) == 0 {
		return nil
	}
	// Force chunking, so that trailers can follow the body.
	_ = http.NewResponseController(w).Flush()
	for k, vv := range resp.Trailer {
		if announced != len(resp.Trailer) {
			k = http.TrailerPrefix + k
		}
		w.Header()[k] = append(w.Header()[k], vv...)
	}
	return nil
}

// bodyAllowed says whether an answer with status may carry a body (and so a length).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// copyBody copies body to w, flushing after each write when flush is set.
func (p *Proxy) copyBody(w http.ResponseWriter, body io.Reader, buf []byte, flush bool) error {
	rc := http.NewResponseController(w)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			p.readFailed(err)
			return err
		}
	}
}

func (p *Proxy) readFailed(err error) {
	if !errors.Is(err, context.Canceled) {
		p.log.Warn().Str("component", "proxy").Err(err).Msg("Keap's answer broke off while it was passed on")
	}
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
	for seg := range strings.SplitSeq(rest, "/") {
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
		u, err := p.join(t.APIURL, rawRest, r.URL.RawQuery)
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

// join appends the escaped path rawRest and the query to base. Bases are
// few (one per Keap API URL), so each is parsed once.
func (p *Proxy) join(base, rawRest, query string) (*url.URL, error) {
	parsed, ok := p.bases.Load(base)
	if !ok {
		b, err := url.Parse(base)
		if err != nil {
			return nil, apperr.Errorf(apperr.Internal, "Keap API URL %q: %v", base, err)
		}
		parsed, _ = p.bases.LoadOrStore(base, b)
	}
	u := new(url.URL)
	*u = *parsed.(*url.URL)
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
