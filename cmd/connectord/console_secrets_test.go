package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// No secret reaches a console page: after instances are made with known
// secrets (OAuth through the API, a service account key and a legacy key
// through the console's forms, a signature key set in the console's
// configuration form) and used from the try-it panel, every page, every
// form's answer, every link and the logs are swept for each secret.
func TestConsole_NoSecretInAnyPageURLOrLogLine(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	oauth := s.provisionOAuth(o, "infusionsoftcrm", "oauth")
	oid := fmt.Sprint(oauth["id"])
	cc := s.signIn(o)
	cookie := cc.cookie().Value

	var answers []response
	keep := func(r response) response { answers = append(answers, r); return r }
	// A refused sign-in page must not hold what was typed.
	keep(s.consoleClient().postForm("/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {o.Organization.Secret + "x"}}, false))

	cc.get("/console/elements")
	if r := keep(cc.postForm("/console/elements/infusionsoftcrm/instances", url.Values{"kind": {"service"}, "name": {"sak"}, "apiKey": {testServiceKey}, "tags": {"keys"}}, true)); r.Status != 200 {
		t.Fatalf("service account key form: %d %s", r.Status, r.Body)
	}
	sakID := strings.TrimPrefix(cc.last[strings.Index(cc.last, "/console/instances/"):], "/console/instances/")
	sakID = sakID[:strings.Index(sakID, "?")]
	if r := keep(cc.postForm("/console/elements/infusionsoftcrm/instances", url.Values{"kind": {"legacy"}, "name": {"legacy"}, "appName": {testLegacyApp}, "apiKey": {testLegacyKey}}, true)); r.Status != 200 {
		t.Fatalf("legacy key form: %d %s", r.Status, r.Body)
	}
	// A refused form must not echo the key it was given either.
	keep(cc.postForm("/console/elements/infusionsoftcrm/instances", url.Values{"kind": {"legacy"}, "name": {"bad"}, "appName": {"zz"}, "apiKey": {testLegacyKey}}, true))
	const signatureKey = "console-signature-key-0123456789"
	cc.get("/console/instances/" + oid)
	if r := keep(cc.postForm("/console/instances/"+oid+"/configuration", url.Values{"cfg.event.notification.signature.key": {signatureKey}}, true)); r.Status != 200 {
		t.Fatalf("set signature key: %d %s", r.Status, r.Body)
	}
	// A refused edit re-renders the form: the secret typed must not be in it.
	keep(cc.postForm("/console/instances/"+oid+"/configuration", url.Values{"cfg.event.notification.signature.key": {signatureKey + "-new"}, "cfg.pagination.max": {"-1"}}, true))
	for _, id := range []string{oid, sakID} {
		keep(cc.postForm("/console/instances/"+id+"/docs", url.Values{"method": {"GET"}, "path": {"/hubs/crm/contacts"}, "query": {"pageSize=1"}}, true))
	}
	s.keap.ExpireAccessTokens()
	keep(cc.postForm("/console/instances/"+oid+"/refresh", url.Values{}, true))
	for _, id := range []string{oid, sakID} {
		for _, p := range consolePages(id) {
			keep(cc.get(p))
		}
	}

	stored := s.instanceSecrets(oid)
	secrets := map[string]string{
		"organization secret":  o.Organization.Secret,
		"user secret":          o.User.Secret,
		"oauth instance token": oauth["token"].(string),
		"client secret":        testClientSecret,
		"access token":         stored["oauth.user.token"],
		"refresh token":        stored["oauth.user.refresh_token"],
		"service account key":  testServiceKey,
		"legacy key":           testLegacyKey,
		"signature key":        signatureKey,
		"session token":        cookie,
	}
	for name, v := range secrets {
		if len(v) < 8 {
			t.Fatalf("%s missing from the setup (%q)", name, v)
		}
	}
	href := regexp.MustCompile(`(?:href|action)="([^"]*)"`)
	pages := 0
	for _, r := range answers {
		body := string(r.Body)
		if !strings.Contains(body, "</html>") {
			t.Fatalf("an answer is not a whole page: %d %s", r.Status, body)
		}
		pages++
		for name, v := range secrets {
			if strings.Contains(body, v) {
				t.Errorf("the %s appears in a console page (status %d)", name, r.Status)
			}
		}
		for _, m := range href.FindAllStringSubmatch(body, -1) {
			for name, v := range secrets {
				if strings.Contains(m[1], url.QueryEscape(v)) {
					t.Errorf("the %s appears in a link: %s", name, m[1])
				}
			}
		}
	}
	if pages < 25 {
		t.Fatalf("swept only %d pages", pages)
	}
	time.Sleep(100 * time.Millisecond) // the request log line is written after the answer
	logs := s.logs.String()
	for name, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}
