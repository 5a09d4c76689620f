package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/testdb"
)

// Every secret a user gives or connectord issues must be absent, in clear, from
// every row of every table and from every log line.
func TestSecrets_NeverInClearInAnyTableOrLogLine(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	oauth := s.provisionOAuth(o, "infusionsoftcrm", "oauth")
	sak := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, "")).JSON(t)
	legacy := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testLegacyKey, testLegacyApp)).JSON(t)
	oid := fmt.Sprint(oauth["id"])
	const signatureKey = "my-webhook-signature-key-123"
	if r := s.do("PATCH", "/instances/"+oid, o.auth(), map[string]any{"configuration": map[string]any{"event.notification.signature.key": signatureKey}}); r.Status != 200 || strings.Contains(string(r.Body), signatureKey) {
		t.Fatalf("set signature key: %d %s", r.Status, r.Body)
	}
	// Use the instances the way applications do all day: hubs and proxy, with
	// a token renewal on the way, so their logs are checked too.
	for _, tok := range []string{oauth["token"].(string), sak["token"].(string)} {
		el := "User " + o.User.Secret + ", Element " + tok
		if r := s.do("GET", "/hubs/crm/contacts?pageSize=2", el, nil); r.Status != 200 {
			t.Fatalf("hub call: %d %s", r.Status, r.Body)
		}
		if r := s.do("GET", "/proxy/crm/rest/v1/contacts?limit=1", el, nil); r.Status != 200 {
			t.Fatalf("proxy call: %d %s", r.Status, r.Body)
		}
	}
	s.keap.ExpireAccessTokens()
	if r := s.do("GET", "/proxy/crm/rest/v1/contacts?limit=1", "User "+o.User.Secret+", Element "+oauth["token"].(string), nil); r.Status != 200 {
		t.Fatalf("proxy call after expiry: %d %s", r.Status, r.Body)
	}
	stored := s.instanceSecrets(oid)
	secretsToFind := map[string]string{
		"organization secret":   o.Organization.Secret,
		"user secret":           o.User.Secret,
		"oauth instance token":  oauth["token"].(string),
		"sak instance token":    sak["token"].(string),
		"legacy instance token": legacy["token"].(string),
		"client secret":         testClientSecret,
		"access token":          stored["oauth.user.token"],
		"refresh token":         stored["oauth.user.refresh_token"],
		"service account key":   testServiceKey,
		"legacy key":            testLegacyKey,
		"signature key":         signatureKey,
	}
	for name, v := range secretsToFind {
		if len(v) < 8 {
			t.Fatalf("%s is missing from the test setup (%q)", name, v)
		}
	}

	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 4 {
		t.Fatalf("found only tables %v", tables)
	}
	var dump strings.Builder
	for _, table := range tables {
		rows, err := c.Query(ctx, "SELECT t::text FROM "+pgx.Identifier{table}.Sanitize()+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		dump.WriteString(strings.Join(texts, "\n"))
	}
	all := dump.String()
	logs := s.logs.String()
	for name, v := range secretsToFind {
		if strings.Contains(all, v) || strings.Contains(all, hex.EncodeToString([]byte(v))) {
			t.Errorf("the %s is stored in clear", name)
		}
		if strings.Contains(logs, v) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}

func TestEncryptionKeyRotation_PreviousKeyDecryptsAndKeysRotateReseals(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	dbURL := testdb.New(t)
	env := baseEnv(t, dbURL, k)
	oldKey := env["CONNECTORD_ENCRYPTION_KEY"]
	s := startServerWith(t, env, k, nil)
	o := s.createOrg("Acme", "dev@acme.test")
	id := fmt.Sprint(s.provisionOAuth(o, "infusionsoftcrm", "rotating")["id"])
	secretsBefore := s.instanceSecrets(id)
	s.stop()

	// A new key alone cannot start: it would not decrypt what is stored.
	newEnv := map[string]string{}
	for k, v := range env {
		newEnv[k] = v
	}
	newEnv["CONNECTORD_ENCRYPTION_KEY"] = newEncryptionKey(t)
	err := run(context.Background(), []string{"serve"}, getenvFrom(newEnv), &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "CONNECTORD_ENCRYPTION_KEY_PREVIOUS") {
		t.Fatalf("serve with an unknown stored key: %v", err)
	}

	// With the old key as previous, the instance reads and works.
	newEnv["CONNECTORD_ENCRYPTION_KEY_PREVIOUS"] = oldKey
	s2 := startServerWith(t, newEnv, k, nil)
	if r := s2.do("GET", "/instances/"+id, o.auth(), nil); r.Status != 200 {
		t.Fatalf("read with previous key: %d %s", r.Status, r.Body)
	}
	s2.stop()
	var out strings.Builder
	if err := run(context.Background(), []string{"keys", "rotate"}, getenvFrom(newEnv), &out, &strings.Builder{}); err != nil || !strings.Contains(out.String(), "re-encrypted the credentials of") {
		t.Fatalf("keys rotate: %v %q", err, out.String())
	}
	newKey, err := secrets.ParseKey(newEnv["CONNECTORD_ENCRYPTION_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	var stale int
	c, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM instance_credentials WHERE key_id <> $1", newKey.ID).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d credentials still sealed with the old key (%v)", stale, err)
	}

	// After rotation the old key is no longer needed.
	delete(newEnv, "CONNECTORD_ENCRYPTION_KEY_PREVIOUS")
	s3 := startServerWith(t, newEnv, k, nil)
	if got := s3.instanceSecrets(id); got["oauth.user.refresh_token"] != secretsBefore["oauth.user.refresh_token"] {
		t.Fatal("rotation changed the stored refresh token")
	}
	if r := s3.do("GET", "/instances/"+id, o.auth(), nil); r.Status != 200 {
		t.Fatalf("read after rotation: %d %s", r.Status, r.Body)
	}
}
