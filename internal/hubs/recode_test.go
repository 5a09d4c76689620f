package hubs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// reference is what the hubs wrote before recode: data decoded into maps,
// nulls stripped, and encoded again. recode writes members in Keap's order
// instead, so what it writes must mean what reference wrote, not match it
// byte for byte (see sameMeaning).
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

// sameMeaning fails t unless out, which recode or readPage wrote for the
// JSON value in, reads as want (the old path's output, or reference's) reads:
// decoded by encoding/json, numbers as written, the two are deeply equal.
// out must also be compact, valid JSON and valid UTF-8, end in one newline,
// and hold in's tokens in in's order: all of them without strip, and some of
// them (members left out, none moved) with it.
func sameMeaning(t *testing.T, in, out, want []byte, strip bool) {
	t.Helper()
	got, err := decodeJSON(out)
	if err != nil {
		t.Fatalf("output %s does not decode: %v", short(out), err)
	}
	wantV, err := decodeJSON(want)
	if err != nil {
		t.Fatalf("the old output %s does not decode: %v", short(want), err)
	}
	if !reflect.DeepEqual(got, wantV) {
		t.Fatalf("output %s means %#v;\nbefore %s meant %#v", short(out), got, short(want), wantV)
	}
	if err := checkShape(out); err != nil {
		t.Fatalf("output %s: %v", short(out), err)
	}
	inTokens, outTokens := tokens(t, in), tokens(t, out)
	if !strip && !slices.Equal(inTokens, outTokens) {
		t.Fatalf("output %s does not hold the tokens of %s, in order", short(out), short(in))
	}
	if strip && !isSubsequence(outTokens, inTokens) {
		t.Fatalf("output %s holds tokens of %s out of order, or others", short(out), short(in))
	}
}

// checkShape says what is wrong with out as recode's output: it must be valid
// UTF-8 and valid JSON, followed by one newline, with no space outside
// strings.
func checkShape(out []byte) error {
	body, ok := bytes.CutSuffix(out, []byte("\n"))
	switch {
	case !ok:
		return errors.New("no newline at the end")
	case !utf8.Valid(out):
		return errors.New("not valid UTF-8")
	case !json.Valid(body):
		return errors.New("not valid JSON")
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case inString && c == '\\':
			i++ // the escaped byte cannot end the string
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return errors.New("space outside strings: not compact")
		}
	}
	return nil
}

// tokens returns the JSON tokens of data, in order, as encoding/json's
// Decoder reads them: delimiters, names and strings decoded, numbers as
// written, booleans and nulls.
func tokens(t *testing.T, data []byte) []json.Token {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var ts []json.Token
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return ts
		}
		if err != nil {
			t.Fatalf("tokens of %s: %v", short(data), err)
		}
		ts = append(ts, tok)
	}
}

// isSubsequence says whether sub is seq with some of its elements left out.
func isSubsequence(sub, seq []json.Token) bool {
	i := 0
	for _, tok := range seq {
		if i < len(sub) && sub[i] == tok {
			i++
		}
	}
	return i == len(sub)
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
	// A null left out takes the earlier members of its name along.
	`{"x":0,"b":1,"\u0062":2,"b":null,"b":4,"c":{"d":[],"d":null}}`,
	"{\"k\xff\":1,\"k\xfe\":null,\"z\":[{\"q\":null,\"q\":1},{\"q\":1,\"q\":null}]}",
}

func TestRecode_MeansWhatDecodingAndEncodingWrote(t *testing.T) {
	t.Parallel()
	for _, c := range recodeCases {
		for _, strip := range []bool{true, false} {
			want, werr := reference([]byte(c), strip)
			got, gerr := recode([]byte(c), strip)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("recode(%s, %v): %v; decoding: %v", c, strip, gerr, werr)
			}
			if werr == nil {
				sameMeaning(t, []byte(c), got, want, strip)
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

// recode keeps Keap's order and Keap's bytes: it leaves out space and, with
// strip, null members (and the members a null's name repeats), and rewrites
// only strings that are not UTF-8.
func TestRecode_KeepsKeapsOrderAndBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		strip bool
		want  string
	}{
		{`{"z":1,"a":null,"m":{"y":2,"b":null,"x":[null,{"q":null}]}}`, true, `{"z":1,"m":{"y":2,"x":[null,{}]}}`},
		{`{"z":1,"a":null,"m":{"y":2,"b":null,"x":[null,{"q":null}]}}`, false, `{"z":1,"a":null,"m":{"y":2,"b":null,"x":[null,{"q":null}]}}`},
		{" { \"b\" : 1 ,\n\t\"a\" : [ 1 , 2 ] } \r\n", true, `{"b":1,"a":[1,2]}`},
		// Nulls first, last, alone, all, and nested.
		{`{"a":null,"b":1,"c":null}`, true, `{"b":1}`},
		{`{"a":null,"b":null}`, true, `{}`},
		{`{"a":null}`, true, `{}`},
		{`[{"a":null},{"b":null,"c":{"d":null}},null]`, true, `[{},{"c":{}},null]`},
		{`{"a":{"b":null},"c":[{"d":null,"e":1,"f":null}],"g":null}`, true, `{"a":{},"c":[{"e":1}]}`},
		// Values as Keap wrote them.
		{`{"n":1.50e+02,"m":-0,"s":"caf\u00e9 \/ <&> \"q\"","u":"\u2028 é","big":12345678901234567890}`, true,
			`{"n":1.50e+02,"m":-0,"s":"caf\u00e9 \/ <&> \"q\"","u":"\u2028 é","big":12345678901234567890}`},
		// Repeated names pass through; a null takes the earlier ones of its name along.
		{`{"b":1,"a":2,"b":3}`, true, `{"b":1,"a":2,"b":3}`},
		{`{"b":1,"a":2,"b":null}`, false, `{"b":1,"a":2,"b":null}`},
		{`{"b":1,"a":2,"b":null}`, true, `{"a":2}`},
		{`{"b":null,"b":1}`, true, `{"b":1}`},
		{`{"b":1,"\u0062":null,"c":1}`, true, `{"c":1}`},
		{`{"x":0,"b":1,"b":2,"b":null,"b":4}`, true, `{"x":0,"b":4}`},
		{`{"a":1,"b":{"a":null},"a":null}`, true, `{"b":{}}`},
		// Strings that are not UTF-8 are the only ones rewritten.
		{"{\"k\xff\":\"a\xffb\",\"ok\":\"\\u00e9\"}", true, "{\"k\uFFFD\":\"a\uFFFDb\",\"ok\":\"\\u00e9\"}"},
		{"\"\xff\\n\\u0041\"", true, "\"\uFFFD\\nA\""}, // escapes resolved, as encoding/json writes them
		{"{\"k\xff\":1,\"k\xfe\":null}", true, `{}`},
	}
	for _, tt := range tests {
		got, err := recode([]byte(tt.in), tt.strip)
		if err != nil || string(got) != tt.want+"\n" {
			t.Errorf("recode(%q, %v) = %q, %v; want %q", tt.in, tt.strip, got, err, tt.want+"\n")
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
// might send: it must accept what json.Valid accepts, and what it writes must
// mean what decoding and encoding wrote.
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
		if werr == nil {
			sameMeaning(t, data, got, want, strip)
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

// allSafe, which looks at 8 bytes at once, judges as strSafe does, byte by
// byte, wherever in the word a byte is and whatever is around it.
func TestAllSafe_JudgesAsTheTable(t *testing.T) {
	t.Parallel()
	for _, fill := range []byte{'a', ' ', '~', 0x7f, 0x21, 0x23, 0x5b, 0x5d} {
		for c := range 256 {
			for k := range 8 {
				w := bytes.Repeat([]byte{fill}, 8)
				w[k] = byte(c)
				if got, want := allSafe(binary.LittleEndian.Uint64(w)), strSafe[c]; got != want {
					t.Fatalf("allSafe(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
}
