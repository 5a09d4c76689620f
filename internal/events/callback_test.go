package events

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCallbackPolicy_Check(t *testing.T) {
	t.Parallel()
	strict := CallbackPolicy{}
	tests := []struct {
		url     string
		private bool // refused as a private destination
		bad     bool // refused as malformed
	}{
		{"https://hooks.example.test/connectord", false, false}, // does not resolve here: left to connect time
		{"http://93.184.216.34/cb", false, false},
		{"http://127.0.0.1:8080/cb", true, false},
		{"http://[::1]/cb", true, false},
		{"http://localhost/cb", true, false},
		{"http://app.localhost/cb", true, false},
		{"http://10.1.2.3/cb", true, false},
		{"http://172.16.0.9/cb", true, false},
		{"http://192.168.1.1/cb", true, false},
		{"http://169.254.169.254/latest/meta-data", true, false},
		{"http://100.64.0.1/cb", true, false},
		{"http://0.0.0.0/cb", true, false},
		{"http://[fd00::1]/cb", true, false},
		{"http://[fe80::1]/cb", true, false},
		{"ftp://example.test/cb", false, true},
		{"/relative", false, true},
		{"https://user:pw@example.test/cb", false, true},
	}
	for _, tt := range tests {
		err := strict.Check(context.Background(), tt.url)
		switch {
		case tt.private && !errors.Is(err, ErrPrivateDestination):
			t.Errorf("%s: want a private-destination refusal, got %v", tt.url, err)
		case tt.bad && (err == nil || errors.Is(err, ErrPrivateDestination)):
			t.Errorf("%s: want a malformed-URL refusal, got %v", tt.url, err)
		case !tt.private && !tt.bad && err != nil:
			t.Errorf("%s: refused: %v", tt.url, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("the error repeats the URL's password: %v", err)
		}
	}
	if err := (CallbackPolicy{AllowPrivate: true}).Check(context.Background(), "http://127.0.0.1:9/cb"); err != nil {
		t.Fatalf("AllowPrivate still refused loopback: %v", err)
	}
}

// The connect-time check refuses whatever name led to a private address.
func TestCallbackPolicy_DialerRefusesPrivateAtConnect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	client := func(p CallbackPolicy) *http.Client {
		return &http.Client{Transport: &http.Transport{DialContext: p.Dialer().DialContext}}
	}
	// "localhost" passes no configuration check here: it is dialled directly.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	_, err := client(CallbackPolicy{}).Get(url)
	if !errors.Is(err, ErrPrivateDestination) {
		t.Fatalf("strict dialer connected to %s: %v", url, err)
	}
	resp, err := client(CallbackPolicy{AllowPrivate: true}).Get(url)
	if err != nil {
		t.Fatalf("permissive dialer: %v", err)
	}
	resp.Body.Close()
}

func TestRefused_PublicAddressesPass(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1", "172.32.0.1"} {
		if Refused(net.ParseIP(s)) {
			t.Errorf("%s refused", s)
		}
	}
}

// A consumer verifies the signature the way Open Connectors documents it.
func TestSignature_VerifiesAsAConsumerWould(t *testing.T) {
	t.Parallel()
	body := []byte(`{"eventId":"e1","events":[{"eventType":"CREATED"}]}`)
	got := Signature("s3cret", body)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(body)
	want := "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if Signature("other", body) == got || Signature("s3cret", append(body, ' ')) == got {
		t.Fatal("the signature does not depend on the key and every byte")
	}
}
