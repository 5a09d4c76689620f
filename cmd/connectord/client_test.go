package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/connectord/connectord/client"
)

// TestGeneratedClient_DrivesTheREADMEJourney drives the README's journey
// through the Go client generated from api/openapi.yaml (client/), against
// connectord started through run: the elements, the OAuth URL, creating an
// instance, listing it, a hub list, a proxied call, its events, deleting it.
// Every call is the generated one, as an application team would make it.
func TestGeneratedClient_DrivesTheREADMEJourney(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.keap.SeedContacts(3)
	o := s.createOrg("Generated", "generated@acme.test")
	ctx := context.Background()
	as := func(auth string) client.RequestEditorFn {
		return func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", auth)
			return nil
		}
	}
	c, err := client.NewClientWithResponses(s.URL)
	if err != nil {
		t.Fatal(err)
	}

	// The elements.
	els, err := c.ListElementsWithResponse(ctx)
	if err != nil || els.JSON200 == nil || len(*els.JSON200) != 4 {
		t.Fatalf("list elements: %v %v", err, status(els.HTTPResponse))
	}
	// The OAuth URL, and the user's trip through Keap's authorize page.
	state := "journey"
	u, err := c.GetOAuthURLWithResponse(ctx, "infusionsoftcrm", &client.GetOAuthURLParams{
		ApiKey: testClientID, ApiSecret: testClientSecret, CallbackUrl: "https://www.yourcallbackurl.com", State: &state})
	if err != nil || u.JSON200 == nil || u.JSON200.Element != "infusionsoftcrm" {
		t.Fatalf("oauth url: %v %v %s", err, status(u.HTTPResponse), u.Body)
	}
	code, gotState := authorize(t, u.JSON200.OauthUrl)
	if gotState != state {
		t.Fatalf("state %q", gotState)
	}

	// Create the instance.
	var body client.CreateInstanceJSONRequestBody
	key := "infusionsoftcrm"
	body.Element.Key = &key
	body.Name = "generated"
	body.ProviderData = &struct {
		Code *string `json:"code,omitempty"`
	}{Code: &code}
	cfg := map[string]*client.ConfigValue{}
	for k, v := range map[string]string{"oauth.api.key": testClientID, "oauth.api.secret": testClientSecret, "oauth.callback.url": "https://www.yourcallbackurl.com"} {
		var cv client.ConfigValue
		if err := cv.FromConfigValue0(v); err != nil {
			t.Fatal(err)
		}
		cfg[k] = &cv
	}
	body.Configuration = &cfg
	created, err := c.CreateInstanceWithResponse(ctx, body, as(o.auth()))
	if err != nil || created.JSON200 == nil {
		t.Fatalf("create instance: %v %v %s", err, status(created.HTTPResponse), created.Body)
	}
	inst := created.JSON200
	if inst.Token == "" || inst.Element.Key != "infusionsoftcrm" {
		t.Fatalf("created %+v", inst)
	}
	element := "User " + o.User.Secret + ", Element " + inst.Token

	// List the organization's instances.
	list, err := c.ListInstancesWithResponse(ctx, &client.ListInstancesParams{}, as(o.auth()))
	if err != nil || list.JSON200 == nil || len(*list.JSON200) != 1 || (*list.JSON200)[0].Id != inst.Id {
		t.Fatalf("list instances: %v %v %s", err, status(list.HTTPResponse), list.Body)
	}

	// A hub list through the instance.
	pageSize := 2
	hub, err := c.HubListWithResponse(ctx, "crm", "contacts", &client.HubListParams{PageSize: &pageSize}, as(element))
	if err != nil || hub.JSON200 == nil || len(*hub.JSON200) != 2 || hub.HTTPResponse.Header.Get("Elements-Next-Page-Token") == "" {
		t.Fatalf("hub list: %v %v %s", err, status(hub.HTTPResponse), hub.Body)
	}

	// A proxied call: the generated client escapes the Keap path into the
	// one parameter of /proxy/{path}.
	px, err := c.ProxyGetWithBodyWithResponse(ctx, "crm/rest/v1/contacts", "application/json", http.NoBody, as(element))
	if err != nil || px.StatusCode() != 200 || !strings.Contains(string(px.Body), `"contacts"`) {
		t.Fatalf("proxy: %v %v %s", err, status(px.HTTPResponse), px.Body)
	}
	if got := px.HTTPResponse.Request.URL.EscapedPath(); got != "/proxy/crm%2Frest%2Fv1%2Fcontacts" {
		t.Fatalf("the generated client asked for %s", got)
	}

	// Its events (none yet), then delete it.
	evs, err := c.ListInstanceEventsWithResponse(ctx, inst.Id, &client.ListInstanceEventsParams{}, as(o.auth()))
	if err != nil || evs.JSON200 == nil || len(*evs.JSON200) != 0 {
		t.Fatalf("events: %v %v %s", err, status(evs.HTTPResponse), evs.Body)
	}
	del, err := c.DeleteInstanceWithResponse(ctx, inst.Id, as(o.auth()))
	if err != nil || del.StatusCode() >= 300 {
		t.Fatalf("delete: %v %v %s", err, status(del.HTTPResponse), del.Body)
	}
	list, err = c.ListInstancesWithResponse(ctx, &client.ListInstancesParams{}, as(o.auth()))
	if err != nil || list.JSON200 == nil || len(*list.JSON200) != 0 {
		t.Fatalf("after delete: %v %s", err, list.Body)
	}
}

func status(r *http.Response) string {
	if r == nil {
		return "no response"
	}
	return r.Status
}
