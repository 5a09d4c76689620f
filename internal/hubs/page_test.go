package hubs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
)

// pageCases are Keap answers to a contacts list, valid and not. readPage must
// read each as the path before it did (oldListPage: json.Valid, members,
// recodeValid).
var pageCases = []string{
	// The list before and after count, with and without space.
	`{"contacts":[{"id":1,"middle_name":null}],"count":1}`,
	`{"count":1,"contacts":[{"id":1,"middle_name":null}]}`,
	" \n\t{ \"count\" : 2 ,\r\n \"contacts\" : [ { \"id\" : 1 , \"x\" : null } , { } ] , \"next\" : null } \n",
	`{"contacts":[],"count":0,"next":null,"previous":null}`,
	// Objects and arrays inside the list and beside it.
	`{"contacts":[{"a":{"b":{"c":[1,{"d":null,"e":[[],{}]}]}},"z":[null,true,false,-0.5e+3,"s"]}],"meta":{"x":[{"y":null}]},"count":1}`,
	// Escaped keys name the list and count once decoded.
	`{"cont\u0061cts":[1,2],"\u0063ount":5}`,
	`{"contacts\u0000":[1],"count":1}`,
	`{"k\u00e9y":"caf\u00e9 \/ \"q\" \n \u2028 \ud83d\ude00","contacts":[{"\u00e9":"\u2029","é":1,"tab\t":"a\tb"}]}`,
	// The list's name inside another member is not the list.
	`{"data":{"contacts":[1]},"count":1}`,
	`{"contacts":[{"contacts":[9],"count":7}],"x":{"count":9}}`,
	`{"x":["contacts",{"contacts":[]}],"contacts":null}`,
	// Repeated names: the last counts, as members found it.
	`{"contacts":[1],"contacts":[2,3],"count":3}`,
	`{"contacts":[1,2],"contacts":null}`,
	`{"contacts":null,"contacts":[1]}`,
	`{"contacts":[1],"contacts":5}`,
	`{"contacts":{"a":1},"contacts":[{"b":null,"b":2}]}`,
	`{"count":1,"count":2,"contacts":[],"count":"3"}`,
	// A null list is an empty page; any other non-array is no list.
	`{"contacts":null,"count":0}`,
	`{"contacts":{}}`, `{"contacts":"x"}`, `{"contacts":1}`, `{"contacts":true}`,
	// No list at all, or no object.
	`{}`, `{"count":1}`, `null`, " null\n", `[]`, `[{"contacts":[]}]`, `1`, `"x"`, `true`,
	// Invalid JSON, in the list, beside it or around it.
	``, ` `, `{`, `{"contacts":[1,2]`, `{"contacts":[1,2]}}`, `{"contacts":[1,2]} x`, `{"contacts":[1]}{}`,
	`{"contacts":[1,]}`, `{"contacts":[1],}`, `{,"contacts":[1]}`, `{"contacts" [1]}`, `{"contacts"::[1]}`, `{contacts:[1]}`,
	`{"contacts":[01]}`, `{"contacts":[1.]}`, `{"contacts":[-]}`, `{"contacts":[1e]}`, `{"contacts":[.5]}`, `{"contacts":[+1]}`,
	"{\"contacts\":[\"a\x01\"]}", "{\"contacts\":[\"a\x1f\"]}", "{\"contacts\":[\"a\x7f\"]}", "{\"contacts\":[\"\x1f\"],\"\x1f\":1}", `{"contacts":["\x"]}`, `{"contacts":["\u12"]}`, `{"contacts":["\u12g4"]}`, `{"contacts":["open]}`,
	`{"contacts":[tru]}`, `{"contacts":[nulll]}`, `{"contacts":[True]}`, `{"contacts":[1 2]}`, `{"contacts":[[1]:2]}`,
	`{"contacts":[1],"next":nul}`, `{"contacts":[1],"count":}`, `{"contacts":[1],"x":[}`, `{"contacts":[1],"x":{"a"}}`,
	`{"contacts":[1,],"contacts":[2]}`, `{"contacts":[1],"contacts":[2,]}`, `nul`, `nullx`, `[1,2`, `"open`, "{\"contacts\":[1]}\x00",
	"\xef\xbb\xbf{\"contacts\":[]}", "{\"contacts\":[]}\v",
	// Bytes that are not UTF-8, in keys and values.
	"{\"contacts\":[\"\xff\xfe\",{\"k\xff\":1}],\"c\xffount\":1}",
	"{\"cont\xffacts\":[1]}",
}

// samePage fails t unless readPage reads data as oldListPage does: the same
// error, elements and count, and a list that means what the old one did (see
// sameMeaning), though its members keep Keap's order.
func samePage(t *testing.T, data []byte, listKey string, strip bool) {
	t.Helper()
	wantBody, wantN, wantCount, wantErr := oldListPage(data, listKey, strip)
	p, err := readPage(data, listKey, strip)
	if err != wantErr || (p.body == nil) != (wantBody == nil) || p.n != wantN || !bytes.Equal(p.count, wantCount) || (p.count == nil) != (wantCount == nil) {
		t.Fatalf("readPage(%s, %q, %v) = %s, %d, count %q, %v;\nbefore: %s, %d, count %q, %v",
			short(data), listKey, strip, short(p.body), p.n, p.count, err, short(wantBody), wantN, wantCount, wantErr)
	}
	if wantBody == nil {
		return
	}
	// The list as Keap wrote it (the last of its name) is what the page
	// must hold the tokens of.
	env, _, _ := oldMembers(data, listKey)
	if list := env[0]; list[0] == 'n' {
		if string(p.body) != "[]\n" {
			t.Fatalf("readPage(%s): a null list is %q, not []", short(data), p.body)
		}
	} else {
		sameMeaning(t, list, p.body, wantBody, strip)
	}
}

// short quotes b, or its start and end when it is long.
func short(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%q…(%d bytes)…%q", b[:100], len(b)-200, b[len(b)-100:])
	}
	return fmt.Sprintf("%q", b)
}

func TestReadPage_ReadsAsBefore(t *testing.T) {
	t.Parallel()
	for _, c := range pageCases {
		for _, strip := range []bool{true, false} {
			samePage(t, []byte(c), "contacts", strip)
			samePage(t, []byte(c), "count", strip) // a list named like the count
		}
	}
}

func TestReadPage_Outcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, body, count string
		n               int
		err             error
	}{
		{`{"count":2,"contacts":[{"b":null,"a":1},{}]}`, `[{"a":1},{}]` + "\n", "2", 2, nil},
		{`{"cont\u0061cts":[1,2],"\u0063ount":5}`, "[1,2]\n", "5", 2, nil},
		{`{"contacts":[1,2],"contacts":null}`, "[]\n", "", 0, nil},
		{`{"contacts":null,"contacts":[1]}`, "[1]\n", "", 1, nil},
		{`{"data":{"contacts":[1]},"count":1}`, "", "", 0, errLacksList},
		{" null ", "", "", 0, errLacksList},
		{`{"contacts":[1],"contacts":5}`, "", "", 0, errNoList},
		{`[{"contacts":[]}]`, "", "", 0, errNotObject},
		{`{"contacts":[1],"next":nul}`, "", "", 0, errNotObject},
		{`{"contacts":[1]`, "", "", 0, errNotObject},
	}
	for _, tt := range tests {
		p, err := readPage([]byte(tt.in), "contacts", true)
		if err != tt.err || string(p.body) != tt.body || string(p.count) != tt.count || p.n != tt.n {
			t.Errorf("readPage(%s) = %q, %d, %q, %v; want %q, %d, %q, %v", tt.in, p.body, p.n, p.count, err, tt.body, tt.n, tt.count, tt.err)
		}
	}
}

// Every prefix of a Keap page, and the page with each of its bytes replaced by
// one that often breaks JSON, reads as before.
func TestReadPage_TruncatedAndDamagedPages(t *testing.T) {
	t.Parallel()
	page := []byte(`{"contacts":[{"id":1,"given_name":"Ann \"A\" \u00e9","email_addresses":[{"email":"a@b.c","field":"EMAIL1"}],"score":-1.5e-3,"ok":true,"middle_name":null}],"count":1,"next":null}`)
	for i := range len(page) {
		samePage(t, page[:i], "contacts", true)
		for _, b := range []byte{'"', '}', ']', ',', ':', 'x', '0', ' ', '\\', 0} {
			damaged := bytes.Clone(page)
			damaged[i] = b
			samePage(t, damaged, "contacts", true)
		}
	}
}

// json.Valid refuses documents nested more than 10,000 deep; so do readPage
// and recode, wherever the nesting is.
func TestReadPage_NestingLimitIsJSONValids(t *testing.T) {
	t.Parallel()
	// nested is levels of objects and arrays, the last of them innermost,
	// an empty object or array. Objects nested in objects cost the old path
	// a scan per level, so most of the levels are arrays.
	nested := func(levels int, innermost string) string {
		objects := func(n int) (string, string) {
			return strings.Repeat(`{"a":`, n), strings.Repeat("}", n)
		}
		outer, outerEnd := objects(5)
		inner, innerEnd := objects(4)
		arrays := levels - 10
		return outer + strings.Repeat("[", arrays) + inner + innermost + innerEnd + strings.Repeat("]", arrays) + outerEnd
	}
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		inner := depth - 1 // the envelope is one level
		for _, doc := range []string{
			`{"contacts":` + nested(inner, "[]") + `}`,
			`{"contacts":` + nested(inner, "{}") + `}`,
			`{"contacts":[],"x":` + nested(inner, "{}") + `}`,
			`{"contacts":[` + nested(inner-1, "[]") + `]}`,
			nested(depth, "{}"), // no object of Keap's
		} {
			samePage(t, []byte(doc), "contacts", true)
			if _, err := recode([]byte(doc), true); (err == nil) != json.Valid([]byte(doc)) {
				t.Errorf("depth %d: recode error %v, json.Valid %v", depth, err, json.Valid([]byte(doc)))
			}
		}
	}
}

// The list call gives the caller the same answers and errors as before for
// what Keap might send.
func TestList_KeapAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		keap, body, next, err string
	}{
		{`{"contacts":[{"id":1,"x":null}],"count":1}`, `[{"id":1}]` + "\n", "", ""},
		{`{"contacts":[{"id":1},{"id":2}],"count":5}`, `[{"id":1},{"id":2}]` + "\n", "more", ""},
		{`{"contacts":[{"id":1},{"id":2}]}`, `[{"id":1},{"id":2}]` + "\n", "more", ""}, // a full page without a count
		{`{"contacts":[{"id":1},{"id":2}],"count":null}`, `[{"id":1},{"id":2}]` + "\n", "", ""},
		{`{"contacts":[{"id":1},{"id":2}],"count":"5"}`, `[{"id":1},{"id":2}]` + "\n", "more", ""},
		{`{"contacts":null,"count":0}`, "[]\n", "", ""},
		{`{"count":1}`, "", "", `provider_down: Keap's answer to GET contacts lacks its list "contacts"`},
		{`null`, "", "", `provider_down: Keap's answer to GET contacts lacks its list "contacts"`},
		{`{"contacts":{}}`, "", "", `provider_down: Keap's answer to GET contacts has no list in "contacts"`},
		{`[]`, "", "", `provider_down: Keap's answer to GET contacts is not a JSON object`},
		{`{"contacts":[1],"next":nul}`, "", "", `provider_down: Keap's answer to GET contacts is not a JSON object`},
		{`<html>`, "", "", `provider_down: Keap's answer to GET contacts is not a JSON object`},
	}
	for _, tt := range tests {
		s := newCannedService(t, &cannedKeap{status: http.StatusOK, body: []byte(tt.keap), length: -1}, nil)
		r, err := listContacts(s, url.Values{"pageSize": {"2"}})
		if tt.err != "" {
			if err == nil || err.Error() != tt.err || apperr.CodeOf(err) != apperr.ProviderDown {
				t.Errorf("Keap %s: %v, want %s", tt.keap, err, tt.err)
			}
			continue
		}
		if err != nil || string(r.Body) != tt.body || (r.NextPage != "") != (tt.next != "") {
			t.Errorf("Keap %s: %v, %q, next %q; want %q, next %v", tt.keap, err, r.Body, r.NextPage, tt.body, tt.next != "")
		}
	}
}

// FuzzReadPage checks readPage against the path before it on any answer Keap
// might send.
func FuzzReadPage(f *testing.F) {
	for _, c := range pageCases {
		f.Add([]byte(c), true)
	}
	for _, c := range recodeCases {
		f.Add([]byte(c), false)
	}
	f.Add(contactsPage(3, 10), true)
	f.Fuzz(func(t *testing.T, data []byte, strip bool) {
		samePage(t, data, "contacts", strip)
	})
}
