// Package proxy owns connectord's pass-through to Keap: a request to
// /proxy/{path…} made with an instance's Element token goes to that instance's
// Keap API as the caller sent it, with the instance's credential put in, and
// Keap's answer comes back as Keap gave it. XML-RPC goes through the same
// door and follows the instance's xmlrpc.mode (xmlrpcmode.go): bridge hands
// the call to connectord's XML-RPC bridge (Bridge); passthrough sends it on
// to Keap (until Keap's XML-RPC is gone), with every credential as
// X-Keap-API-Key, or, when the operator configured legacy endpoints, a legacy
// key as the call's first parameter to the application's legacy XML-RPC URL
// (never for a method that takes no key, such as DataService.echo).
//
// The HTTP layer reads the caller's request into a Request; Prepare turns it
// into a Call (the instance, where it goes, its body, its credential) or
// refuses it; Send sends a Call. What passes between the caller and Keap is
// decided here (OutgoingHeader, IncomingHeader); the HTTP layer does the
// copying (with httputil.ReverseProxy).
//
// It must not interpret Keap's answers, nor change what the caller sent beyond
// the credential and what is connectord's or the connection's own
// (Authorization, Elements-* headers, hop-by-hop headers, cookies). Quotas,
// retries and token renewal belong to the upstream package. It never logs a
// credential or a body, and it knows nothing of routes or of how errors are
// written.
package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"

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

// Proxy prepares and sends callers' requests to Keap.
type Proxy struct {
	instances resolver
	keap      caller
	xmlrpc    XMLRPC
	bases     sync.Map // Keap API URL → *url.URL, parsed once
}

// New returns a Proxy that resolves instances with instances, calls Keap
// through keap, and answers XML-RPC as xmlrpc says.
func New(instances resolver, keap caller, xmlrpc XMLRPC) *Proxy {
	return &Proxy{instances: instances, keap: keap, xmlrpc: xmlrpc.withDefaults()}
}

// Request is a caller's request to /proxy/{path…}, as the HTTP layer read it.
type Request struct {
	Method   string
	Path     string // what follows /proxy/, escaped as the caller sent it
	RawQuery string // passed on as sent
	Body     []byte // the whole body; nil for none
}

// Call is a proxied request, prepared: for which instance, where it goes,
// what it carries. Its Target holds the credential Send puts in.
type Call struct {
	Instance *instances.Instance
	Target   upstream.Target
	URL      *url.URL
	Body     []byte // the caller's body; for XML-RPC with a legacy key, with the key in
	// Bridged says the call is XML-RPC that the bridge answers
	// (xmlrpc.mode bridge): Bridge answers it, and it is never sent to Keap.
	Bridged bool
}

// Prepare resolves the caller's instance and works out where req goes: the
// instance's Keap API, or for a legacy key its application's XML-RPC URL.
// Errors are *apperr.Error naming what the caller must change.
func (p *Proxy) Prepare(ctx context.Context, who tenants.Principal, req Request) (*Call, error) {
	inst, el, err := p.instances.Resolve(ctx, who)
	if err != nil {
		return nil, err
	}
	t := upstream.TargetFor(el, inst)
	rest, err := url.PathUnescape(req.Path)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "the proxied path is not validly escaped: %s", err.Error())
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "." || seg == ".." {
			return nil, apperr.Errorf(apperr.Invalid, "the proxied path must not contain . or .. segments")
		}
	}
	body := req.Body
	if len(body) == 0 {
		body = nil
	}
	if "/"+rest == el.Endpoints.XMLRPCPath && req.Method == http.MethodPost {
		if instances.XMLRPCMode(inst) == instances.XMLRPCBridge {
			return &Call{Instance: inst, Target: t, Body: body, Bridged: true}, nil
		}
		if err := p.xmlrpc.checkPassthrough(inst); err != nil {
			return nil, err
		}
	}
	if !t.Legacy {
		u, err := p.join(t.APIURL, req.Path, req.RawQuery)
		if err != nil {
			return nil, err
		}
		return &Call{Instance: inst, Target: t, URL: u, Body: body}, nil
	}
	if "/"+rest != el.Endpoints.XMLRPCPath || req.Method != http.MethodPost {
		return nil, apperr.Errorf(apperr.Invalid, "instance %d uses a legacy API key, which this connectord sends to the application's legacy XML-RPC endpoint (CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL is set): send POST /proxy%s with a methodCall body", inst.ID, el.Endpoints.XMLRPCPath)
	}
	body, err = withKey(body, t.APIKey)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "%s", err.Error())
	}
	u, err := url.Parse(t.LegacyURL)
	if err != nil {
		return nil, apperr.Errorf(apperr.Internal, "instance %d: legacy XML-RPC URL: %v", inst.ID, err)
	}
	u.RawQuery = req.RawQuery
	return &Call{Instance: inst, Target: t, URL: u, Body: body}, nil
}

// Send sends out, the request Keap is to receive for c (its method, c's URL,
// a header made by OutgoingHeader; its body is c's), with c's credential,
// and returns Keap's answer, whatever its status. out's context bounds the
// call: a caller that hangs up cancels it. Errors are *apperr.Error.
func (p *Proxy) Send(c *Call, out *http.Request) (*http.Response, error) {
	if out.Body != nil {
		out.Body.Close() // c.Body is what is sent, again on a retry
	}
	out.RequestURI = "" // a server's field, which a client refuses
	return p.keap.Do(out.Context(), c.Target, out, c.Body)
}

// OutgoingHeader removes from a caller's header, in place, what Keap must not
// receive: connectord's own (Authorization, Elements-*), cookies, Expect (the
// body is read before it is sent) and a protocol upgrade, on top of the
// hop-by-hop and X-Forwarded-* headers httputil.ReverseProxy removes.
func OutgoingHeader(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Elements-") {
			delete(h, k)
		}
	}
	for _, k := range []string{"Authorization", "Cookie", "Expect", "Upgrade", "Connection"} {
		delete(h, k)
	}
}

// IncomingHeader removes from Keap's answer header, in place, what the
// caller must not receive, on top of the hop-by-hop headers
// httputil.ReverseProxy removes: Keap's cookies, which would be set for
// connectord's host.
func IncomingHeader(h http.Header) {
	delete(h, "Set-Cookie")
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
