package httpapi

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
)

func TestParseQuery_NamesTheMalformedParameterAndKeepsSemicolons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw     string
		want    url.Values
		wantErr string // a word the message must hold; empty: no error
	}{
		{"nextPage=%%%garbage", nil, "nextPage"},
		{"pageSize=10&nextPage=%zz", nil, "nextPage"},
		{"a%=1", nil, `"a%"`},
		{"filter=email%3D%3Dx;given_name%3D%3Dy&limit=2", url.Values{"filter": {"email==x;given_name==y"}, "limit": {"2"}}, ""},
		{"tags=a&tags=b&&flag", url.Values{"tags": {"a", "b"}, "flag": {""}}, ""},
		{"q=a+b%20c", url.Values{"q": {"a b c"}}, ""},
	} {
		got, err := parseQuery(tc.raw)
		if tc.wantErr != "" {
			if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %v, want invalid naming %s", tc.raw, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.raw, got, err, tc.want)
		}
	}
}

// FuzzParseQuery: parseQuery never panics, refuses exactly what url.ParseQuery
// finds badly escaped, and otherwise agrees with it wherever no ; is involved.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "a=1", "nextPage=%%%garbage", "a=1;b=2", "x=%2", "%=&=%", "a=b=c&&d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseQuery(raw)
		if strings.Contains(raw, ";") {
			return
		}
		want, werr := url.ParseQuery(raw)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%q: parseQuery error %v, url.ParseQuery error %v", raw, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %v, url.ParseQuery %v", raw, got, want)
		}
	})
}
