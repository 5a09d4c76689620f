package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// CallbackPolicy decides where connectord may deliver event notifications.
// Callback URLs are given by API callers, so without it connectord would make
// requests on their behalf into its own network (loopback, private ranges,
// cloud metadata at 169.254.169.254, NAT64 or 6to4 addresses that lead to
// them). The policy is applied when a callback URL is configured and again
// when a delivery connects (net.Dialer.Control), so a name that resolves to a
// public address at configuration and a private one later (DNS rebinding) is
// still refused.
//
// What is refused is code.dny.dev/ssrf's list, generated from IANA's IPv4 and
// IPv6 special-purpose address registries, plus everything outside IPv6
// global unicast (2000::/3): a maintained list rather than one of our own,
// which had gaps (64:ff9b::/96, 2002::/16, ::a.b.c.d, 198.18.0.0/15, …).
type CallbackPolicy struct {
	// AllowPrivate (CONNECTORD_CALLBACK_ALLOW_PRIVATE) lets loopback and
	// private-use destinations through, for tests and a sandbox on a laptop.
	// Link-local (cloud metadata), NAT64, 6to4 and the rest of the registries
	// stay refused.
	AllowPrivate bool
	Resolver     *net.Resolver
}

// ErrPrivateDestination marks a callback destination the policy refuses.
var ErrPrivateDestination = errors.New("callback destination is not a public internet address (loopback, private, link-local or another special-purpose range; CONNECTORD_CALLBACK_ALLOW_PRIVATE=true allows loopback and private ones, for tests and sandboxes only)")

// privateRanges are what AllowPrivate lets through.
var (
	privateV4 = []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	privateV6 = []netip.Prefix{
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fc00::/7"),
	}
)

var (
	strictGuard  = ssrf.New(ssrf.WithAnyPort())
	privateGuard = ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV4Prefixes(privateV4...), ssrf.WithAllowedV6Prefixes(privateV6...))
)

func (p CallbackPolicy) guard() *ssrf.Guardian {
	if p.AllowPrivate {
		return privateGuard
	}
	return strictGuard
}

// refused reports whether p refuses ip. An IPv4-mapped IPv6 address is
// judged as the IPv4 address it is.
func (p CallbackPolicy) refused(ip netip.Addr) bool {
	return p.guard().SafeAddr(ip.Unmap()) != nil
}

// Refused reports whether deliveries to ip are refused under the strict
// policy: any address in IANA's special-purpose registries, and any IPv6
// address outside global unicast.
func Refused(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return !ok || CallbackPolicy{}.refused(a)
}

// Check validates a callback URL at configuration time: an absolute http or
// https URL without credentials, whose host is not, and does not resolve to, a
// refused address. A name that does not resolve now is accepted: the check at
// connect time still applies. The error names the host as the caller wrote it,
// never what it resolves to, so the check cannot be used to map connectord's
// network.
func (p CallbackPolicy) Check(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials in the URL; use event.notification.signature.key to authenticate deliveries", redact(u))
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if p.refused(ip) {
			return fmt.Errorf("%w: %s", ErrPrivateDestination, host)
		}
		return nil
	}
	if p.AllowPrivate {
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return fmt.Errorf("%w: %s", ErrPrivateDestination, host)
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil // unknown now; the connect-time check decides
	}
	for _, a := range addrs {
		if p.refused(a) {
			return fmt.Errorf("%w: %s", ErrPrivateDestination, host)
		}
	}
	return nil
}

// Dialer returns a dialer for deliveries that refuses, at connect time, every
// address the policy refuses, whatever name led to it.
func (p CallbackPolicy) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
}

// control is net.Dialer.Control: it sees the address about to be connected
// to, after every name was resolved.
func (p CallbackPolicy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return ErrPrivateDestination
	}
	if network != "tcp4" && network != "tcp6" || p.refused(ap.Addr()) {
		return ErrPrivateDestination // without the address: it may be what an internal name resolves to
	}
	return nil
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
