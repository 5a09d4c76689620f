package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/fakekeap"
)

// auditEntries is GET /audit-logs with query, as the organization.
func (s *server) auditEntries(o org, query string) ([]map[string]any, response) {
	s.t.Helper()
	r := s.do("GET", "/audit-logs"+query, o.auth(), nil)
	if r.Status != 200 {
		s.t.Fatalf("GET /audit-logs%s: %d %s", query, r.Status, r.Body)
	}
	var out []map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		s.t.Fatal(err)
	}
	return out, r
}

// lastAudit is the newest entry, which must be of action with outcome, about
// the instance id (0: any), made by request r (nil: any).
func (s *server) lastAudit(t *testing.T, o org, action, outcome string, id int64, r *response) map[string]any {
	t.Helper()
	list, _ := s.auditEntries(o, "?pageSize=1")
	if len(list) != 1 {
		t.Fatalf("no audit entry; want %s %s", action, outcome)
	}
	e := list[0]
	if e["action"] != action || e["outcome"] != outcome {
		t.Fatalf("newest entry %v, want %s %s", e, action, outcome)
	}
	if id != 0 && (e["targetType"] != "instance" || e["targetId"] != float64(id)) {
		t.Fatalf("entry %v is not about instance %d", e, id)
	}
	if r != nil {
		if e["requestId"] != r.Header.Get("Elements-Request-Id") || e["sourceIp"] != "127.0.0.1" ||
			e["actor"] != fmt.Sprintf("user %d", o.User.ID) || e["userId"] != float64(o.User.ID) ||
			e["organizationId"] != float64(o.Organization.ID) || len(fmt.Sprint(e["traceId"])) != 32 {
			t.Fatalf("entry %v does not name the request %s, the user %d from 127.0.0.1 and a trace", e, r.Header.Get("Elements-Request-Id"), o.User.ID)
		}
	}
	return e
}

func keysOf(e map[string]any) string {
	d, _ := e["detail"].(map[string]any)
	return fmt.Sprint(d["keys"])
}

// TestAudit_EveryChangeRecordedInItsTransaction walks an organization
// through every audited action and checks the newest entry after each: who,
// what, which instance, the request, the outcome; a failed request recorded
// as failed, and a change whose transaction rolled back leaving no success
// entry.
func TestAudit_EveryChangeRecordedInItsTransaction(t *testing.T) {
	t.Parallel()
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, eventsEnv(t, k), k, nil)
	o := s.createOrg("Audited", "audit@acme.test")

	// The operator's `orgs create` is the organization's first entry.
	list, _ := s.auditEntries(o, "")
	if len(list) != 1 || list[0]["action"] != "organization.created" || list[0]["actor"] != "operator" ||
		list[0]["targetType"] != "organization" || list[0]["targetId"] != float64(o.Organization.ID) || list[0]["outcome"] != "succeeded" {
		t.Fatalf("entries after orgs create: %v", list)
	}

	code, err := s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	if err != nil {
		t.Fatal(err)
	}
	r := s.do("POST", "/instances", o.auth(), seedBody("infusionsoftcrm", code, "audited"))
	if r.Status != 200 {
		t.Fatalf("POST /instances: %d %s", r.Status, r.Body)
	}
	inst := r.JSON(t)
	id := int64(inst["id"].(float64))
	token := inst["token"].(string)
	e := s.lastAudit(t, o, "instance.created", "succeeded", id, &r)
	if e["detail"].(map[string]any)["element"] != "infusionsoftcrm" {
		t.Errorf("created: detail %v", e["detail"])
	}
	path := fmt.Sprintf("/instances/%d", id)

	// Changed: which keys, never their values.
	const secretValue = "a-new-client-secret-never-logged"
	r = s.do("PATCH", path, o.auth(), map[string]any{"name": "renamed", "configuration": map[string]any{"pagination.max": 50, "event.notification.signature.key": secretValue}})
	if r.Status != 200 {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	e = s.lastAudit(t, o, "instance.changed", "succeeded", id, &r)
	if keysOf(e) != "[event.notification.signature.key pagination.max]" || fmt.Sprint(e["detail"].(map[string]any)["fields"]) != "[name configuration]" {
		t.Errorf("changed: detail %v", e["detail"])
	}
	r = s.do("PATCH", path+"/configuration/pagination.max", o.auth(), map[string]any{"propertyValue": "60"})
	if r.Status != 200 {
		t.Fatalf("PATCH configuration: %d %s", r.Status, r.Body)
	}
	if e = s.lastAudit(t, o, "instance.changed", "succeeded", id, &r); keysOf(e) != "[pagination.max]" {
		t.Errorf("configuration entry: detail %v", e["detail"])
	}

	// Disabled, enabled.
	r = s.do("PATCH", path, o.auth(), map[string]any{"disabled": true})
	s.lastAudit(t, o, "instance.disabled", "succeeded", id, &r)
	r = s.do("PATCH", path, o.auth(), map[string]any{"disabled": false})
	s.lastAudit(t, o, "instance.enabled", "succeeded", id, &r)

	// A refused change is recorded as failed, and changes nothing.
	r = s.do("PATCH", path, o.auth(), map[string]any{"configuration": map[string]any{"pagination.max": "many"}})
	if r.Status != 400 {
		t.Fatalf("bad PATCH: %d %s", r.Status, r.Body)
	}
	if e = s.lastAudit(t, o, "instance.changed", "failed", id, &r); e["detail"].(map[string]any)["reason"] != "answered 400" {
		t.Errorf("failed: detail %v", e["detail"])
	}

	// Tokens refreshed by hand.
	r = s.do("PUT", path+"/tokens/refresh", o.auth(), nil)
	if r.Status != 200 {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "instance.tokens_refreshed", "succeeded", id, &r)

	// Reconnected with a new authorization code.
	code, _ = s.keap.IssueCode(testClientID, "https://www.yourcallbackurl.com")
	r = s.do("PUT", path, o.auth(), seedBody("infusionsoftcrm", code, "reconnected"))
	if r.Status != 200 {
		t.Fatalf("PUT: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "instance.reconnected", "succeeded", id, &r)

	// Events redelivered: one, then the failed ones; an unknown one fails.
	enqueue(t, s.dbURL, id, 1, `{"n":1}`)
	events := s.notifications(o, id, "")
	eventID := events[0]["eventId"].(string)
	r = s.do("POST", path+"/events/"+eventID+"/redeliver", o.auth(), nil)
	if r.Status >= 300 {
		t.Fatalf("redeliver: %d %s", r.Status, r.Body)
	}
	if e = s.lastAudit(t, o, "events.redelivered", "succeeded", id, &r); e["detail"].(map[string]any)["eventId"] != eventID {
		t.Errorf("redelivered: detail %v", e["detail"])
	}
	r = s.do("POST", path+"/events/redeliver?status=failed", o.auth(), nil)
	if r.Status >= 300 {
		t.Fatalf("redeliver failed: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "events.redelivered", "succeeded", id, &r)
	r = s.do("POST", path+"/events/ffffffffffffffffffffffffffffffff/redeliver", o.auth(), nil)
	if r.Status != 404 {
		t.Fatalf("redeliver unknown: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "events.redelivered", "failed", id, &r)

	// A refresh Keap refuses: recorded as failed with the instance it left
	// invalid, in the same transaction.
	s.keap.RevokeRefreshTokens(testClientID)
	r = s.do("PUT", path+"/tokens/refresh", o.auth(), nil)
	if r.Status < 400 {
		t.Fatalf("refresh with a revoked token: %d %s", r.Status, r.Body)
	}
	if e = s.lastAudit(t, o, "instance.tokens_refreshed", "failed", id, &r); e["detail"].(map[string]any)["reason"] != "the token refresh failed" {
		t.Errorf("refused refresh: detail %v", e["detail"])
	}
	if got := s.do("GET", path, o.auth(), nil).JSON(t); got["valid"] != false {
		t.Fatalf("after the refused refresh the instance is %v", got["valid"])
	}

	// A deletion whose transaction rolls back after its entry was written
	// (a trigger refuses the success entry): the instance stays, and the
	// log holds the failure, not a success.
	s.exec(`CREATE FUNCTION refuse_delete_entry() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
		CREATE TRIGGER refuse_delete_entry BEFORE INSERT ON audit_log FOR EACH ROW
		WHEN (NEW.action = 'instance.deleted' AND NEW.outcome = 'succeeded') EXECUTE FUNCTION refuse_delete_entry()`)
	r = s.do("DELETE", path, o.auth(), nil)
	if r.Status != 500 {
		t.Fatalf("DELETE with the entry refused: %d %s", r.Status, r.Body)
	}
	if got := s.do("GET", path, o.auth(), nil); got.Status != 200 {
		t.Fatalf("the rolled-back deletion deleted the instance: %d", got.Status)
	}
	s.lastAudit(t, o, "instance.deleted", "failed", id, &r)
	if all, _ := s.auditEntries(o, "?action=instance.deleted"); len(all) != 1 {
		t.Fatalf("instance.deleted entries after the rollback: %v", all)
	}
	s.exec(`DROP TRIGGER refuse_delete_entry ON audit_log`)
	r = s.do("DELETE", path, o.auth(), nil)
	if r.Status >= 300 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "instance.deleted", "succeeded", id, &r)

	// The whole log: newest first, about the instance even once it is gone,
	// and never a secret or a configuration value.
	all, _ := s.auditEntries(o, "?pageSize=200")
	want := []string{"instance.deleted succeeded", "instance.deleted failed", "instance.tokens_refreshed failed", "events.redelivered failed", "events.redelivered succeeded",
		"events.redelivered succeeded", "instance.reconnected succeeded", "instance.tokens_refreshed succeeded", "instance.changed failed",
		"instance.enabled succeeded", "instance.disabled succeeded", "instance.changed succeeded", "instance.changed succeeded",
		"instance.created succeeded", "organization.created succeeded"}
	var got []string
	for _, e := range all {
		got = append(got, fmt.Sprint(e["action"], " ", e["outcome"]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	raw := string(s.do("GET", "/audit-logs?pageSize=200", o.auth(), nil).Body)
	for _, secret := range []string{secretValue, token, o.User.Secret, o.Organization.Secret, testClientSecret, `"60"`, `"50"`} {
		if strings.Contains(raw, secret) {
			t.Errorf("the audit log shows %.10s…", secret)
		}
	}

	// Filters and pages.
	if l, _ := s.auditEntries(o, "?action=instance.disabled"); len(l) != 1 {
		t.Errorf("action filter: %v", l)
	}
	if l, _ := s.auditEntries(o, fmt.Sprintf("?instanceId=%d", id)); len(l) != len(want)-1 {
		t.Errorf("instance filter: %d entries, want %d", len(l), len(want)-1)
	}
	if l, _ := s.auditEntries(o, "?from="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(l) != 0 {
		t.Errorf("from in the future: %v", l)
	}
	if l, _ := s.auditEntries(o, "?to="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))+"&from="+url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339))); len(l) != len(want) {
		t.Errorf("this hour: %d entries", len(l))
	}
	var paged []string
	next := ""
	for pages := 0; ; pages++ {
		q := "?pageSize=5"
		if next != "" {
			q += "&nextPage=" + next
		}
		l, r := s.auditEntries(o, q)
		for _, e := range l {
			paged = append(paged, fmt.Sprint(e["action"], " ", e["outcome"]))
		}
		if next = r.Header.Get("Elements-Next-Page-Token"); next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if strings.Join(paged, "\n") != strings.Join(want, "\n") {
		t.Errorf("pages of 5:\n%s", strings.Join(paged, "\n"))
	}
	for _, bad := range []struct{ q, want string }{
		{"?action=instance.exploded", "is not one the audit log records"},
		{"?from=yesterday", "RFC 3339"},
		{"?instanceId=x", "instanceId"},
		{"?pageSize=0", "pageSize"},
		{"?nextPage=abc", "nextPage"},
		{"?page=2", "unknown query parameter page"},
	} {
		r := s.do("GET", "/audit-logs"+bad.q, o.auth(), nil)
		if r.Status != 400 || !strings.Contains(string(r.Body), bad.want) {
			t.Errorf("GET /audit-logs%s: %d %s", bad.q, r.Status, r.Body)
		}
	}
	// Entries are read-only, and another organization sees none of them.
	for _, m := range []string{"POST", "DELETE", "PUT", "PATCH"} {
		if r := s.do(m, "/audit-logs", o.auth(), nil); r.Status != 405 {
			t.Errorf("%s /audit-logs: %d", m, r.Status)
		}
	}
	other := s.createOrg("Other", "other@acme.test")
	if l, _ := s.auditEntries(other, ""); len(l) != 1 || l[0]["targetId"] != float64(other.Organization.ID) {
		t.Errorf("another organization sees %v", l)
	}
	if r := s.do("GET", "/audit-logs", "", nil); r.Status != 401 {
		t.Errorf("without Authorization: %d", r.Status)
	}
}

// TestAudit_KeysRotateRecordsEachInstanceForItsOrganization: the operator's
// key rotation leaves one entry per instance it re-encrypted.
func TestAudit_KeysRotateRecordsEachInstanceForItsOrganization(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Rotated", "rotate@acme.test")
	inst := s.provisionOAuth(o, "infusionsoftcrm", "rotated")
	s.stop()
	env := map[string]string{}
	for k, v := range s.env {
		env[k] = v
	}
	env["CONNECTORD_ENCRYPTION_KEY_PREVIOUS"] = env["CONNECTORD_ENCRYPTION_KEY"]
	env["CONNECTORD_ENCRYPTION_KEY"] = newEncryptionKey(t)
	var out strings.Builder
	if err := run(context.Background(), []string{"keys", "rotate"}, getenvFrom(env), &out, &strings.Builder{}); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	s2 := startServerWith(t, env, s.keap, nil)
	list, _ := s2.auditEntries(o, "?action=keys.rotated")
	if len(list) != 1 || list[0]["actor"] != "operator" || list[0]["targetId"] != inst["id"] || list[0]["outcome"] != "succeeded" ||
		list[0]["userId"] != nil || list[0]["detail"].(map[string]any)["keyId"] == nil {
		t.Fatalf("keys.rotated entries: %v", list)
	}
}

// TestAudit_KeapAppsAndConnectSessions: an organization's Keap app set and
// deleted, a connect session opened, each recorded; a failed one as failed;
// never the app's secret.
func TestAudit_KeapAppsAndConnectSessions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := s.createOrg("Apps", "apps@acme.test")
	app := "/organizations/elements/infusionsoftcrm/oauth/app"
	r := s.do("PUT", app, o.auth(), map[string]any{"apiKey": testClientID, "apiSecret": testClientSecret})
	if r.Status != 200 {
		t.Fatalf("PUT app: %d %s", r.Status, r.Body)
	}
	if e := s.lastAudit(t, o, "keap_app.set", "succeeded", 0, &r); e["targetType"] != "keap_app" || e["detail"].(map[string]any)["element"] != "infusionsoftcrm" {
		t.Fatalf("app set: %v", e)
	}
	sess := s.createSession(o, newSessionBody("audited"))
	if e := s.lastAudit(t, o, "connect_session.opened", "succeeded", 0, nil); e["targetType"] != "connect_session" || e["targetId"] != sess["id"] {
		t.Fatalf("session opened: %v (session %v)", e, sess["id"])
	}
	r = s.do("DELETE", app, o.auth(), nil)
	if r.Status >= 300 {
		t.Fatalf("DELETE app: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "keap_app.deleted", "succeeded", 0, &r)
	r = s.do("DELETE", app, o.auth(), nil)
	if r.Status != 404 {
		t.Fatalf("DELETE a deleted app: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "keap_app.deleted", "failed", 0, &r)
	r = s.do("PUT", "/organizations/elements/infusionsoftcrm/oauth/app", o.auth(), map[string]any{"apiKey": testClientID})
	if r.Status != 400 {
		t.Fatalf("PUT without a secret: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "keap_app.set", "failed", 0, &r)
	// An instance's XML-RPC bridge key made: recorded, the key never shown.
	inst := s.provisionOAuth(o, "infusionsoftcrm", "bridged")
	id := int64(inst["id"].(float64))
	r = s.do("POST", fmt.Sprintf("/instances/%d/bridge-key", id), o.auth(), nil)
	if r.Status >= 300 {
		t.Fatalf("bridge key: %d %s", r.Status, r.Body)
	}
	s.lastAudit(t, o, "instance.bridge_key_set", "succeeded", id, &r)
	raw := string(s.do("GET", "/audit-logs?pageSize=200", o.auth(), nil).Body)
	if strings.Contains(raw, testClientSecret) {
		t.Fatal("the audit log shows the app's secret")
	}
	key, _ := r.JSON(t)["bridgeKey"].(string)
	if key == "" || strings.Contains(raw, key) {
		t.Fatalf("no bridge key (%q), or the audit log shows it", key)
	}
}
