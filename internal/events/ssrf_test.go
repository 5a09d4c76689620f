package events

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// Every address in IANA's special-purpose registries is refused, at
// configuration and at connect time, including the ones our own list once
// missed (NAT64 reaches 169.254.169.254 on a NAT64 network).
func TestCallbackPolicy_DeniesIANASpecialPurposeRegistries(t *testing.T) {
	t.Parallel()
	denied := []string{
		"64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
		"64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
		"2002:7f00:1::1",     // 6to4 of 127.0.0.1
		"2002:a9fe:a9fe::1",  // 6to4 of 169.254.169.254
		"::127.0.0.1",        // IPv4-compatible
		"::169.254.169.254",
		"::ffff:127.0.0.1", // IPv4-mapped
		"::ffff:169.254.169.254",
		"192.0.0.1", "192.0.0.170", // IETF protocol assignments
		"198.18.0.1", "198.19.255.254", // benchmarking
		"240.0.0.1", "255.255.255.255", // reserved, broadcast
		"192.0.2.1", "198.51.100.1", "203.0.113.1", // documentation
		"192.88.99.1", "224.0.0.1", "0.1.2.3", "100.64.0.1",
		"2001:db8::1", "2001::1", "3fff::1", "fe80::1", "fc00::1", "ff02::1", "::", "::1",
		"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254",
	}
	strict := CallbackPolicy{}
	for _, ip := range denied {
		if !Refused(net.ParseIP(ip)) {
			t.Errorf("%s is accepted", ip)
		}
		host := ip
		if strings.Contains(ip, ":") {
			host = "[" + ip + "]"
		}
		if err := strict.Check(context.Background(), "http://"+host+":8080/cb"); !errors.Is(err, ErrPrivateDestination) {
			t.Errorf("configuring http://%s:8080/cb: want a refusal, got %v", host, err)
		}
		if err := strict.control("tcp6", net.JoinHostPort(ip, "443"), nil); err == nil {
			t.Errorf("dialling %s is allowed", ip)
		}
	}
	for _, ip := range []string{"8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"} {
		if err := strict.Check(context.Background(), "https://["+ip+"]/cb"); strings.Contains(ip, ":") && err != nil {
			t.Errorf("%s refused: %v", ip, err)
		}
		if Refused(net.ParseIP(ip)) {
			t.Errorf("public %s refused", ip)
		}
	}

	// CONNECTORD_CALLBACK_ALLOW_PRIVATE lets loopback and private ranges
	// through, and nothing more: metadata and NAT64 stay refused.
	open := CallbackPolicy{AllowPrivate: true}
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fd00::1", "::ffff:127.0.0.1"} {
		network := "tcp4"
		if strings.Contains(ip, ":") {
			network = "tcp6"
		}
		if err := open.control(network, net.JoinHostPort(ip, "80"), nil); err != nil {
			t.Errorf("allowed private: dialling %s refused: %v", ip, err)
		}
		if open.refused(mustAddr(t, ip)) {
			t.Errorf("allowed private: %s refused", ip)
		}
	}
	for _, ip := range []string{"169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "100.64.0.1", "0.0.0.0", "::"} {
		if !open.refused(mustAddr(t, ip)) {
			t.Errorf("allowed private: %s accepted", ip)
		}
	}
}

// A refused delivery says so without telling which address the callback's
// name resolved to.
func TestDelivery_RefusalDoesNotRevealTheResolvedAddress(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the strict dialer connected to loopback")
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: CallbackPolicy{}.Dialer().DialContext}}
	_, err := client.Get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	if !errors.Is(err, ErrPrivateDestination) {
		t.Fatalf("want a refusal, got %v", err)
	}
	msg := transportError(err)
	for _, leak := range []string{"127.0.0.1", "::1", "[::1]"} {
		if strings.Contains(msg, leak) {
			t.Errorf("the stored error %q reveals %s", msg, leak)
		}
	}
	if !strings.Contains(msg, "CONNECTORD_CALLBACK_ALLOW_PRIVATE") {
		t.Errorf("the stored error does not say what refused it: %q", msg)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
