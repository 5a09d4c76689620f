package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

func newKey(t *testing.T) (Key, string) {
	t.Helper()
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s := base64.StdEncoding.EncodeToString(raw)
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

func TestParseKey_RejectsWrongLengthAndBadBase64(t *testing.T) {
	for _, in := range []string{"", "not base64!!", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if _, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%q) accepted a bad key", in)
		}
	}
}

func TestRing_SealOpenRoundTripAndRotation(t *testing.T) {
	old, _ := newKey(t)
	cur, _ := newKey(t)
	oldRing := NewRing(old)
	id, ct, err := oldRing.Seal([]byte("refresh-token"), []byte("instance:1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("refresh-token")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	rotated := NewRing(cur, old)
	pt, err := rotated.Open(id, ct, []byte("instance:1"))
	if err != nil || string(pt) != "refresh-token" {
		t.Fatalf("previous key should still decrypt: %q %v", pt, err)
	}
	if _, err := rotated.Open(id, ct, []byte("instance:2")); err == nil {
		t.Fatal("ciphertext opened under another row's aad")
	}
	if _, err := NewRing(cur).Open(id, ct, []byte("instance:1")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("want ErrUnknownKey without the previous key, got %v", err)
	}
	if id2, _, _ := rotated.Seal([]byte("x"), nil); id2 != cur.ID || id2 == old.ID {
		t.Fatalf("new ciphertexts must use the current key id %s, got %s", cur.ID, id2)
	}
}

func TestNewToken_UniqueAndHashed(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) < 40 {
		t.Fatalf("tokens not unique or too short: %q %q", a, b)
	}
	if !Equal(Hash(a), Hash(a)) || Equal(Hash(a), Hash(b)) {
		t.Fatal("hash comparison wrong")
	}
}
