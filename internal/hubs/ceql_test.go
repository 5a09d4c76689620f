package hubs

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseWhere(t *testing.T) {
	t.Parallel()
	str := func(s string) Literal { return Literal{Kind: StringLit, Text: s} }
	tests := []struct {
		name    string
		in      string
		want    []Term
		wantErr string // part of the message; "" for success
	}{
		{"empty", "", nil, ""},
		{"blank", "  \t", nil, ""},
		{"one term", "email = 'a@b.c'", []Term{{Field: "email", Op: "=", Value: str("a@b.c")}}, ""},
		{"no spaces", "email='a@b.c'", []Term{{Field: "email", Op: "=", Value: str("a@b.c")}}, ""},
		{"escaped quote", "lastName = 'O''Brien'", []Term{{Field: "lastName", Op: "=", Value: str("O'Brien")}}, ""},
		{"empty string", "email = ''", []Term{{Field: "email", Op: "=", Value: str("")}}, ""},
		{"and, any case", "email = 'x' AND lastUpdated >= '2024-01-01T00:00:00Z' and lastUpdated<'2024-02-01'", []Term{
			{Field: "email", Op: "=", Value: str("x")},
			{Field: "lastUpdated", Op: ">=", Value: str("2024-01-01T00:00:00Z")},
			{Field: "lastUpdated", Op: "<", Value: str("2024-02-01")},
		}, ""},
		{"numbers and booleans", "contactId = 42 and paid = TRUE and x > -3.5", []Term{
			{Field: "contactId", Op: "=", Value: Literal{Kind: NumberLit, Text: "42"}},
			{Field: "paid", Op: "=", Value: Literal{Kind: BoolLit, Text: "true"}},
			{Field: "x", Op: ">", Value: Literal{Kind: NumberLit, Text: "-3.5"}},
		}, ""},
		{"operators", "a != 'x' and b <> 'y' and c <= 1 and d like 'z%'", []Term{
			{Field: "a", Op: "!=", Value: str("x")},
			{Field: "b", Op: "!=", Value: str("y")},
			{Field: "c", Op: "<=", Value: Literal{Kind: NumberLit, Text: "1"}},
			{Field: "d", Op: "like", Value: str("z%")},
		}, ""},
		{"in list", "id in (1, 2,'3')", []Term{{Field: "id", Op: "in", Values: []Literal{{Kind: NumberLit, Text: "1"}, {Kind: NumberLit, Text: "2"}, str("3")}}}, ""},
		{"null", "email = null", []Term{{Field: "email", Op: "=", Value: Literal{Kind: NullLit, Text: "null"}}}, ""},
		{"dotted field", "address.city = 'x'", []Term{{Field: "address.city", Op: "=", Value: str("x")}}, ""},
		{"unicode in strings", "lastName = 'Müller ✓'", []Term{{Field: "lastName", Op: "=", Value: str("Müller ✓")}}, ""},

		{"or", "email = 'a' or email = 'b'", nil, "or is not supported"},
		{"parentheses", "(email = 'a')", nil, "parentheses are not supported"},
		{"not", "not email = 'a'", nil, "not is not supported"},
		{"is null", "email is null", nil, "is is not supported"},
		{"unterminated", "email = 'abc", nil, "unterminated string"},
		{"double quotes", `email = "a"`, nil, "single quotes"},
		{"bare word value", "email = abc", nil, "put text in single quotes"},
		{"missing value", "email =", nil, "expected a value"},
		{"missing operator", "email 'a'", nil, "expected an operator"},
		{"trailing and", "email = 'a' and", nil, "expected a field name"},
		{"two terms without and", "email = 'a' lastName = 'b'", nil, "expected and between terms"},
		{"keyword as field", "and = 'a'", nil, "expected a field name"},
		{"lone bang", "email ! 'a'", nil, "'!' must be followed by '='"},
		{"number into letters", "x = 2024-01-01", nil, "must not run into letters"},
		{"stray character", "email = 'a' ; drop", nil, "unexpected ';'"},
		{"in without list", "id in 1", nil, "in takes a list"},
		{"in unclosed", "id in (1, 2", nil, "expected , or )"},
		{"too long", strings.Repeat("a", maxWhere+1), nil, "longer than"},
		{"invalid utf-8", "email = '\xff'", nil, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWhere(tt.in)
			if tt.wantErr != "" {
				var se *SyntaxError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWhere(%q) = %v, %v; want a syntax error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseWhere(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseWhere_ErrorsNamePosition(t *testing.T) {
	t.Parallel()
	_, err := ParseWhere("email = 'a' or x = 'b'")
	if err == nil || !strings.Contains(err.Error(), "at character 13") {
		t.Fatalf("error %v does not point at the or", err)
	}
}

// FuzzParseWhere: the parser never panics, and whatever it accepts it writes
// back (FormatWhere) as a clause that parses to the same terms.
func FuzzParseWhere(f *testing.F) {
	for _, seed := range []string{
		"email = 'a@b.c'",
		"firstName = 'O''Brien' and lastUpdated >= '2024-01-01T00:00:00Z'",
		"contactId = 42 and paid = true",
		"id in (1, '2', -3.5)",
		"email = 'a' or email = 'b'",
		"(x = 1)",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		terms, err := ParseWhere(in)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseWhere(%q) failed with %T, not a *SyntaxError: %v", in, err, err)
			}
			return
		}
		out := FormatWhere(terms)
		again, err := ParseWhere(out)
		if err != nil {
			t.Fatalf("ParseWhere(%q) gave terms written as %q, which does not parse: %v", in, out, err)
		}
		if len(terms) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(terms, again) {
			t.Fatalf("round trip of %q through %q: %#v != %#v", in, out, terms, again)
		}
	})
}
