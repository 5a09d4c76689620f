package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/proxy"
	"github.com/connectord/connectord/internal/tenants"
)

// TestRoutesDoc_MatchOpenAPI checks that api/openapi.yaml documents exactly the
// routes Routes serves: every chi route (root and /elements/api-v2 copies) is a
// documented path and method, and every documented one is routed.
func TestRoutesDoc_MatchOpenAPI(t *testing.T) {
	t.Parallel()
	catalog, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Handlers are never invoked, so the services may be nil. Sandbox is set so
	// that sandbox mode's routes are built too (and left out below).
	// Console is set so that its mount is built too, and left out below.
	h := Routes(Deps{Log: zerolog.Nop(), Catalog: catalog, Sandbox: http.NotFoundHandler(), Proxy: nopProxy{}, Scrape: http.NotFoundHandler(), Audit: nopAudit{}, Console: http.NotFoundHandler()})
	mux, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("Routes returned %T, not a chi router", h)
	}

	served := map[string]bool{}
	consoleMounted := false
	err = chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == "/sandbox/keap" || strings.HasPrefix(route, "/sandbox/") {
			return nil // the fake Keap, sandbox mode only; not part of the API
		}
		if route == "/console" || strings.HasPrefix(route, "/console/") {
			// The web console's HTML pages are for people, not the API;
			// internal/console lists them and its tests cover them.
			consoleMounted = true
			return nil
		}
		// chi's trailing wildcard is the document's {path} (the proxy).
		if strings.HasSuffix(route, "/*") {
			route = strings.TrimSuffix(route, "*") + "{path}"
		}
		served[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(served) == 0 {
		t.Fatal("chi.Walk found no routes")
	}
	if !consoleMounted {
		t.Error("the console is not mounted at /console")
	}

	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("api/openapi.yaml is not valid: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		servers := doc.Servers
		if len(item.Servers) > 0 {
			servers = item.Servers
		}
		if len(servers) == 0 {
			servers = openapi3.Servers{{URL: "/"}}
		}
		for method := range item.Operations() {
			for _, s := range servers {
				base := strings.TrimSuffix(s.URL, "/")
				if strings.Contains(base, "://") {
					t.Errorf("server %q is absolute; connectord's servers are base paths", s.URL)
					continue
				}
				documented[method+" "+base+path] = true
			}
		}
	}

	for _, r := range routeDocKeys(served) {
		if !documented[r] {
			t.Errorf("route %s is served but not documented in api/openapi.yaml", r)
		}
	}
	for _, r := range routeDocKeys(documented) {
		if !served[r] {
			t.Errorf("%s is documented in api/openapi.yaml but not served", r)
		}
	}
	// Both copies of the API are there.
	for _, r := range []string{"GET /instances", "GET " + OpenConnectorsPrefix + "/instances", "GET /healthz"} {
		if !served[r] {
			t.Errorf("%s is not served", r)
		}
	}
	if served["GET "+OpenConnectorsPrefix+"/healthz"] {
		t.Errorf("/healthz is served under %s too; the document says root only", OpenConnectorsPrefix)
	}
}

func routeDocKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// nopProxy stands for the proxy, which is never invoked here.
type nopProxy struct{}

func (nopProxy) Prepare(context.Context, tenants.Principal, proxy.Request) (*proxy.Call, error) {
	return nil, nil
}

func (nopProxy) Send(*proxy.Call, *http.Request) (*http.Response, error) { return nil, nil }

func (nopProxy) Bridge(context.Context, *proxy.Call) ([]byte, error) { return nil, nil }

// nopAudit stands for the audit log, which is never used here.
type nopAudit struct{}

func (nopAudit) RecordAudit(context.Context, audit.Entry) error { return nil }
func (nopAudit) AuditLog(context.Context, int64, audit.Filter) ([]audit.Entry, int64, error) {
	return nil, 0, nil
}
