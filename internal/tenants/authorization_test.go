package tenants

import (
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
)

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  string
		want    Credentials
		wantErr string
	}{
		{"user and organization", "User u1, Organization o1", Credentials{User: "u1", Organization: "o1"}, ""},
		{"user and element", "User u1, Element e1", Credentials{User: "u1", Element: "e1"}, ""},
		{"all three, no spaces", "User u1,Organization o1,Element e1", Credentials{User: "u1", Organization: "o1", Element: "e1"}, ""},
		{"colon after each name (Cloud Elements SDKs)", "User: u1, Organization: o1, Element: e1", Credentials{User: "u1", Organization: "o1", Element: "e1"}, ""},
		{"colon without space", "User:u1, Element:e1", Credentials{User: "u1", Element: "e1"}, ""},
		{"colon with no value", "User: , Organization o1", Credentials{}, "part 1 must be"},
		{"colon form of an unknown part", "Bearer: abc", Credentials{}, "unknown part"},
		{"colon form duplicate", "User u1, User: u2", Credentials{}, "more than once"},
		{"two colons", "User:: u1", Credentials{}, "part 1 must be"},
		{"empty", "", Credentials{}, "missing Authorization header"},
		{"bearer", "Bearer abc", Credentials{}, "unknown part"},
		{"value with space", "User a b, Organization o", Credentials{}, "part 1 must be"},
		{"no value", "User, Organization o", Credentials{}, "part 1 must be"},
		{"duplicate", "User a, User b", Credentials{}, "more than once"},
		{"lower case name", "user a, Organization o", Credentials{}, "unknown part"},
		{"no user", "Organization o", Credentials{}, "User part is missing"},
		{"trailing comma", "User a, Organization o,", Credentials{}, "part 3 must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthorization(tt.header)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				if apperr.CodeOf(err) != apperr.Unauthorized {
					t.Fatalf("want unauthorized, got %v", apperr.CodeOf(err))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"User a, Organization b", "User a,Element e", "", ",,,", "User  a , Organization\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := ParseAuthorization(h)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Unauthorized {
				t.Fatalf("non-401 error %v", err)
			}
			return
		}
		if c.User == "" || strings.ContainsAny(c.User+c.Organization+c.Element, " ,\t") {
			t.Fatalf("accepted a malformed header %q as %+v", h, c)
		}
	})
}
