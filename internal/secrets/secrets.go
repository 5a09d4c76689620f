// Package secrets owns how connectord keeps secrets: AES-256-GCM encryption of
// stored credentials under a key ring (a current key plus previous keys that still
// decrypt), and the generation and hashing of the opaque secrets it hands out
// (organization and user secrets, instance tokens, hook paths).
//
// It must not log, print or return a plaintext anywhere but to its caller.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// Key is one AES-256 key and its identifier.
type Key struct {
	ID   string
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(b64 string) (Key, error) {
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		raw, err = enc.DecodeString(b64)
		if err == nil {
			break
		}
	}
	if err != nil {
		return Key{}, errors.New("not valid base64")
	}
	if len(raw) != KeySize {
		return Key{}, fmt.Errorf("decodes to %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return Key{}, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("gcm: %w", err)
	}
	// The identifier is a hash of the key under a fixed label: it tells keys apart
	// without revealing anything usable about them.
	sum := sha256.Sum256(append([]byte("connectord key id\x00"), raw...))
	return Key{ID: hex.EncodeToString(sum[:6]), aead: aead}, nil
}

// Ring encrypts with its current key and decrypts with any key it holds.
type Ring struct {
	current Key
	byID    map[string]Key
}

// NewRing returns a ring that encrypts under current and also decrypts under previous.
func NewRing(current Key, previous ...Key) *Ring {
	r := &Ring{current: current, byID: map[string]Key{current.ID: current}}
	for _, k := range previous {
		r.byID[k.ID] = k
	}
	return r
}

// CurrentID is the identifier of the key new ciphertexts are made with.
func (r *Ring) CurrentID() string { return r.current.ID }

// Has reports whether the ring holds the key named id.
func (r *Ring) Has(id string) bool {
	_, ok := r.byID[id]
	return ok
}

// ErrUnknownKey means a ciphertext was made with a key the ring does not hold.
var ErrUnknownKey = errors.New("secrets: ciphertext was encrypted with a key that is not configured (set CONNECTORD_ENCRYPTION_KEY_PREVIOUS)")

// Seal encrypts plaintext bound to aad (for example the row it belongs to) and
// returns the key identifier and the nonce-prefixed ciphertext.
func (r *Ring) Seal(plaintext, aad []byte) (keyID string, ciphertext []byte, err error) {
	nonce := make([]byte, r.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return r.current.ID, r.current.aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts a ciphertext made by Seal with the key named keyID.
func (r *Ring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	k, ok := r.byID[keyID]
	if !ok {
		return nil, ErrUnknownKey
	}
	n := k.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, errors.New("secrets: ciphertext too short")
	}
	pt, err := k.aead.Open(nil, ciphertext[:n], ciphertext[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("secrets: decrypt: %w", err)
	}
	return pt, nil
}

// NewToken returns a fresh random opaque secret: 32 bytes, URL-safe base64.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on supported platforms; a failure here means
		// the system cannot produce secrets at all.
		panic("secrets: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns the stored form of a random secret. The secrets connectord issues
// carry 256 bits of entropy, so one SHA-256 is enough; a slow hash would add
// nothing but latency to every authenticated request.
func Hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Equal reports whether two hashes match, in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
