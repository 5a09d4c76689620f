package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestWriteRequest_SameOnTheWireAsRequestWrite checks that what the
// transport writes reads back, with net/http's own parser, as the same
// request as net/http's Request.Write makes of it.
func TestWriteRequest_SameOnTheWireAsRequestWrite(t *testing.T) {
	type tc struct {
		name   string
		method string
		url    string
		body   string
		header http.Header
	}
	cases := []tc{
		{"plain GET", "GET", "http://keap.test/crm/rest/v1/contacts?limit=10&email=a%40b.test", "", nil},
		{"escaped path", "GET", "http://keap.test/crm/rest/v1/contacts/a%2Fb", "", nil},
		{"POST with a body", "POST", "http://keap.test/crm/rest/v1/contacts", `{"given_name":"Ann"}`, http.Header{"Content-Type": {"application/json"}}},
		{"empty PUT", "PUT", "http://keap.test/crm/rest/v1/x", "", nil},
		{"empty DELETE", "DELETE", "http://keap.test/crm/rest/v1/contacts/1", "", nil},
		{"no User-Agent", "GET", "http://keap.test/", "", http.Header{"User-Agent": {""}}},
		{"own User-Agent", "GET", "http://keap.test/", "", http.Header{"User-Agent": {"app/1.0"}}},
		{"many values and a line break", "GET", "http://keap.test/", "", http.Header{"X-Many": {"a", "b"}, "X-Broken": {"one\r\nX-Evil: 1"}}},
		{"own Content-Length ignored", "POST", "http://keap.test/", "abc", http.Header{"Content-Length": {"99"}}},
		{"port and IPv6", "GET", "http://[::1]:8080/p", "", nil},
		{"Connection: close", "GET", "http://keap.test/", "", nil},
	}
	for _, c := range cases {
		for _, gzip := range []bool{false, true} {
			mk := func() *http.Request {
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				req, err := http.NewRequest(c.method, c.url, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, vv := range c.header {
					req.Header[k] = vv
				}
				if c.name == "Connection: close" {
					req.Close = true
				}
				return req
			}
			var ours, theirs bytes.Buffer
			bw := bufio.NewWriter(&ours)
			if err := writeRequest(bw, mk(), gzip); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			_ = bw.Flush()
			ref := mk()
			if gzip {
				ref.Header.Set("Accept-Encoding", "gzip")
			}
			if err := ref.Write(&theirs); err != nil {
				t.Fatal(err)
			}
			a, b := parse(t, ours.Bytes()), parse(t, theirs.Bytes())
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s (gzip %v):\nours   %+v\nnet/http %+v\n%q", c.name, gzip, a, b, ours.String())
			}
		}
	}
}

type parsed struct {
	Method, URI, Host string
	Header            http.Header
	Length            int64
	Body              string
	Close             bool
}

func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("%v in %q", err, raw)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parsed{req.Method, req.RequestURI, req.Host, req.Header, req.ContentLength, string(body), req.Close}
}

func TestWriteRequest_ShortBodyIsAnError(t *testing.T) {
	req, _ := http.NewRequest("POST", "http://keap.test/", strings.NewReader("abc"))
	req.ContentLength = 10
	bw := bufio.NewWriter(io.Discard)
	if err := writeRequest(bw, req, false); err == nil || !strings.Contains(err.Error(), "ContentLength=10 with Body length 3") {
		t.Fatalf("want the length mismatch named, got %v", err)
	}
}
