package upstream

import (
	"net"
	"net/http"
	"time"
)

// HTTPOptions tune the one HTTP client every call to Keap goes through: the
// proxy, the hubs, token refreshes, key checks, hooks and polling. Zero values
// take the defaults.
type HTTPOptions struct {
	// Timeout bounds one exchange with Keap, from dialling to the end of
	// the answer's body; default 30s.
	Timeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake of a new connection; a
	// Keap edge that accepts TCP and then stays silent fails after it
	// instead of after Timeout. Default 10s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the answer's header once
	// the request is sent; default Timeout.
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds the TCP connect; default 10s.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections are kept
	// per host; default 256 (Keap is one host that every caller shares).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes an idle connection after it; default 90s.
	IdleConnTimeout time.Duration
}

// MaxResponseHeaderBytes bounds the header of an answer from Keap; an answer
// whose header is larger fails as if Keap could not be reached. Keap's headers
// are a few KB.
const MaxResponseHeaderBytes = 64 << 10

func (o *HTTPOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 10 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = o.Timeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 256
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
}

// NewHTTPClient returns connectord's client for Keap: net/http's Transport,
// with HTTP/2 where Keap offers it, the proxy the environment names
// (HTTPS_PROXY, NO_PROXY), a keep-alive pool sized for one busy host, and
// bounds on every stage of a call. It follows no redirect: every call
// carries a credential (a token, a key, a client secret), and a redirect
// would hand it to wherever Keap's answer points; the answer is returned as
// it is instead.
func NewHTTPClient(o HTTPOptions) *http.Client {
	o.defaults()
	t := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    o.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           2 * o.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		IdleConnTimeout:        o.IdleConnTimeout,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	return &http.Client{Transport: t, Timeout: o.Timeout, CheckRedirect: noRedirects}
}

// noRedirects makes a client return a redirect as the answer.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
