package elements

import (
	"strconv"
	"testing"
	"testing/fstest"
)

func TestLoad_FourInfusionsoftElementsWithHubs(t *testing.T) {
	t.Parallel()
	c, err := Load(map[string]Endpoints{"infusionsoft": {TokenURL: "http://fake/token"}})
	if err != nil {
		t.Fatal(err)
	}
	wantHub := map[string]string{"infusionsoftcrm": "crm", "infusionsoftmarketing": "marketing", "infusionsoftecommerce": "ecommerce", "infusionsoftrest": "crm"}
	if len(c.All()) != len(wantHub) {
		t.Fatalf("got %d elements, want %d", len(c.All()), len(wantHub))
	}
	for key, hub := range wantHub {
		el, ok := c.Lookup(key)
		if !ok || el.Hub != hub {
			t.Fatalf("%s: found=%v hub=%v, want hub %s", key, ok, el, hub)
		}
		byID, ok := c.Lookup(strconv.FormatInt(el.ID, 10))
		if !ok || byID != el {
			t.Fatalf("%s not found by id %d", key, el.ID)
		}
		if !el.SupportsAuth("oauth2") || !el.SupportsAuth("apikey") {
			t.Fatalf("%s must support oauth2 and apikey", key)
		}
		if el.Endpoints.TokenURL != "http://fake/token" || el.Endpoints.RESTBase() != "https://api.infusionsoft.com/crm/rest/v1" {
			t.Fatalf("%s endpoints not overridden as asked: %+v", key, el.Endpoints)
		}
		if _, ok := el.Resource("contacts"); !ok {
			t.Fatalf("%s has no contacts resource", key)
		}
	}
	if _, ok := c.Lookup("salesforce"); ok {
		t.Fatal("unknown key found")
	}
	mkt, _ := c.Lookup("infusionsoftmarketing")
	if _, ok := mkt.Resource("campaigns"); !ok {
		t.Fatal("marketing must serve campaigns")
	}
	ec, _ := c.Lookup("infusionsoftecommerce")
	for _, r := range []string{"orders", "products", "transactions", "subscriptions"} {
		if _, ok := ec.Resource(r); !ok {
			t.Fatalf("ecommerce must serve %s", r)
		}
	}
}

func TestLoad_RejectsBrokenDefinitions(t *testing.T) {
	t.Parallel()
	provider := `{"key":"p","name":"P","authenticationTypes":["oauth2"],"endpoints":{},"configuration":[],"resources":{"a":{"path":"/a","methods":["GET"]}}}`
	cases := map[string]string{
		"unknown field":    `{"id":1,"key":"x","name":"X","provider":"p","hub":"crm","typo":1}`,
		"key not filename": `{"id":1,"key":"y","name":"X","provider":"p","hub":"crm"}`,
		"unknown resource": `{"id":1,"key":"x","name":"X","provider":"p","hub":"crm","resources":["b"]}`,
		"no hub":           `{"id":1,"key":"x","name":"X","provider":"p"}`,
	}
	for name, el := range cases {
		fsys := fstest.MapFS{
			"definitions/providers/p.json": {Data: []byte(provider)},
			"definitions/elements/x.json":  {Data: []byte(el)},
		}
		if _, err := load(fsys, nil); err == nil {
			t.Errorf("%s: load accepted a broken definition", name)
		}
	}
}
