package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestInstances_ListPatchPutDeleteAndConfiguration(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	first := s.provisionOAuth(o, "infusionsoftcrm", "first")
	second := s.provisionOAuth(o, "infusionsoftmarketing", "second")
	id, id2 := fmt.Sprint(first["id"]), fmt.Sprint(second["id"])

	// Tags filter.
	r := s.do("PATCH", "/instances/"+id2, o.auth(), map[string]any{"tags": []any{"seed", "prod"}, "name": "second, renamed", "disabled": true})
	if r.Status != 200 {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	patched := r.JSON(t)
	if patched["name"] != "second, renamed" || patched["disabled"] != true || len(patched["tags"].([]any)) != 2 {
		t.Fatalf("PATCH result: %v", patched)
	}
	for q, want := range map[string]int{"": 2, "?tags=seed": 2, "?tags=prod": 1, "?tags=seed,prod": 1, "?tags=seed&tags=prod": 1, "?tags[]=prod": 1, "?tags=none": 0} {
		if got := s.do("GET", "/instances"+q, o.auth(), nil).Array(t); len(got) != want {
			t.Errorf("GET /instances%s: %d instances, want %d", q, len(got), want)
		}
	}

	// Configuration merge: one entry changes, the rest stays.
	r = s.do("PATCH", "/instances/"+id, o.auth(), map[string]any{"configuration": map[string]any{"pagination.max": 50, "filter.response.nulls": false}})
	if r.Status != 200 {
		t.Fatalf("PATCH configuration: %d %s", r.Status, r.Body)
	}
	cfg := r.JSON(t)["configuration"].(map[string]any)
	if cfg["pagination.max"] != "50" || cfg["filter.response.nulls"] != "false" || cfg["oauth.api.key"] != testClientID || cfg["oauth.user.token"] != "********" {
		t.Fatalf("merged configuration: %v", cfg)
	}
	// Bad PATCHes.
	for _, bad := range []struct {
		body any
		want string
	}{
		{map[string]any{"configuration": map[string]any{"pagination.max": 5000}}, "out of range"},
		{map[string]any{"configuration": map[string]any{"authentication.type": "apikey"}}, "PUT"},
		{map[string]any{"configuration": map[string]any{"oauth.api.secret": nil}}, "oauth.api.secret"},
		{map[string]any{"nmae": "typo"}, "nmae"},
		{map[string]any{"name": ""}, "name"},
		{map[string]any{"disabled": "yes"}, "disabled"},
	} {
		if r := s.do("PATCH", "/instances/"+id, o.auth(), bad.body); r.Status != 400 || !strings.Contains(string(r.Body), bad.want) {
			t.Errorf("PATCH %v: %d %s (want 400 naming %q)", bad.body, r.Status, r.Body, bad.want)
		}
	}

	// Configuration endpoints.
	entries := s.do("GET", "/elements/api-v2/instances/"+id+"/configuration", o.auth(), nil).Array(t)
	seen := map[string]any{}
	for _, e := range entries {
		m := e.(map[string]any)
		seen[m["key"].(string)] = m["propertyValue"]
	}
	if seen["oauth.api.secret"] != "********" || seen["pagination.max"] != "50" {
		t.Fatalf("configuration list: %v", seen)
	}
	r = s.do("PATCH", "/instances/"+id+"/configuration/oauth.api.secret", o.auth(), map[string]any{"propertyValue": "rotated-client-secret"})
	if r.Status != 200 || r.JSON(t)["propertyValue"] != "********" {
		t.Fatalf("PATCH secret entry: %d %s", r.Status, r.Body)
	}
	if got := s.instanceSecrets(id)["oauth.api.secret"]; got != "rotated-client-secret" {
		t.Fatalf("stored client secret after change = %q", got)
	}
	if r := s.do("GET", "/instances/"+id+"/configuration/pagination.max", o.auth(), nil); r.Status != 200 || r.JSON(t)["propertyValue"] != "50" {
		t.Fatalf("GET entry: %d %s", r.Status, r.Body)
	}
	if r := s.do("PATCH", "/instances/"+id+"/configuration/nope.key", o.auth(), map[string]any{"propertyValue": "x"}); r.Status != 404 {
		t.Fatalf("unknown entry: %d %s", r.Status, r.Body)
	}
	if r := s.do("PATCH", "/instances/"+id+"/configuration/oauth.user.token", o.auth(), map[string]any{"propertyValue": "x"}); r.Status != 400 {
		t.Fatalf("read-only entry: %d %s", r.Status, r.Body)
	}
	if r := s.do("PATCH", "/instances/"+id+"/configuration/pagination.max", o.auth(), map[string]any{}); r.Status != 400 || !strings.Contains(string(r.Body), "propertyValue") {
		t.Fatalf("missing propertyValue: %d %s", r.Status, r.Body)
	}

	// PUT without a code keeps the tokens (and the app name learned from them).
	before := s.instanceSecrets(id)
	put := seedBody("infusionsoftcrm", "", "first, replaced")
	delete(put, "providerData")
	r = s.do("PUT", "/instances/"+id, o.auth(), put)
	if r.Status != 200 {
		t.Fatalf("PUT: %d %s", r.Status, r.Body)
	}
	cfg = r.JSON(t)["configuration"].(map[string]any)
	if cfg["pagination.max"] != "200" || cfg["infusionsoft.app.name"] != "ab123" || r.JSON(t)["name"] != "first, replaced" {
		t.Fatalf("PUT replaces the configuration but keeps the app name: %v", cfg)
	}
	after := s.instanceSecrets(id)
	if after["oauth.user.refresh_token"] != before["oauth.user.refresh_token"] || after["oauth.user.token"] == "" {
		t.Fatal("PUT without a code lost the tokens")
	}
	// PUT with a new code exchanges it and replaces the tokens.
	code, _ := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	r = s.do("PUT", "/elements/api-v2/instances/"+id, o.auth(), seedBody("infusionsoftcrm", code, "first"))
	if r.Status != 200 || r.JSON(t)["valid"] != true {
		t.Fatalf("PUT with code: %d %s", r.Status, r.Body)
	}
	if s.instanceSecrets(id)["oauth.user.refresh_token"] == before["oauth.user.refresh_token"] {
		t.Fatal("PUT with a code did not replace the tokens")
	}
	if r := s.do("PUT", "/instances/"+id, o.auth(), seedBody("infusionsoftmarketing", "", "x")); r.Status != 400 {
		t.Fatalf("PUT changing the element: %d %s", r.Status, r.Body)
	}

	// DELETE, then it is gone.
	if r := s.do("DELETE", "/instances/"+id, o.auth(), nil); r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/instances/"+id, o.auth(), nil); r.Status != 404 {
		t.Fatalf("GET after DELETE: %d", r.Status)
	}
	if r := s.do("DELETE", "/instances/"+id, o.auth(), nil); r.Status != 404 {
		t.Fatalf("second DELETE: %d", r.Status)
	}
	if n := s.count("instance_credentials"); n != 1 {
		t.Fatalf("deleted instance's credentials remain: %d rows", n)
	}
	if r := s.do("GET", "/instances/abc", o.auth(), nil); r.Status != 400 || !strings.Contains(string(r.Body), "abc") {
		t.Fatalf("non-numeric id: %d %s", r.Status, r.Body)
	}
}

func TestAPIKeyInstance_NewKeyIsCheckedAndReencrypted(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	r := s.do("POST", "/instances", o.auth(), apiKeyBody("infusionsoftcrm", testServiceKey, ""))
	id := fmt.Sprint(r.JSON(t)["id"])
	cipherBefore := s.ciphertext(id)

	if r := s.do("PATCH", "/instances/"+id+"/configuration/infusionsoft.api.key", o.auth(), map[string]any{"propertyValue": "KeapAK-wrong"}); r.Status != 400 {
		t.Fatalf("a wrong new key was accepted: %d %s", r.Status, r.Body)
	}
	if s.instanceSecrets(id)["infusionsoft.api.key"] != testServiceKey {
		t.Fatal("a refused key replaced the stored one")
	}
	s.keap.AddServiceAccountKey("KeapAK-second-key")
	if r := s.do("PATCH", "/instances/"+id+"/configuration/infusionsoft.api.key", o.auth(), map[string]any{"propertyValue": "KeapAK-second-key"}); r.Status != 200 {
		t.Fatalf("new key: %d %s", r.Status, r.Body)
	}
	if s.instanceSecrets(id)["infusionsoft.api.key"] != "KeapAK-second-key" {
		t.Fatal("the new key was not stored")
	}
	if string(s.ciphertext(id)) == string(cipherBefore) {
		t.Fatal("changing the key did not re-encrypt the credentials")
	}
	// OAuth-only entries do not belong on an API-key instance.
	if r := s.do("PATCH", "/instances/"+id, o.auth(), map[string]any{"configuration": map[string]any{"oauth.api.key": "x"}}); r.Status != 400 {
		t.Fatalf("oauth entry on apikey instance: %d %s", r.Status, r.Body)
	}
}
