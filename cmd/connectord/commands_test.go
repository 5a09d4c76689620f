package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

func TestServeConfiguration_BadValuesNameTheVariable(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	good := baseEnv(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable", k)
	tests := []struct {
		name, variable, value, want string
	}{
		{"no database", "DATABASE_URL", "", "DATABASE_URL is required"},
		{"mysql url", "DATABASE_URL", "mysql://x", "DATABASE_URL"},
		{"no key", "CONNECTORD_ENCRYPTION_KEY", "", "CONNECTORD_ENCRYPTION_KEY is required"},
		{"short key", "CONNECTORD_ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(make([]byte, 16)), "CONNECTORD_ENCRYPTION_KEY"},
		{"not base64", "CONNECTORD_ENCRYPTION_KEY", "%%%", "CONNECTORD_ENCRYPTION_KEY"},
		{"bad previous", "CONNECTORD_ENCRYPTION_KEY_PREVIOUS", "abc", "CONNECTORD_ENCRYPTION_KEY_PREVIOUS"},
		{"bad addr", "CONNECTORD_ADDR", "8080", "CONNECTORD_ADDR"},
		{"bad public url", "CONNECTORD_PUBLIC_URL", "localhost:8080", "CONNECTORD_PUBLIC_URL"},
		{"bad level", "CONNECTORD_LOG_LEVEL", "loud", "CONNECTORD_LOG_LEVEL"},
		{"bad auth url", "CONNECTORD_INFUSIONSOFT_AUTH_URL", "accounts.infusionsoft.com", "CONNECTORD_INFUSIONSOFT_AUTH_URL"},
		{"bad token url", "CONNECTORD_INFUSIONSOFT_TOKEN_URL", "ftp://x", "CONNECTORD_INFUSIONSOFT_TOKEN_URL"},
		{"bad api url", "CONNECTORD_INFUSIONSOFT_API_URL", "x", "CONNECTORD_INFUSIONSOFT_API_URL"},
		{"legacy without app", "CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL", "https://x.infusionsoft.com/api/xmlrpc", "{app}"},
		{"bad keap timeout", "CONNECTORD_KEAP_TIMEOUT", "soon", "CONNECTORD_KEAP_TIMEOUT"},
		{"bad tls handshake timeout", "CONNECTORD_KEAP_TLS_HANDSHAKE_TIMEOUT", "0s", "CONNECTORD_KEAP_TLS_HANDSHAKE_TIMEOUT"},
		{"bad read header timeout", "CONNECTORD_READ_HEADER_TIMEOUT", "ten", "CONNECTORD_READ_HEADER_TIMEOUT"},
		{"bad body read timeout", "CONNECTORD_BODY_READ_TIMEOUT", "-1s", "CONNECTORD_BODY_READ_TIMEOUT"},
		{"write timeout under keap's", "CONNECTORD_WRITE_TIMEOUT", "10s", "CONNECTORD_WRITE_TIMEOUT (10s) must be longer than CONNECTORD_KEAP_TIMEOUT"},
		{"bad idle timeout", "CONNECTORD_IDLE_TIMEOUT", "forever", "CONNECTORD_IDLE_TIMEOUT"},
		{"bad max connections", "CONNECTORD_MAX_CONNECTIONS", "0", "CONNECTORD_MAX_CONNECTIONS"},
		{"bad refresh margin", "CONNECTORD_REFRESH_MARGIN", "-5m", "CONNECTORD_REFRESH_MARGIN"},
		{"bad refresh workers", "CONNECTORD_REFRESH_WORKERS", "0", "CONNECTORD_REFRESH_WORKERS"},
		{"bad auth cache ttl", "CONNECTORD_AUTH_CACHE_TTL", "1h", "CONNECTORD_AUTH_CACHE_TTL"},
		{"bad rate limit switch", "CONNECTORD_KEAP_RATE_LIMIT_OFF", "maybe", "CONNECTORD_KEAP_RATE_LIMIT_OFF"},
		{"bad callback switch", "CONNECTORD_CALLBACK_ALLOW_PRIVATE", "sometimes", "CONNECTORD_CALLBACK_ALLOW_PRIVATE"},
		{"bad delivery backoff", "CONNECTORD_DELIVERY_BACKOFF_BASE", "0s", "CONNECTORD_DELIVERY_BACKOFF_BASE"},
		{"bad delivery lease", "CONNECTORD_DELIVERY_LEASE", "long", "CONNECTORD_DELIVERY_LEASE"},
		{"bad events retention", "CONNECTORD_EVENTS_RETENTION", "30 days", "CONNECTORD_EVENTS_RETENTION"},
		{"bad hook check interval", "CONNECTORD_HOOK_CHECK_INTERVAL", "0s", "CONNECTORD_HOOK_CHECK_INTERVAL"},
		{"bad poller override", "CONNECTORD_POLLER_INTERVAL_OVERRIDE", "fast", "CONNECTORD_POLLER_INTERVAL_OVERRIDE"},
		{"bad poller lease", "CONNECTORD_POLLER_LEASE", "-1s", "CONNECTORD_POLLER_LEASE"},
		{"bad keap quotas", "CONNECTORD_KEAP_QUOTAS", "client:second=0", "CONNECTORD_KEAP_QUOTAS: \"second=0\" is not second=N"},
		{"bad quota max wait", "CONNECTORD_QUOTA_MAX_WAIT", "soon", "CONNECTORD_QUOTA_MAX_WAIT"},
		{"bad quota lease", "CONNECTORD_QUOTA_LEASE", "0s", "CONNECTORD_QUOTA_LEASE"},
		{"database unreachable", "", "", "not reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			if tt.variable != "" {
				env[tt.variable] = tt.value
			}
			err := run(context.Background(), []string{"serve"}, getenvFrom(env), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error naming %q, got %v", tt.want, err)
			}
			if tt.value != "" && len(tt.value) > 8 && strings.Contains(err.Error(), tt.value) && strings.Contains(tt.variable, "KEY") {
				t.Fatalf("the error echoes the key: %v", err)
			}
		})
	}
}

func TestCommands_HelpVersionMigrateOrgs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"migrate", "--help"}, {"orgs", "create", "--help"}, {"orgs", "--help"}, {"version", "--help"}, {"keys", "--help"}, {"keys", "rotate", "--help"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &bytes.Buffer{}); err != nil || !strings.Contains(out.String(), "Usage") && !strings.Contains(out.String(), "connectord") {
			t.Errorf("%v: err %v, output %q", args, err, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &bytes.Buffer{}); err != nil || !strings.HasPrefix(out.String(), "connectord ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	for _, args := range [][]string{{"frobnicate"}, {"orgs", "create", "--name", "x"}, {"orgs", "create", "--email", "a@b.c"}, {"orgs", "delete"}, {"serve", "--nope"}, {"migrate", "extra"}} {
		if err := run(context.Background(), args, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v should fail", args)
		}
	}

	dbURL := testdb.New(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	for i := 0; i < 2; i++ { // idempotent
		out.Reset()
		if err := run(context.Background(), []string{"migrate"}, getenvFrom(env), &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("migrate run %d: %v", i, err)
		}
	}
	if err := run(context.Background(), []string{"orgs", "create", "--name", "Acme", "--email", "not-an-email"}, getenvFrom(env), &out, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "email") {
		t.Fatalf("bad email: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"orgs", "create", "--name", "Acme", "--email", "dev@acme.test"}, getenvFrom(env), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], `{"organization":{"id":`) || !strings.Contains(lines[0], `"user":{"id":`) {
		t.Fatalf("orgs create must print exactly one JSON object: %q", out.String())
	}
	if err := run(context.Background(), []string{"migrate"}, func(string) string { return "" }, &out, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("migrate without DATABASE_URL: %v", err)
	}
}

// The real binary exits non-zero with a message naming the variable.
func TestBinary_ExitsNonZeroOnBadConfiguration(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "connectord")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CONNECTORD_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(make([]byte, 32))}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("want a non-zero exit, got %v", err)
	}
	if !strings.Contains(string(out), "DATABASE_URL is required") {
		t.Fatalf("stderr does not name DATABASE_URL: %s", out)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "connectord ") {
		t.Fatalf("version: %v %q", err, out)
	}
}
