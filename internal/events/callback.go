package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// CallbackPolicy decides where connectord may deliver event notifications.
// Callback URLs are given by API callers, so without it connectord would make
// requests on their behalf into its own network (loopback, private ranges,
// cloud metadata at 169.254.169.254). The policy is applied when a callback URL
// is configured and again when a delivery connects, so a name that resolves to
// a public address at configuration and a private one later is still refused.
type CallbackPolicy struct {
	AllowPrivate bool // CONNECTORD_CALLBACK_ALLOW_PRIVATE: for tests and sandboxes
	Resolver     *net.Resolver
}

// ErrPrivateDestination marks a callback destination the policy refuses.
var ErrPrivateDestination = errors.New("callback destination is loopback, private or link-local (CONNECTORD_CALLBACK_ALLOW_PRIVATE=true allows it, for tests and sandboxes only)")

// Refused reports whether deliveries to ip are refused: loopback, private
// (RFC 1918, RFC 4193), shared (RFC 6598), link-local, unspecified, multicast
// and the 0.0.0.0/8 "this network" block.
func Refused(ip net.IP) bool {
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
		if ip4[0] == 0 || ip4[0] == 100 && ip4[1]&0xc0 == 64 { // 0.0.0.0/8, 100.64.0.0/10
			return true
		}
	}
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()
}

// Check validates a callback URL at configuration time: an absolute http or
// https URL without credentials, whose host is not, and does not resolve to, a
// refused address. A name that does not resolve now is accepted: the check at
// connect time still applies.
func (p CallbackPolicy) Check(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials in the URL; use event.notification.signature.key to authenticate deliveries", redact(u))
	}
	if p.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return fmt.Errorf("%w: %s", ErrPrivateDestination, host)
	}
	if ip := net.ParseIP(host); ip != nil {
		if Refused(ip) {
			return fmt.Errorf("%w: %s", ErrPrivateDestination, ip)
		}
		return nil
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return nil // unknown now; the connect-time check decides
	}
	for _, a := range addrs {
		if Refused(a.IP) {
			return fmt.Errorf("%w: %s resolves to %s", ErrPrivateDestination, host, a.IP)
		}
	}
	return nil
}

// Dialer returns a dialer for deliveries that refuses, at connect time, every
// address the policy refuses, whatever name led to it.
func (p CallbackPolicy) Dialer() *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if p.AllowPrivate {
		return d
	}
	d.Control = func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || Refused(ip) {
			return fmt.Errorf("%w: %s", ErrPrivateDestination, host)
		}
		return nil
	}
	return d
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
