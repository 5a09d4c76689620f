package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestRequests_BodyAndRouteErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		want        []string
	}{
		{"too large", "POST", "/instances", "application/json", big, 413, []string{"larger than"}},
		{"malformed", "POST", "/instances", "application/json", "{\n  \"name\": \"x\",\n  \"tags\": [1,,]\n}", 400, []string{"line 3", "column"}},
		{"unknown fields named", "POST", "/instances", "application/json", `{"name":"x","elemnt":{"key":"infusionsoftcrm"},"element":{"kee":"x"},"extra":1}`, 400, []string{"elemnt", "element.kee", "extra"}},
		{"wrong type", "POST", "/instances", "application/json", `{"name":7}`, 400, []string{"name", "string"}},
		{"not an object", "POST", "/instances", "application/json", `[1,2]`, 400, []string{"JSON object"}},
		{"empty", "POST", "/instances", "application/json", ``, 400, []string{"empty"}},
		{"form body", "POST", "/instances", "application/x-www-form-urlencoded", `name=x`, 415, []string{"application/json"}},
		{"unknown route", "GET", "/nothing/here", "", "", 404, []string{"/nothing/here"}},
		{"wrong method", "DELETE", "/elements", "", "", 405, []string{"DELETE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.URL+tt.path, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			req.Header.Set("Authorization", o.auth())
			r := s.send(req, []byte(tt.body))
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Body)
			}
			body := r.JSON(t)
			if body["requestId"] == "" || body["requestId"] != r.Header.Get("Elements-Request-Id") {
				t.Fatalf("request id %v vs header %q", body["requestId"], r.Header.Get("Elements-Request-Id"))
			}
			for _, w := range tt.want {
				if !strings.Contains(body["message"].(string), w) {
					t.Errorf("message %q does not say %q", body["message"], w)
				}
			}
		})
	}
	if n := s.count("instances"); n != 0 {
		t.Fatalf("bad requests stored %d instances", n)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := s.do("GET", p, "", nil); r.Status != 200 {
			t.Fatalf("%s: %d %s", p, r.Status, r.Body)
		}
	}
}

// Every request is logged on one line, with the request id, and without secrets.
func TestRequestLogs_OneLinePerRequest(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := s.do("GET", "/elements/infusionsoftcrm/oauth/url?apiKey=cid&apiSecret=the-api-secret-value&callbackUrl=https://x.test/cb", "", nil)
	id := r.Header.Get("Elements-Request-Id")
	var found []string
	for _, line := range s.logs.Lines() {
		if strings.Contains(line, id) && strings.Contains(line, `"message":"request"`) {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one request line for %s, got %d:\n%s", id, len(found), s.logs)
	}
	for _, want := range []string{`"status":200`, `"method":"GET"`, `"path":"/elements/infusionsoftcrm/oauth/url"`, "apiSecret=REDACTED"} {
		if !strings.Contains(found[0], want) {
			t.Errorf("request line lacks %s: %s", want, found[0])
		}
	}
	if strings.Contains(s.logs.String(), "the-api-secret-value") {
		t.Fatal("the apiSecret query value reached the logs")
	}
}
