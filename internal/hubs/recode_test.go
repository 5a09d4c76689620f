package hubs

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// reference is what recode must write: data decoded into maps, nulls
// stripped, and encoded again, as the hubs did before recode.
func reference(data []byte, strip bool) ([]byte, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	if strip {
		v = stripNullsOf(v)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func stripNullsOf(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = stripNullsOf(e)
		}
	case []any:
		for i, e := range x {
			x[i] = stripNullsOf(e)
		}
	}
	return v
}

var recodeCases = []string{
	`{"contacts":[{"id":1,"given_name":"Bench","middle_name":null,"email_addresses":[{"email":"a@b.c","field":"EMAIL1"}],"tag_ids":[],"score":1.50,"big":12345678901234567890,"ok":true}],"count":1,"next":null}`,
	` [ 1 , null , { "b" : null , "a" : [ ] } , "x" ] `,
	`{"b":1,"a":2,"b":null}`,                                   // the last of duplicate keys counts, null or not
	`{"a":1,"\u0061":2}`,                                       // equal once decoded
	`{"k\u00e9y":"caf\u00e9 \/ \"q\" \n \u2028 \ud83d\ude00"}`, // escapes, written as encoding/json writes them
	`{"html":"<a href='x'>&amp;</a>","tab":"a\tb","uni":"日本語","sep":" "}`,
	`"just a string"`, `12e-3`, `-0`, `true`, `null`, `[]`, `{}`, `[[[{"a":[null,{"b":null}]}]]]`,
	"{\"bad\":\"\xff\xfe\"}", // invalid UTF-8 becomes U+FFFD
	`{"z":{"y":{"x":null,"w":[1,2,{"v":null}]}},"a":"\u0000"}`,
}

func TestRecode_WritesWhatDecodingAndEncodingWrote(t *testing.T) {
	t.Parallel()
	for _, c := range recodeCases {
		for _, strip := range []bool{true, false} {
			want, werr := reference([]byte(c), strip)
			got, gerr := recode([]byte(c), strip)
			if (werr != nil) != (gerr != nil) || string(got) != string(want) {
				t.Errorf("recode(%s, %v) = %q, %v; want %q, %v", c, strip, got, gerr, want, werr)
			}
		}
	}
	for _, bad := range []string{`{"a":}`, `[1,]`, `{"a":1} {}`, `nul`, `"open`, ``, `{"a" 1}`} {
		if _, err := recode([]byte(bad), true); err == nil {
			t.Errorf("recode(%q) accepted it", bad)
		}
	}
	// recode checks the document itself, as json.Valid would.
	for _, c := range append(slices.Clone(recodeCases), pageCases...) {
		if _, err := recode([]byte(c), true); (err == nil) != json.Valid([]byte(c)) {
			t.Errorf("recode(%q): %v, but json.Valid says %v", c, err, json.Valid([]byte(c)))
		}
	}
}

func TestReadPage_FindsTheLastOfEachName(t *testing.T) {
	t.Parallel()
	p, err := readPage([]byte(` {"contacts":[1],"count":3,"x":{"count":9},"contacts":[2, 3] } `), "contacts", true)
	if err != nil || string(p.body) != "[2,3]\n" || p.n != 2 || string(p.count) != "3" {
		t.Fatalf("%q %d %q %v", p.body, p.n, p.count, err)
	}
	if _, err := readPage([]byte(`[{"contacts":[]}]`), "contacts", true); err != errNotObject {
		t.Fatalf("an array is not an object: %v", err)
	}
}

// FuzzRecode checks recode against decoding and encoding on any input Keap
// might send.
func FuzzRecode(f *testing.F) {
	for _, c := range recodeCases {
		f.Add([]byte(c), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, strip bool) {
		want, werr := reference(data, strip)
		got, gerr := recode(data, strip)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("recode error %v, decoding error %v", gerr, werr)
		}
		if (gerr == nil) != json.Valid(data) {
			t.Fatalf("recode error %v, but json.Valid says %v", gerr, json.Valid(data))
		}
		if werr == nil && string(got) != string(want) {
			t.Fatalf("recode wrote %q, want %q", got, want)
		}
	})
}

func BenchmarkRecode_ContactsPage(b *testing.B) {
	item := `{"id":1,"given_name":"Bench","family_name":"Contact 1","email_addresses":[{"email":"bench1@example.test","field":"EMAIL1"}],"phone_numbers":[],"addresses":[],"tag_ids":[],"date_created":"2026-01-01T00:00:00.000Z","last_updated":"2026-01-02T00:00:00.000Z","email_status":"SingleOptIn","email_opted_in":true,"middle_name":null,"company":null}`
	page := []byte(`{"contacts":[` + strings.TrimSuffix(strings.Repeat(item+",", 10), ",") + `],"count":10,"next":null,"previous":null}`)
	b.Run("recode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = readPage(page, "contacts", true)
		}
	})
	b.Run("decode-and-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var env map[string]json.RawMessage
			_ = json.Unmarshal(page, &env)
			_, _ = reference(env["contacts"], true)
		}
	})
}
