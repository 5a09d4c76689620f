package main

import (
	"fmt"
	"strings"
	"testing"
)

// Text PostgreSQL cannot store, or that encoding/json would silently change,
// is a 400 naming the field, before it reaches the database or Keap.
func TestBadText_Is400NamingTheField(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	good := s.do("POST", "/instances", o.auth(), seedBody("infusionsoftcrm", code, "good"))
	if good.Status != 200 {
		t.Fatalf("create: %d %s", good.Status, good.Body)
	}
	id := fmt.Sprint(good.JSON(t)["id"])
	before := s.count("instances")

	body := func(name string, tags ...string) string {
		return `{"element":{"key":"infusionsoftcrm"},"name":` + name + `,"tags":[` + strings.Join(tags, ",") + `],` +
			`"configuration":{"authentication.type":"apikey","infusionsoft.api.key":"` + testServiceKey + `"}}`
	}
	tests := []struct {
		name, method, path, body string
		want                     []string
	}{
		{"NUL in the name", "POST", "/instances", body(`"a\u0000b"`), []string{`"name"`, "NUL"}},
		{"NUL in a tag", "POST", "/instances", body(`"n"`, `"ok"`, `"t\u0000"`), []string{`"tags.1"`, "NUL"}},
		{"CR LF in a tag", "POST", "/instances", body(`"n"`, `"a\r\nb"`), []string{"tag", "control character"}},
		{"invalid UTF-8", "POST", "/instances", body("\"caf\xe9\""), []string{"UTF-8"}},
		{"NAME for name", "POST", "/instances", strings.Replace(body(`"n"`), `"name"`, `"NAME"`, 1), []string{"unknown fields", "NAME"}},
		{"name twice", "POST", "/instances", strings.Replace(body(`"n"`), `"name":"n"`, `"name":"n","name":"m"`, 1), []string{`"name" is given twice`}},
		{"NUL in ?tags", "GET", "/instances?tags=%00", "", []string{"query parameter", "tags"}},
		{"invalid UTF-8 in ?tags", "GET", "/instances?tags=%FF", "", []string{"query parameter", "tags"}},
		{"NUL in an event id", "POST", "/instances/" + id + "/events/%00/redeliver", "", []string{"path segment", "NUL"}},
		{"NUL in an instance id", "GET", "/instances/1%00", "", []string{"path segment", "NUL"}},
		{"API key with CR LF", "POST", "/instances", strings.Replace(body(`"n"`), testServiceKey, testServiceKey+`\r\nX-Injected: 1`, 1), []string{"infusionsoft.api.key", "control character"}},
		{"API key with NUL", "POST", "/instances", strings.Replace(body(`"n"`), testServiceKey, testServiceKey+`\u0000`, 1), []string{"infusionsoft.api.key", "NUL"}},
		{"API key with a bare LF", "POST", "/instances", strings.Replace(body(`"n"`), testServiceKey, testServiceKey+`\n`, 1), []string{"infusionsoft.api.key", "control character"}},
	}
	for _, tt := range tests {
		var b any
		if tt.body != "" {
			b = tt.body
		}
		r := s.do(tt.method, tt.path, o.auth(), b)
		if r.Status != 400 {
			t.Errorf("%s: want 400, got %d %s", tt.name, r.Status, r.Body)
			continue
		}
		msg, _ := r.JSON(t)["message"].(string)
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not name %s", tt.name, msg, w)
			}
		}
	}
	if n := s.count("instances"); n != before {
		t.Fatalf("refused requests left %d instances, want %d", n, before)
	}
	// The good instance's tags still filter: the check does not refuse text
	// that is merely unusual.
	if r := s.do("GET", "/instances?tags=%C3%A9t%C3%A9", o.auth(), nil); r.Status != 200 {
		t.Fatalf("a UTF-8 tag filter: %d %s", r.Status, r.Body)
	}
}

// Through the binary: a 401 names the schemes, and a flood of failed
// authentications from one address is refused with 429 after
// CONNECTORD_AUTH_FAILURES_PER_MINUTE of them, each 429 without a database
// lookup (only a 401 costs one), while a user who works from the same address
// goes on.
func TestAuth_FailedAttemptsFromOneAddressAreRefusedCheaply(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	if r := s.do("GET", "/instances", o.auth(), nil); r.Status != 200 {
		t.Fatalf("the user, before: %d %s", r.Status, r.Body)
	}
	bad := "User nope, Organization nope"
	counts := map[int]int{}
	const attempts = 2000
	for range attempts {
		r := s.do("GET", "/instances", bad, nil)
		counts[r.Status]++
		if r.Status == 401 && !strings.Contains(r.Header.Get("WWW-Authenticate"), "User") {
			t.Fatalf("a 401 without WWW-Authenticate: %v", r.Header)
		}
		if r.Status == 429 && r.Header.Get("Retry-After") == "" {
			t.Fatalf("a 429 without Retry-After")
		}
	}
	if counts[401] > 120 || counts[429] < attempts-120 {
		t.Fatalf("failed attempts from one address were not refused: %v", counts)
	}
	if r := s.do("GET", "/instances", o.auth(), nil); r.Status != 200 {
		t.Fatalf("the user at the same address, after: %d %s", r.Status, r.Body)
	}
}
