package httpapi

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/proxy"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/upstream"
)

const sak = "KeapAK-proxy-unit-test"

// oneInstance resolves every caller to one service-account-key instance of Keap at apiURL.
type oneInstance struct{ apiURL string }

func (o oneInstance) Resolve(context.Context, tenants.Principal) (*instances.Instance, *elements.Element, error) {
	el := &elements.Element{Key: "infusionsoftcrm"}
	el.Endpoints = elements.Endpoints{APIURL: o.apiURL, RESTPath: "/crm/rest/v1", XMLRPCPath: "/crm/xmlrpc/v1"}
	return &instances.Instance{ID: 1, OrganizationID: 1, AuthType: instances.AuthAPIKey, Secrets: map[string]string{instances.KeyAPIKey: sak}}, el, nil
}

// serveProxy mounts the proxy handler as Routes does, without authentication.
func serveProxy(t testing.TB, upstreamURL string, opt upstream.Options) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	r.Use(withRequestID(zerolog.Nop()), limitBody(time.Second))
	r.Handle("/proxy/*", proxyKeap(proxy.New(oneInstance{upstreamURL}, upstream.New(nil, opt), proxy.XMLRPC{}), zerolog.Nop()))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func TestProxy_StreamsWhatKeapHasSentWithoutWaitingForTheRest(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Keap-API-Key") != sak {
			w.WriteHeader(401)
			return
		}
		_, _ = io.WriteString(w, "first line\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "second line\n")
	}))
	defer keap.Close()
	defer close(release)
	srv := serveProxy(t, keap.URL, upstream.Options{})
	resp, err := http.Get(srv.URL + "/proxy/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "first line\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first part was held back until Keap finished")
	}
}

func TestProxy_SmallChunkedAnswerGoesOutWithItsLength(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 5000) // over net/http's 2 KiB, so Keap's side is chunked
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Keap", "kept")
		w.WriteHeader(207)
		_, _ = io.WriteString(w, body)
	}))
	defer keap.Close()
	resp, err := http.Get(serveProxy(t, keap.URL, upstream.Options{}).URL + "/proxy/small")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 207 || string(b) != body || resp.ContentLength != int64(len(body)) || resp.Header.Get("X-Keap") != "kept" {
		t.Fatalf("%d, %d bytes, length %d, %v", resp.StatusCode, len(b), resp.ContentLength, resp.Header)
	}
}

func TestProxy_TimeoutAndUnreachableAreConnectordsErrors(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
	}))
	defer slow.Close()
	for _, tc := range []struct {
		name, url string
		want      int
	}{
		{"time-out", slow.URL, http.StatusGatewayTimeout},
		{"unreachable", "http://127.0.0.1:1", http.StatusBadGateway},
	} {
		srv := serveProxy(t, tc.url, upstream.Options{MaxRetries: -1, HTTP: &http.Client{Timeout: 100 * time.Millisecond}})
		resp, err := http.Get(srv.URL + "/proxy/crm/rest/v1/contacts")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.Contains(string(b), "Keap") || !strings.Contains(string(b), resp.Header.Get(RequestIDHeader)) {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, b, tc.want)
		}
	}
}

func TestProxy_PassesTrailersAndAddsNoUserAgent(t *testing.T) {
	t.Parallel()
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-User-Agent", strings.Join(r.Header.Values("User-Agent"), ","))
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	defer keap.Close()
	for _, ua := range []string{"", "caller/1.0"} {
		req, _ := http.NewRequest("GET", serveProxy(t, keap.URL, upstream.Options{}).URL+"/proxy/trailer", nil)
		req.Header.Set("User-Agent", ua) // empty: Go's client sends none
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
			t.Fatalf("%q, trailer %v", b, resp.Trailer)
		}
		if got := resp.Header.Get("X-Saw-User-Agent"); got != ua {
			t.Fatalf("Keap saw User-Agent %q, want %q", got, ua)
		}
	}
}
