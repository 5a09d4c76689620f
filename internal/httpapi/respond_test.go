package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
)

type body struct {
	Name    string `json:"name"`
	Element *struct {
		Key string `json:"key"`
	} `json:"element"`
	Items []struct {
		A int `json:"a"`
	} `json:"items"`
	Free map[string]any `json:"free"`
}

func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string // substrings of the error; none means success
	}{
		{"ok", `{"name":"x","element":{"key":"k"},"items":[{"a":1}],"free":{"anything":1}}`, nil},
		{"unknown at every depth", `{"nam":"x","element":{"kee":"k"},"items":[{"b":1}]}`, []string{"nam", "element.kee", "items.0.b"}},
		{"syntax with position", "{\n\"name\": \"x\"\n,,}", []string{"line 3, column 2"}},
		{"type", `{"name":1}`, []string{"field name must be a string"}},
		{"nested type", `{"element":{"key":false}}`, []string{"element.key", "string"}},
		{"trailing garbage", `{"name":"x"} {}`, []string{"malformed JSON"}},
		{"array", `[]`, []string{"JSON object"}},
		{"blank", "  ", []string{"empty"}},
		{"NUL in a value", `{"name":"a\u0000b"}`, []string{`"name"`, "NUL"}},
		{"NUL deep in a value", `{"items":[{"a":1},{"a":2}],"free":{"x":["ok","\u0000"]}}`, []string{`"free.x.1"`, "NUL"}},
		{"NUL in a member name", `{"free":{"a\u0000":1}}`, []string{`"free"`, "NUL"}},
		{"invalid UTF-8", "{\"name\":\"caf\xe9\"}", []string{"UTF-8", "column 13"}},
		{"case differs", `{"NAME":"x"}`, []string{"unknown fields", "NAME"}},
		{"nested case differs", `{"element":{"Key":"k"}}`, []string{"unknown fields", "element.Key"}},
		{"duplicate", `{"name":"x","name":"y"}`, []string{`field "name" is given twice`}},
		{"duplicate nested", `{"element":{"key":"a","key":"b"}}`, []string{`"element.key" is given twice`}},
		{"duplicate in a free map", `{"free":{"k":1,"k":2}}`, []string{`"free.k" is given twice`}},
		{"same name in sibling objects", `{"items":[{"a":1},{"a":2}],"element":{"key":"k"},"name":"n"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v body
			err := decodeStrict([]byte(tt.in), &v)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("want an invalid error, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{`{"name":"x"}`, `{"element":{"key":1}}`, `{"items":[{"a":"b"}]}`, `{`, `null`, `{"free":{"x":[1,{"y":null}]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v body
		err := decodeStrict([]byte(in), &v)
		if err != nil && apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("non-400 error for %q: %v", in, err)
		}
		if err != nil {
			return
		}
		// What is accepted is what PostgreSQL can store and what the
		// caller wrote: UTF-8 and no NUL.
		if !utf8.ValidString(in) {
			t.Fatalf("accepted invalid UTF-8: %q", in)
		}
		if strings.ContainsRune(v.Name, 0) || v.Element != nil && strings.ContainsRune(v.Element.Key, 0) {
			t.Fatalf("accepted a NUL: %q", in)
		}
	})
}

type downDB struct{}

func (downDB) Ping(context.Context) error { return errors.New("connection refused") }

func TestReadyz_DatabaseDownIs503(t *testing.T) {
	t.Parallel()
	h := withRequestID(zerolog.Nop())(readyz(downDB{}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "database") || strings.Contains(rec.Body.String(), "refused") {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestInternalErrorsAreGeneric(t *testing.T) {
	t.Parallel()
	h := withRequestID(zerolog.Nop())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errors.New("pq: secret detail"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret detail") || !strings.Contains(rec.Body.String(), rec.Header().Get(RequestIDHeader)) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	got := redactQuery(url.Values{"apiSecret": {"s"}, "code": {"c"}, "state": {"st"}, "tags": {"a"}, "apiKey": {"k"}})
	for _, leaked := range []string{"=s&", "=c&", "=k&"} {
		if strings.Contains(got+"&", leaked) {
			t.Fatalf("redactQuery kept a secret value: %s", got)
		}
	}
	if !strings.Contains(got, "state=st") || !strings.Contains(got, "tags=a") {
		t.Fatalf("redactQuery hid harmless values: %s", got)
	}
}

// FuzzCheckURLText: whatever a path and query hold, the check answers 400 or
// lets through only text PostgreSQL can store.
func FuzzCheckURLText(f *testing.F) {
	for _, s := range []string{"/instances?tags=a", "/instances?tags=%00", "/instances/1/events/%00/redeliver", "/x?%ff=1", "/caf%C3%A9?t=%C3%A9", "/events/keap/%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		if err := checkURLText(u); err != nil {
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("non-400 error for %q: %v", target, err)
			}
			if len(err.Error()) > 2*maxEchoed+200 {
				t.Fatalf("the error repeats too much of %q: %d bytes", target, len(err.Error()))
			}
			return
		}
		if badText(u.Path) {
			t.Fatalf("accepted path %q", u.Path)
		}
		for k, vs := range u.Query() {
			for _, v := range append(vs, k) {
				if badText(v) {
					t.Fatalf("accepted query %q", u.RawQuery)
				}
			}
		}
	})
}
