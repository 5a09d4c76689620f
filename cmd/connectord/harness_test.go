package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/store"
	"github.com/connectord/connectord/internal/testdb"
)

// Credentials the fake Keap in these tests accepts.
const (
	testClientID     = "test-client-id-0123456789ab"
	testClientSecret = "test-client-secret-xyz"
	testServiceKey   = "KeapAK-test-service-account-key-0001"
	testLegacyApp    = "fm260"
	testLegacyKey    = "e9c9a2c8bd8ed803b5c0ffee"
)

// logBuffer collects a server's log lines and tells when one matches.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
	wake  chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{wake: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			break
		}
		l.lines = append(l.lines, strings.TrimRight(line, "\n"))
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logBuffer) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logBuffer) String() string { return strings.Join(l.Lines(), "\n") }

// waitFor returns the first log line whose message is msg.
func (l *logBuffer) waitFor(t testing.TB, msg string, done <-chan error) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		for _, line := range l.Lines() {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
				return m
			}
		}
		select {
		case <-l.wake:
		case err := <-done:
			t.Fatalf("server stopped before logging %q: %v\nlogs:\n%s", msg, err, l)
		case <-deadline:
			t.Fatalf("server did not log %q in time; logs:\n%s", msg, l)
		}
	}
}

// keap is a fake Keap over real HTTP on loopback.
type keapServer struct {
	*fakekeap.Server
	URL string
}

func newKeap(t testing.TB, opts fakekeap.Options) *keapServer {
	t.Helper()
	return newKeapWrapped(t, opts, func(h http.Handler) http.Handler { return h })
}

// newKeapWrapped serves the fake through wrap, to add latency or failures at the wire.
func newKeapWrapped(t testing.TB, opts fakekeap.Options, wrap func(http.Handler) http.Handler) *keapServer {
	t.Helper()
	fk := fakekeap.New(opts)
	// The fake redirects only to registered URIs: the callbacks the tests use.
	fk.RegisterClient(testClientID, testClientSecret, "https://www.yourcallbackurl.com", "http://fake.oauth.callback/url")
	fk.AddServiceAccountKey(testServiceKey)
	fk.AddLegacyKey(testLegacyApp, testLegacyKey)
	srv := httptest.NewServer(wrap(fk))
	t.Cleanup(func() { srv.Close(); fk.Close() })
	return &keapServer{Server: fk, URL: srv.URL}
}

// server is one connectord started through run, as the binary starts.
type server struct {
	t       testing.TB
	URL     string
	env     map[string]string
	logs    *logBuffer
	cancel  context.CancelFunc
	done    chan error
	keap    *keapServer
	dbURL   string
	stopped bool
}

func newEncryptionKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// baseEnv is the environment a test server runs with, talking to fake k.
func baseEnv(t testing.TB, dbURL string, k *keapServer) map[string]string {
	return map[string]string{
		"DATABASE_URL":                      dbURL,
		"CONNECTORD_ADDR":                   "127.0.0.1:0",
		"CONNECTORD_ENCRYPTION_KEY":         newEncryptionKey(t),
		"CONNECTORD_LOG_LEVEL":              "debug",
		"CONNECTORD_INFUSIONSOFT_AUTH_URL":  k.URL + "/app/oauth/authorize",
		"CONNECTORD_INFUSIONSOFT_TOKEN_URL": k.URL + "/token",
		"CONNECTORD_INFUSIONSOFT_API_URL":   k.URL,
		// Passthrough XML-RPC is refused after Keap's sunset; the tests
		// that need it must not depend on the day they run.
		"CONNECTORD_XMLRPC_SUNSET": "2099-01-01T00:00:00Z",
	}
}

func getenvFrom(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// startServer runs `connectord serve` against a fresh database and a fake Keap.
func startServer(t testing.TB) *server {
	t.Helper()
	k := newKeap(t, fakekeap.Options{})
	dbURL := testdb.New(t)
	return startServerWith(t, baseEnv(t, dbURL, k), k, nil)
}

func startServerWith(t testing.TB, env map[string]string, k *keapServer, args []string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, env: env, logs: newLogBuffer(), cancel: cancel, done: make(chan error, 1), keap: k, dbURL: env["DATABASE_URL"]}
	go func() { s.done <- run(ctx, append([]string{"serve"}, args...), getenvFrom(env), io.Discard, s.logs) }()
	m := s.logs.waitFor(t, "listening", s.done)
	s.URL = "http://" + m["addr"].(string)
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("server stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		// What is still running says which worker ignored the cancellation.
		var dump strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
		s.t.Errorf("server did not stop within 30s; goroutines:\n%s", dump.String())
	}
}

// org is an organization created with `connectord orgs create`.
type org struct {
	Organization struct {
		ID     int64  `json:"id"`
		Name   string `json:"name"`
		Secret string `json:"secret"`
	} `json:"organization"`
	User struct {
		ID     int64  `json:"id"`
		Email  string `json:"email"`
		Secret string `json:"secret"`
	} `json:"user"`
}

func (o org) auth() string {
	return "User " + o.User.Secret + ", Organization " + o.Organization.Secret
}

func (s *server) createOrg(name, email string) org {
	s.t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"orgs", "create", "--name", name, "--email", email}, getenvFrom(s.env), &out, &errb); err != nil {
		s.t.Fatalf("orgs create: %v (%s)", err, errb.String())
	}
	var o org
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		s.t.Fatalf("orgs create printed %q: %v", out.String(), err)
	}
	return o
}

// response is an HTTP answer from connectord.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

func (r response) Array(t testing.TB) []any {
	t.Helper()
	var a []any
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("response is not a JSON array: %v\n%s", err, r.Body)
	}
	return a
}

// do sends a request to connectord and checks the response against the
// OpenAPI contract.
func (s *server) do(method, path, auth string, body any) response {
	s.t.Helper()
	var rdr io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			s.t.Fatal(err)
		}
	}
	if raw != nil {
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, rdr)
	if err != nil {
		s.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return s.send(req, raw)
}

func (s *server) send(req *http.Request, reqBody []byte) response {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	checkContract(s.t, req, reqBody, r)
	return r
}

// authorize walks the browser part of the OAuth flow: it follows the oauthUrl
// connectord returned to the fake Keap and returns the code Keap redirected with.
func authorize(t testing.TB, oauthURL string) (code, state string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(oauthURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Query().Get("code") == "" {
		t.Fatalf("authorize redirected without a code: %s", loc)
	}
	return loc.Query().Get("code"), loc.Query().Get("state")
}

// seedBody is the seed 004's instance.json with test values.
func seedBody(element, code, name string) map[string]any {
	return map[string]any{
		"element":      map[string]any{"key": element},
		"providerData": map[string]any{"code": code},
		"configuration": map[string]any{
			"oauth.callback.url": "https://www.yourcallbackurl.com",
			"oauth.api.key":      testClientID,
			"oauth.api.secret":   testClientSecret,
			"document.tagging":   false,
		},
		"tags": []any{"seed"},
		"name": name,
	}
}

// provisionOAuth runs the whole OAuth journey and returns the created instance.
func (s *server) provisionOAuth(o org, element, name string) map[string]any {
	s.t.Helper()
	r := s.do("GET", fmt.Sprintf("/elements/%s/oauth/url?apiKey=%s&apiSecret=%s&callbackUrl=%s&state=%s",
		element, testClientID, testClientSecret, url.QueryEscape("https://www.yourcallbackurl.com"), element), "", nil)
	if r.Status != 200 {
		s.t.Fatalf("oauth/url: %d %s", r.Status, r.Body)
	}
	code, _ := authorize(s.t, r.JSON(s.t)["oauthUrl"].(string))
	r = s.do("POST", "/instances", o.auth(), seedBody(element, code, name))
	if r.Status != 200 {
		s.t.Fatalf("POST /instances: %d %s", r.Status, r.Body)
	}
	return r.JSON(s.t)
}

func scanLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// queryRow runs one query on the server's database and scans its row into dest.
func (s *server) queryRow(sql string, args []any, dest ...any) {
	s.t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		s.t.Fatal(err)
	}
}

// count returns the number of rows in a table of the server's database.
func (s *server) count(table string) int {
	s.t.Helper()
	var n int
	s.queryRow("SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize(), nil, &n)
	return n
}

// instanceSecrets decrypts an instance's stored credentials with the server's keys.
func (s *server) instanceSecrets(id string) map[string]string {
	s.t.Helper()
	cfg, err := loadServeConfig(getenvFrom(s.env))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, s.dbURL, cfg.Ring)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	n, _ := strconv.ParseInt(id, 10, 64)
	var org int64
	if err := db.Pool().QueryRow(ctx, "SELECT organization_id FROM instances WHERE id = $1", n).Scan(&org); err != nil {
		s.t.Fatal(err)
	}
	inst, err := db.Instance(ctx, org, n)
	if err != nil {
		s.t.Fatal(err)
	}
	return inst.Secrets
}

// ciphertext returns the raw sealed credentials of an instance.
func (s *server) ciphertext(id string) []byte {
	s.t.Helper()
	var ct []byte
	s.queryRow("SELECT ciphertext FROM instance_credentials WHERE instance_id = $1", []any{id}, &ct)
	return ct
}
