// Package trace owns connectord's W3C Trace Context (traceparent): parsing
// the header a caller sent, starting a trace when none came, and carrying it
// in a context to the calls connectord makes on the request's behalf (Keap,
// callbacks) and to its log lines.
//
// It propagates and logs only; it records no spans and exports nothing (see
// README, "Trace context"). It must not trust a malformed header: one that
// breaks https://www.w3.org/TR/trace-context/ is ignored and a trace started.
package trace

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

// Header is the W3C header's name.
const Header = "traceparent"

// Context is one position in a trace: the trace, the span that is the
// parent of what is sent next, and the trace flags (bit 0: sampled).
type Context struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// Valid says whether c names a trace (W3C: all-zero ids are invalid).
func (c Context) Valid() bool { return c.TraceID != [16]byte{} && c.SpanID != [8]byte{} }

// TraceIDString is the trace id as 32 lower-case hex digits, "" when invalid.
func (c Context) TraceIDString() string {
	if !c.Valid() {
		return ""
	}
	return hex.EncodeToString(c.TraceID[:])
}

// String formats c as a version 00 traceparent, "" when invalid.
func (c Context) String() string {
	if !c.Valid() {
		return ""
	}
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], c.TraceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], c.SpanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{c.Flags & knownFlags})
	return string(b[:])
}

// knownFlags are the flags connectord passes on: sampled (bit 0) and, from
// Trace Context level 2, random (bit 1); the spec has unknown ones zeroed.
const knownFlags = 0x03

// Parse reads a traceparent header as the W3C Trace Context spec says: a
// version of two hex digits other than ff; for version 00 exactly
// version-traceid-parentid-flags; for a later version at least those four
// fields, possibly followed by "-" and more, which are ignored. Hex is lower
// case; an all-zero trace id or parent id makes the header invalid.
func Parse(h string) (Context, bool) {
	var c Context
	if len(h) < 55 {
		return c, false
	}
	ver, ok := hexByte(h[0:2])
	if !ok || ver == 0xff || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return c, false
	}
	if ver == 0 && len(h) != 55 {
		return c, false
	}
	if ver > 0 && len(h) > 55 && h[55] != '-' {
		return c, false
	}
	if !lowerHex(h[3:35]) || !lowerHex(h[36:52]) || !lowerHex(h[53:55]) {
		return c, false
	}
	_, _ = hex.Decode(c.TraceID[:], []byte(h[3:35]))
	_, _ = hex.Decode(c.SpanID[:], []byte(h[36:52]))
	c.Flags, _ = hexByte(h[53:55])
	if !c.Valid() {
		return Context{}, false
	}
	return c, true
}

func hexByte(s string) (byte, bool) {
	if len(s) != 2 || !lowerHex(s) {
		return 0, false
	}
	var b [1]byte
	_, err := hex.Decode(b[:], []byte(s))
	return b[0], err == nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// New starts a trace: random ids (math/rand/v2's ChaCha8, seeded by the
// system: trace ids must be unique, not secret), sampled.
func New() Context {
	var c Context
	for !c.Valid() {
		binary.LittleEndian.PutUint64(c.TraceID[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(c.TraceID[8:], rand.Uint64())
		binary.LittleEndian.PutUint64(c.SpanID[:], rand.Uint64())
	}
	c.Flags = 1
	return c
}

// Child is c with a new span id: connectord's own span within the caller's
// trace, the parent of the calls it makes.
func (c Context) Child() Context {
	c.SpanID = [8]byte{}
	for c.SpanID == [8]byte{} {
		binary.LittleEndian.PutUint64(c.SpanID[:], rand.Uint64())
	}
	return c
}

// Incoming returns the context of a request that carried header h:
// connectord's span in the caller's trace, or a new trace when h is absent
// or invalid.
func Incoming(h string) Context {
	if c, ok := Parse(h); ok {
		return c.Child()
	}
	return New()
}

type ctxKey struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// From returns the trace context ctx carries; ok is false when none.
func From(ctx context.Context) (Context, bool) {
	c, ok := ctx.Value(ctxKey{}).(Context)
	return c, ok && c.Valid()
}

// Transport is an http.RoundTripper that sends the trace context of each
// request's context as traceparent, for clients whose requests are built
// elsewhere (x/oauth2's token calls). A request that has the header keeps it.
type Transport struct {
	Base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tc, ok := From(r.Context())
	if !ok || r.Header.Get(Header) != "" {
		return base.RoundTrip(r)
	}
	// A RoundTripper must not change the caller's request: send a copy
	// whose header has the trace.
	out := *r
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	out.Header.Set(Header, tc.String())
	return base.RoundTrip(&out)
}
