package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contractPath is the OpenAPI document every response is checked against.
const contractPath = "../../api/openapi.yaml"

// contract is the loaded document and its router, built once per test binary.
var contract struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// loadContract loads and validates the OpenAPI document and builds a router
// for it. The document's servers are relative ("/" and "/elements/api-v2"), so
// the gorillamux router matches any host, including the test server's random
// http://127.0.0.1:PORT, and finds both /instances and
// /elements/api-v2/instances; /healthz and /readyz list only "/".
func loadContract() (*openapi3.T, routers.Router, error) {
	contract.once.Do(func() {
		// Pages (the connect flow's) are HTML: checked as text, like text/plain.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(contractPath)
		if err != nil {
			contract.err = fmt.Errorf("load %s: %w", contractPath, err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			contract.err = fmt.Errorf("%s is not a valid OpenAPI document: %w", contractPath, err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			contract.err = fmt.Errorf("route %s: %w", contractPath, err)
			return
		}
		contract.doc, contract.router = doc, router
	})
	return contract.doc, contract.router, contract.err
}

// checkContract checks one exchange with connectord against api/openapi.yaml:
// the response strictly (status, headers, body), and the request too when the
// server accepted it (status below 400), since a deliberately wrong request
// is expected to break the documented request schema.
func checkContract(t testing.TB, req *http.Request, reqBody []byte, r response) {
	t.Helper()
	if strings.HasPrefix(req.URL.Path, "/sandbox/") {
		return // the fake Keap imitates Keap, not connectord
	}
	_, router, err := loadContract()
	if err != nil {
		t.Errorf("contract: %v", err)
		return
	}
	ctx := context.Background()
	// The request was sent and its body read; validate a copy with the body back.
	vreq := req.Clone(ctx)
	if reqBody != nil {
		vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
		vreq.ContentLength = int64(len(reqBody))
	} else {
		vreq.Body = http.NoBody
	}
	where := fmt.Sprintf("%s %s answered %d", req.Method, req.URL.Path, r.Status)

	route, params, err := router.FindRoute(vreq)
	if err != nil {
		if r.Status == http.StatusNotFound || r.Status == http.StatusMethodNotAllowed {
			return // a test of an unknown route or method
		}
		reason := "matches no documented path"
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			reason = "is not a documented method of its path"
		}
		t.Errorf("contract: %s but %s %s (%v): document it in api/openapi.yaml\nbody: %s",
			where, req.Method, reason, err, truncate(r.Body))
		return
	}

	reqOpts := &openapi3filter.Options{
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, // security is tested elsewhere
		MultiError:         true,
	}
	reqOpts.WithCustomSchemaErrorFunc(schemaErrorMessage)
	input := &openapi3filter.RequestValidationInput{
		Request:    vreq,
		PathParams: params,
		Route:      route,
		Options:    reqOpts,
	}
	if r.Status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			t.Errorf("contract: %s (operation %s), but the request breaks the documented request: %v\nrequest body: %s",
				where, route.Operation.OperationID, err, truncate(reqBody))
		}
	}

	respOpts := &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status fails
		MultiError:            true,
	}
	respOpts.WithCustomSchemaErrorFunc(schemaErrorMessage)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 r.Status,
		Header:                 r.Header,
		Options:                respOpts,
	}
	out.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("contract: %s (operation %s), which breaks the documented response: %v\nbody: %s",
			where, route.Operation.OperationID, err, truncate(r.Body))
		return
	}
	// kin-openapi does not check bodies of responses documented without
	// content; those are documented as empty (e.g. DELETE /instances/{id}).
	if ref := route.Operation.Responses.Status(r.Status); ref != nil && ref.Value != nil &&
		len(ref.Value.Content) == 0 && len(bytes.TrimSpace(r.Body)) > 0 {
		t.Errorf("contract: %s (operation %s) with a body, but the document says the body is empty\nbody: %s",
			where, route.Operation.OperationID, truncate(r.Body))
	}
}

// schemaErrorMessage names where in the JSON a value breaks its schema and
// why, without kin-openapi's dump of the whole schema and value.
func schemaErrorMessage(err *openapi3.SchemaError) string {
	if err.Origin != nil {
		return "" // kin-openapi's own message names the cause
	}
	reason := err.Reason
	switch {
	case err.SchemaField == "not" && err.Schema != nil && err.Schema.Description != "":
		reason = "matches what the schema forbids: " + err.Schema.Description
	case reason == "":
		reason = "does not match " + err.SchemaField
	}
	return fmt.Sprintf("at %q: %s", "/"+strings.Join(err.JSONPointer(), "/"), reason)
}

// truncate shortens a body for a failure message.
func truncate(b []byte) string {
	const max = 500
	if len(b) > max {
		return string(b[:max]) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return string(b)
}

// TestOpenAPIDocument_IsValid checks the document itself: it loads, validates,
// routes, and every operation has an operationId (unique) and a 2xx (or 3xx) response.
func TestOpenAPIDocument_IsValid(t *testing.T) {
	t.Parallel()
	doc, router, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	if router == nil {
		t.Fatal("no router")
	}
	seen := map[string]string{}
	count := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			count++
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := seen[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %q", where, other, op.OperationID)
			} else {
				seen[op.OperationID] = where
			}
			ok := false
			if op.Responses != nil {
				for code := range op.Responses.Map() {
					// A redirect is the success of the connect pages' form and callback.
					if len(code) == 3 && (code[0] == '2' || code[0] == '3') {
						ok = true
					}
				}
			}
			if !ok {
				t.Errorf("%s documents no 2xx (or 3xx) response", where)
			}
		}
	}
	if count == 0 {
		t.Fatal("the document has no operations")
	}

	// Both base paths route, and the health checks only at the root.
	for _, c := range []struct {
		method, url string
		want        string // operationId, or "" for no route
	}{
		{"GET", "http://127.0.0.1:41234/instances", "listInstances"},
		{"GET", "http://127.0.0.1:41234/elements/api-v2/instances", "listInstances"},
		{"POST", "http://127.0.0.1:41234/elements/api-v2/instances", "createInstance"},
		{"POST", "http://127.0.0.1:41234/elements/infusionsoftcrm/instances", "createElementInstance"},
		{"DELETE", "http://127.0.0.1:41234/elements/api-v2/instances/7", "deleteInstance"},
		{"PATCH", "http://127.0.0.1:41234/instances/7/configuration/oauth.user.refresh_interval", "setInstanceConfigEntry"},
		{"GET", "http://127.0.0.1:41234/elements/api-v2/elements/infusionsoftcrm/oauth/url", "getOAuthURL"},
		{"GET", "http://127.0.0.1:41234/healthz", "healthz"},
		{"GET", "http://127.0.0.1:41234/elements/api-v2/healthz", ""},
		{"GET", "http://127.0.0.1:41234/elements/api-v2/readyz", ""},
	} {
		req, err := http.NewRequest(c.method, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		route, _, err := router.FindRoute(req)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s %s routes to %s, want no route", c.method, c.url, route.Operation.OperationID)
		case c.want != "" && err != nil:
			t.Errorf("%s %s: %v, want %s", c.method, c.url, err, c.want)
		case c.want != "" && route.Operation.OperationID != c.want:
			t.Errorf("%s %s routes to %s, want %s", c.method, c.url, route.Operation.OperationID, c.want)
		}
	}
}

// checkNotificationContract checks a body connectord POSTed to a callback
// against the document's CallbackNotification schema.
func checkNotificationContract(t testing.TB, body []byte) {
	t.Helper()
	doc, _, err := loadContract()
	if err != nil {
		t.Errorf("contract: %v", err)
		return
	}
	ref := doc.Components.Schemas["CallbackNotification"]
	if ref == nil || ref.Value == nil {
		t.Errorf("contract: api/openapi.yaml has no components.schemas.CallbackNotification")
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("contract: a callback notification is not JSON: %v\nbody: %s", err, truncate(body))
		return
	}
	if err := ref.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		t.Errorf("contract: a callback notification breaks CallbackNotification: %v\nbody: %s", err, truncate(body))
	}
}
