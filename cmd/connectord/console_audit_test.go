package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestConsoleAudit_SignInsAndChangesRecorded signs in to the console with a
// wrong organization secret, with an unknown user secret and rightly, makes
// changes through its forms, and checks GET /audit-logs and the console's
// audit page: the failed sign-in names no user and no secret, the changes
// carry the signed-in user as the same change through the API does.
func TestConsoleAudit_SignInsAndChangesRecorded(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	other := s.createOrg("Other", "dev@other.test")

	// Acme's user secret with another organization's secret: a failed
	// sign-in in Acme's log, naming no user.
	wrong := s.consoleClient().postForm("/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {other.Organization.Secret}}, false)
	if wrong.Status != 401 {
		t.Fatalf("wrong organization secret: %d", wrong.Status)
	}
	e := s.lastAudit(t, o, "console.sign_in", "failed", 0, nil)
	if _, named := e["userId"]; named || e["actor"] != "anonymous" || e["organizationId"] != float64(o.Organization.ID) ||
		e["requestId"] != wrong.Header.Get("Elements-Request-Id") || e["sourceIp"] != "127.0.0.1" || e["targetType"] != "console_session" {
		t.Fatalf("failed sign-in entry %v", e)
	}
	// A user secret that is nobody's belongs to no organization: Acme's log
	// does not grow (the operator sees it in the database).
	s.consoleClient().postForm("/console/signin", url.Values{"userSecret": {"not-a-secret"}, "organizationSecret": {o.Organization.Secret}}, false)
	if list, _ := s.auditEntries(o, "?action=console.sign_in"); len(list) != 1 {
		t.Fatalf("after an unknown user secret Acme's log has %d sign-ins, want 1: %v", len(list), list)
	}
	var n int
	s.queryRow("SELECT count(*) FROM audit_log WHERE action = 'console.sign_in' AND organization_id IS NULL AND user_id IS NULL AND outcome = 'failed'", nil, &n)
	if n != 1 {
		t.Fatalf("%d organization-less failed sign-ins stored, want 1", n)
	}

	cc := s.signIn(o)
	e = s.lastAudit(t, o, "console.sign_in", "succeeded", 0, nil)
	if e["actor"] != fmt.Sprintf("user %d", o.User.ID) || e["userId"] != float64(o.User.ID) || e["sourceIp"] != "127.0.0.1" || e["requestId"] == "" {
		t.Fatalf("sign-in entry %v", e)
	}

	// Changes through the console's forms, recorded as the API records them.
	byUser := func(action, outcome string, id int64) map[string]any {
		t.Helper()
		e := s.lastAudit(t, o, action, outcome, id, nil)
		if e["actor"] != fmt.Sprintf("user %d", o.User.ID) || e["userId"] != float64(o.User.ID) || e["sourceIp"] != "127.0.0.1" ||
			e["requestId"] == "" || len(fmt.Sprint(e["traceId"])) != 32 {
			t.Fatalf("%s entry %v does not name the user %d, the request and 127.0.0.1", action, e, o.User.ID)
		}
		return e
	}
	cc.get("/console/elements")
	if r := cc.postForm("/console/elements/infusionsoftcrm/instances", url.Values{"kind": {"service"}, "name": {"sak"}, "apiKey": {testServiceKey}}, true); r.Status != 200 {
		t.Fatalf("service account key form: %d %s", r.Status, r.Body)
	}
	idText := strings.TrimPrefix(cc.last[strings.Index(cc.last, "/console/instances/"):], "/console/instances/")
	idText = idText[:strings.Index(idText, "?")]
	var id int64
	fmt.Sscan(idText, &id)
	e = byUser("instance.created", "succeeded", id)
	if d, _ := e["detail"].(map[string]any); d["element"] != "infusionsoftcrm" {
		t.Fatalf("created entry %v does not name the element", e)
	}
	// A refused form is recorded as failed, and the key it carried is not.
	cc.get("/console/elements")
	if r := cc.postForm("/console/elements/infusionsoftcrm/instances", url.Values{"kind": {"legacy"}, "name": {"bad"}, "appName": {"zz"}, "apiKey": {testLegacyKey}}, true); r.Status < 400 {
		t.Fatalf("a bad legacy key form: %d", r.Status)
	}
	byUser("instance.created", "failed", 0)

	cc.get("/console/instances/" + idText)
	if r := cc.postForm("/console/instances/"+idText+"/configuration", url.Values{"cfg.pagination.max": {"50"}}, true); r.Status != 200 {
		t.Fatalf("edit configuration: %d %s", r.Status, r.Body)
	}
	if e := byUser("instance.changed", "succeeded", id); !strings.Contains(keysOf(e), "pagination.max") || strings.Contains(fmt.Sprint(e), "50]") {
		t.Fatalf("configuration entry %v: want the key, not the value", e)
	}
	cc.postForm("/console/instances/"+idText+"/disable", url.Values{}, true)
	byUser("instance.disabled", "succeeded", id)
	cc.postForm("/console/instances/"+idText+"/enable", url.Values{}, true)
	byUser("instance.enabled", "succeeded", id)
	cc.get("/console/instances/" + idText + "/delete")
	if r := cc.postForm("/console/instances/"+idText+"/delete", url.Values{"confirm": {"yes"}}, true); r.Status != 200 {
		t.Fatalf("delete: %d", r.Status)
	}
	byUser("instance.deleted", "succeeded", id)

	// The console's audit page shows the same log, newest first, filtered.
	r := cc.get("/console/audit")
	checkSecurityHeaders(t, "audit page", r)
	page := string(r.Body)
	if r.Status != 200 || !strings.Contains(page, `href="/console/audit" aria-current="page"`) {
		t.Fatalf("audit page: %d %s", r.Status, page)
	}
	order := []string{"instance.deleted", "instance.enabled", "instance.disabled", "instance.changed", "instance.created", "console.sign_in"}
	at := 0
	for _, a := range order {
		i := strings.Index(page[at:], "<td>"+a+"</td>")
		if i < 0 {
			t.Fatalf("audit page lacks %s after position %d, or not newest first", a, at)
		}
		at += i
	}
	if !strings.Contains(page, "anonymous") || !strings.Contains(page, fmt.Sprintf("user %d", o.User.ID)) {
		t.Fatal("audit page does not name the actors")
	}
	for _, secret := range []string{o.User.Secret, o.Organization.Secret, other.Organization.Secret, testServiceKey, testLegacyKey, cc.cookie().Value} {
		if strings.Contains(page, secret) {
			t.Fatal("the audit page holds a secret")
		}
	}
	r = cc.get("/console/audit?action=instance.deleted")
	if n := strings.Count(string(r.Body), "<td>instance."); r.Status != 200 || n != 1 {
		t.Fatalf("filtered by instance.deleted: %d, %d instance entries", r.Status, n)
	}
	if r := cc.get("/console/audit?action=no.such"); r.Status != 400 || !strings.Contains(string(r.Body), "not an action the audit log records") {
		t.Fatalf("unknown action: %d %s", r.Status, r.Body)
	}
	// Another organization's console shows none of Acme's entries.
	if r := s.signIn(other).get("/console/audit"); r.Status != 200 || strings.Contains(string(r.Body), "<td>instance.") {
		t.Fatal("another organization sees Acme's audit log")
	}
}

// TestConsoleAudit_PageIsPaged fills more than a page of entries and follows
// the console's "Older entries" link to the rest.
func TestConsoleAudit_PageIsPaged(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Acme", "dev@acme.test")
	for range 51 {
		s.consoleClient().postForm("/console/signin", url.Values{"userSecret": {o.User.Secret}, "organizationSecret": {"wrong"}}, false)
	}
	cc := s.signIn(o)
	r := cc.get("/console/audit")
	first := strings.Count(string(r.Body), "<td>console.sign_in</td>")
	if first != 50 || !strings.Contains(string(r.Body), "Older entries") {
		t.Fatalf("first page: %d entries", first)
	}
	i := strings.Index(string(r.Body), `href="/console/audit?before=`)
	link := string(r.Body)[i+len(`href="`):]
	link = link[:strings.Index(link, `"`)]
	r = cc.get(link)
	if n := strings.Count(string(r.Body), "<td>console.sign_in</td>"); r.Status != 200 || n != 2 || strings.Contains(string(r.Body), "Older entries") {
		t.Fatalf("second page %s: %d, %d entries", link, r.Status, n)
	}
}
