package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestAuthentication_EachWrongPartIsNamed(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	other := s.createOrg("Other", "dev@other.test")
	tests := []struct {
		name, header, want string
	}{
		{"missing", "", "missing Authorization header"},
		{"bearer", "Bearer " + o.User.Secret, "unknown part"},
		{"no comma", "User " + o.User.Secret + " Organization " + o.Organization.Secret, "part 1"},
		{"no organization", "User " + o.User.Secret, "no Organization part"},
		{"wrong user", "User nope, Organization " + o.Organization.Secret, "User secret"},
		{"wrong organization", "User " + o.User.Secret + ", Organization nope", "Organization secret"},
		{"another organization's secret", "User " + o.User.Secret + ", Organization " + other.Organization.Secret, "Organization secret"},
		{"wrong element", "User " + o.User.Secret + ", Organization " + o.Organization.Secret + ", Element nope", "Element token"},
		{"duplicate user", "User a, User b", "more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", "/instances", tt.header, nil)
			if r.Status != 401 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, tt.want) {
				t.Fatalf("message %q does not say %q", msg, tt.want)
			}
			if strings.Contains(string(r.Body), o.User.Secret) {
				t.Fatal("the error echoes the user secret")
			}
		})
	}
	if r := s.do("GET", "/elements/api-v2/instances", o.auth(), nil); r.Status != 200 {
		t.Fatalf("good credentials: %d %s", r.Status, r.Body)
	}
}

func TestTenantIsolation_OtherOrganizationSeesNothing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := s.createOrg("A", "a@a.test")
	b := s.createOrg("B", "b@b.test")
	inst := s.provisionOAuth(a, "infusionsoftcrm", "A's")
	id := fmt.Sprint(inst["id"])

	for _, call := range []struct{ method, path string }{
		{"GET", "/instances/" + id}, {"PATCH", "/instances/" + id}, {"PUT", "/instances/" + id},
		{"DELETE", "/instances/" + id}, {"GET", "/instances/" + id + "/configuration"},
		{"GET", "/instances/" + id + "/configuration/oauth.api.key"},
		{"PATCH", "/instances/" + id + "/configuration/pagination.max"},
	} {
		var body any
		switch {
		case call.method == "PATCH" && strings.Contains(call.path, "configuration"):
			body = map[string]any{"propertyValue": "50"}
		case call.method == "PATCH":
			body = map[string]any{"name": "stolen"}
		case call.method == "PUT":
			body = seedBody("infusionsoftcrm", "", "stolen")
		}
		r := s.do(call.method, call.path, b.auth(), body)
		if r.Status != 404 {
			t.Errorf("%s %s by another organization: %d %s", call.method, call.path, r.Status, r.Body)
		}
	}
	if list := s.do("GET", "/instances", b.auth(), nil).Array(t); len(list) != 0 {
		t.Fatalf("B lists A's instances: %v", list)
	}
	// B's user cannot use A's instance token either.
	r := s.do("GET", "/instances", "User "+b.User.Secret+", Organization "+b.Organization.Secret+", Element "+inst["token"].(string), nil)
	if r.Status != 401 {
		t.Fatalf("another organization's instance token: %d %s", r.Status, r.Body)
	}
	got := s.do("GET", "/instances/"+id, a.auth(), nil).JSON(t)
	if got["name"] != "A's" {
		t.Fatalf("A's instance changed: %v", got["name"])
	}
}
