package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/testdb"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	k, err := secrets.ParseKey(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), testdb.New(t), secrets.NewRing(k))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

func newOrganization(t testing.TB, db *DB) tenants.Organization {
	t.Helper()
	org, _, err := db.CreateOrganization(context.Background(), "o", secrets.Hash(secrets.NewToken()), "a@b.c", secrets.Hash(secrets.NewToken()))
	if err != nil {
		t.Fatal(err)
	}
	return org
}

func newInstance(t testing.TB, db *DB, org int64, secret string) *instances.Instance {
	t.Helper()
	inst := &instances.Instance{
		OrganizationID: org, ElementKey: "infusionsoftcrm", Name: "n", AuthType: "oauth2",
		TokenHash: secrets.Hash(secrets.NewToken()), Tags: []string{}, Valid: true,
		Config: map[string]*string{}, Secrets: map[string]string{"oauth.user.refresh_token": secret},
	}
	if err := db.CreateInstance(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestCredentials_BoundToTheirInstance(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	a := newInstance(t, db, org.ID, "refresh-a")
	b := newInstance(t, db, org.ID, "refresh-b")
	got, err := db.Instance(ctx, org.ID, a.ID)
	if err != nil || got.Secrets["oauth.user.refresh_token"] != "refresh-a" {
		t.Fatalf("round trip: %v %v", got, err)
	}
	// A ciphertext copied onto another instance's row does not decrypt there.
	if _, err := db.pool.Exec(ctx, `UPDATE instance_credentials SET ciphertext = (SELECT ciphertext FROM instance_credentials WHERE instance_id = $1) WHERE instance_id = $2`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Instance(ctx, org.ID, b.ID); err == nil {
		t.Fatal("a ciphertext moved to another instance decrypted")
	}
	if _, err := db.Instance(ctx, org.ID+1, a.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("another organization read the instance: %v", err)
	}
}

// UpdateInstance holds the row lock through read-modify-write: concurrent updates
// never lose one another's changes.
func TestUpdateInstance_SerialisesConcurrentChanges(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	org := newOrganization(t, db)
	inst := newInstance(t, db, org.ID, "r")
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := db.UpdateInstance(ctx, org.ID, inst.ID, func(in *instances.Instance) error {
					n, _ := strconv.Atoi(in.Secrets["counter"])
					in.Secrets["counter"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := db.Instance(ctx, org.ID, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secrets["counter"] != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d: an update was lost", got.Secrets["counter"], workers*each)
	}
}
