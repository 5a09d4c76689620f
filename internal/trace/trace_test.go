package trace

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParse_FollowsTheW3CSpec(t *testing.T) {
	t.Parallel()
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		name, header string
		ok           bool
		flags        byte
	}{
		{"the spec's example", "00-" + tid + "-" + sid + "-01", true, 1},
		{"not sampled", "00-" + tid + "-" + sid + "-00", true, 0},
		{"a future version with more fields", "cc-" + tid + "-" + sid + "-01-what-the-future-holds", true, 1},
		{"a future version, exactly four fields", "01-" + tid + "-" + sid + "-09", true, 9},
		{"version ff is invalid", "ff-" + tid + "-" + sid + "-01", false, 0},
		{"version 00 with more fields", "00-" + tid + "-" + sid + "-01-extra", false, 0},
		{"a future version running on without a dash", "01-" + tid + "-" + sid + "-01x", false, 0},
		{"upper-case hex", "00-" + strings.ToUpper(tid) + "-" + sid + "-01", false, 0},
		{"all-zero trace id", "00-" + strings.Repeat("0", 32) + "-" + sid + "-01", false, 0},
		{"all-zero parent id", "00-" + tid + "-" + strings.Repeat("0", 16) + "-01", false, 0},
		{"short trace id", "00-" + tid[:30] + "-" + sid + "-01", false, 0},
		{"not hex", "00-" + strings.Replace(tid, "4", "g", 1) + "-" + sid + "-01", false, 0},
		{"spaces for dashes", "00 " + tid + " " + sid + " 01", false, 0},
		{"empty", "", false, 0},
		{"upper-case version", "0A-" + tid + "-" + sid + "-01", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := Parse(tt.header)
			if ok != tt.ok {
				t.Fatalf("Parse(%q) ok = %v, want %v", tt.header, ok, tt.ok)
			}
			if !ok {
				return
			}
			if c.TraceIDString() != tid || c.Flags != tt.flags {
				t.Fatalf("Parse(%q) = %s flags %x", tt.header, c.TraceIDString(), c.Flags)
			}
			// Passed on as version 00 with the flags connectord knows.
			if want := "00-" + tid + "-" + sid + "-0" + string("0123456789abcdef"[tt.flags&knownFlags]); c.String() != want {
				t.Fatalf("String() = %q, want %q", c.String(), want)
			}
		})
	}
}

func TestIncoming_KeepsTheTraceWithANewSpanOrStartsOne(t *testing.T) {
	t.Parallel()
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	c := Incoming(in)
	parent, _ := Parse(in)
	if c.TraceID != parent.TraceID || c.SpanID == parent.SpanID || !c.Valid() || c.Flags != 1 {
		t.Fatalf("Incoming(%q) = %s", in, c)
	}
	a, b := Incoming(""), Incoming("garbage")
	if !a.Valid() || !b.Valid() || a.TraceID == b.TraceID || a.Flags != 1 {
		t.Fatalf("new traces %s and %s", a, b)
	}
	if _, ok := Parse(a.String()); !ok {
		t.Fatalf("a new trace's header %q does not parse", a.String())
	}
}

func TestTransport_SendsTheContextsTraceWithoutChangingTheRequest(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, r.Header.Get(Header)) }))
	defer srv.Close()
	c := New()
	client := &http.Client{Transport: &Transport{}}
	req, _ := http.NewRequestWithContext(With(context.Background(), c), "GET", srv.URL, nil)
	if _, err := client.Do(req); err != nil {
		t.Fatal(err)
	}
	if req.Header.Get(Header) != "" {
		t.Fatal("the caller's request was changed")
	}
	req, _ = http.NewRequest("GET", srv.URL, nil) // no trace in the context
	if _, err := client.Do(req); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != c.String() || got[1] != "" {
		t.Fatalf("the server saw %q, want %q then nothing", got, c.String())
	}
}

func FuzzParse(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		c, ok := Parse(h)
		if !ok {
			return
		}
		if !c.Valid() || len(c.String()) != 55 {
			t.Fatalf("Parse(%q) accepted an invalid context %q", h, c.String())
		}
		again, ok := Parse(c.String())
		if !ok || again.TraceID != c.TraceID || again.SpanID != c.SpanID {
			t.Fatalf("%q does not round-trip", c.String())
		}
		if strings.HasPrefix(h, "00-") && h != c.String() && c.Flags == c.Flags&knownFlags {
			t.Fatalf("version 00 header %q came back as %q", h, c.String())
		}
	})
}
