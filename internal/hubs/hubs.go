// Package hubs owns the normalised resource API, /hubs/{hub}/{resource}[/{id}]:
// which element serves which hub and resource (read from the element
// definitions, never hard-coded), the CEQL where and orderBy mapping onto
// Keap's list parameters, paging cursors, null filtering, the contact upsert,
// the country and region checks against Keap's own locale lists (cached), and
// how Keap's answers become the caller's answers and errors.
//
// It must not send anything to Keap except through its Doer (the upstream
// client, which owns credentials, rate limits and retries), must not filter or
// page in memory what Keap can filter or page, and must not know the incoming
// HTTP request: handlers hand it a Request and write its Result.
package hubs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/upstream"
)

// Configuration keys the hubs read.
const (
	KeyPageMax     = "pagination.max"
	KeyFilterNulls = "filter.response.nulls"
)

// DefaultPageSize is the page size when the caller gives none (Open Connectors' default).
const DefaultPageSize = 200

// maxKeapBody bounds what is read of one Keap answer.
const maxKeapBody = 64 << 20

// Upsert results, in the Elements-Upsert-Result header.
const (
	UpsertCreated = "created"
	UpsertUpdated = "updated"
)

// Resolver finds the instance an Element token authenticated (the instances package).
type Resolver interface {
	Resolve(ctx context.Context, p tenants.Principal) (*instances.Instance, *elements.Element, error)
}

// Doer sends one request to Keap for an instance (the upstream package).
type Doer interface {
	Do(ctx context.Context, t upstream.Target, req *http.Request, body []byte) (*http.Response, error)
}

// Options tune a Service; zero values take the defaults.
type Options struct {
	LocaleTTL time.Duration    // how long Keap's country and region lists are kept; default 1h
	Now       func() time.Time // default time.Now
}

// Service serves the hubs.
type Service struct {
	resolver Resolver
	keap     Doer
	locales  *localeCache
}

// New returns a Service.
func New(r Resolver, keap Doer, opt Options) *Service {
	if opt.LocaleTTL <= 0 {
		opt.LocaleTTL = time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Service{resolver: r, keap: keap, locales: newLocaleCache(opt.LocaleTTL, opt.Now)}
}

// Request is one hub call: /hubs/{Hub}/{Resource}[/{ID}[/{Sub}[/{SubID}]]].
type Request struct {
	Hub, Resource, ID, Sub, SubID string
	Method                        string
	Query                         url.Values
	Body                          []byte // JSON, or empty
}

// Result is what Keap answered, reshaped for the caller.
type Result struct {
	Status   int    // Keap's success status: 200, 201 or 204
	Body     []byte // JSON; empty for no body
	NextPage string // the cursor of the next page; empty on the last
	Upsert   string // UpsertCreated or UpsertUpdated on an upsert
}

// call is a request resolved against the instance's element.
type call struct {
	inst   *instances.Instance
	el     *elements.Element
	target upstream.Target
	res    elements.Resource
	path   string // under the REST base, escaped
	item   bool   // the call names one record
	req    Request
}

// Call serves one hub request.
func (s *Service) Call(ctx context.Context, p tenants.Principal, req Request) (*Result, error) {
	inst, el, target, err := s.resolve(ctx, p, req.Hub)
	if err != nil {
		return nil, err
	}
	c, err := route(el, req)
	if err != nil {
		return nil, err
	}
	c.inst, c.el, c.target = inst, el, target
	allowed := c.res.Methods
	if c.item {
		allowed = c.res.ItemMethods
	}
	if !slices.Contains(allowed, req.Method) {
		if len(allowed) == 0 {
			return nil, apperr.Errorf(apperr.MethodNotAllowed, "%s serves no method on %s", el.Key, c.describe())
		}
		return nil, apperr.Errorf(apperr.MethodNotAllowed, "%s allows %s, not %s", c.describe(), strings.Join(allowed, ", "), req.Method)
	}
	switch {
	case req.Method == http.MethodGet && !c.item:
		return s.list(ctx, c)
	case req.Method == http.MethodPut && !c.item:
		return s.upsert(ctx, c)
	}
	return s.single(ctx, c)
}

// resolve finds the caller's instance, checks it serves hub, and says where
// its Keap calls go.
func (s *Service) resolve(ctx context.Context, p tenants.Principal, hub string) (*instances.Instance, *elements.Element, upstream.Target, error) {
	inst, el, err := s.resolver.Resolve(ctx, p)
	if err != nil {
		return nil, nil, upstream.Target{}, err
	}
	if hub != el.Hub {
		return nil, nil, upstream.Target{}, apperr.Errorf(apperr.NotFound, "instance %d is an %s instance, which serves hub %s, not %s: call /hubs/%s/…", inst.ID, el.Key, el.Hub, hub, el.Hub)
	}
	t := upstream.TargetFor(el, inst)
	if t.Legacy {
		return nil, nil, upstream.Target{}, apperr.Errorf(apperr.Conflict, "instance %d uses a legacy API key and this connectord sends legacy keys to the applications' legacy XML-RPC endpoints (CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL is set), which serve XML-RPC only: use the proxy (/proxy/crm/xmlrpc/v1), or have the operator unset it so the key goes to Keap's API host as X-Keap-API-Key", inst.ID)
	}
	return inst, el, t, nil
}

// route finds the resource a request names.
func route(el *elements.Element, req Request) (*call, error) {
	res, ok := el.Resource(req.Resource)
	if !ok || res.Parent != "" || strings.Contains(req.Resource, "/") {
		return nil, apperr.Errorf(apperr.NotFound, "%s (hub %s) has no resource %q; it serves %s", el.Key, el.Hub, req.Resource, strings.Join(served(el), ", "))
	}
	c := &call{res: res, path: res.Path, req: req}
	if req.ID == "" {
		return c, nil
	}
	if err := checkID(res.Name, req.ID); err != nil {
		return nil, err
	}
	if req.Sub == "" {
		c.item, c.path = true, res.Path+"/"+req.ID
		return c, nil
	}
	i := slices.IndexFunc(el.Resources, func(r elements.Resource) bool { return r.Parent == res.Name && r.Segment == req.Sub })
	if i < 0 {
		return nil, apperr.Errorf(apperr.NotFound, "%s (hub %s) has no resource %s/{id}/%s; it serves %s", el.Key, el.Hub, req.Resource, req.Sub, strings.Join(served(el), ", "))
	}
	child := el.Resources[i]
	open, end := strings.Index(child.Path, "{"), strings.Index(child.Path, "}")
	c.res, c.path = child, child.Path[:open]+req.ID+child.Path[end+1:]
	if req.SubID != "" {
		if err := checkID(req.Resource+"/"+req.ID+"/"+req.Sub, req.SubID); err != nil {
			return nil, err
		}
		c.item, c.path = true, c.path+"/"+req.SubID
	}
	return c, nil
}

// served lists what an element serves, as the caller writes it.
func served(el *elements.Element) []string {
	var out []string
	for _, r := range el.Resources {
		switch {
		case strings.HasPrefix(r.Parent, "lookups/"):
			out = append(out, r.Parent+"/{code}/"+r.Segment)
		case r.Parent != "":
			out = append(out, r.Parent+"/{id}/"+r.Segment)
		default:
			out = append(out, r.Name)
		}
	}
	return out
}

// checkID accepts Keap's record ids: positive whole numbers.
func checkID(what, id string) error {
	if n, err := strconv.ParseInt(id, 10, 64); err != nil || n < 1 || strconv.FormatInt(n, 10) != id {
		return apperr.Errorf(apperr.Invalid, "%s: id %q is not a Keap id (a positive whole number)", what, id)
	}
	return nil
}

// at names what the call is about as the caller wrote it, e.g. contacts/42.
func (c *call) at() string {
	parts := []string{c.req.Resource, c.req.ID, c.req.Sub, c.req.SubID}
	for len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "/")
}

func (c *call) describe() string {
	switch {
	case c.res.Parent != "" && c.item:
		return c.req.Resource + "/{id}/" + c.res.Segment + "/{id}"
	case c.res.Parent != "":
		return c.req.Resource + "/{id}/" + c.res.Segment
	case c.item:
		return c.res.Name + "/{id}"
	}
	return c.res.Name
}

// onlyParams refuses query parameters the call does not take, naming those it does.
func onlyParams(q url.Values, what string, allowed ...string) error {
	var unknown []string
	for k := range q {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	if len(allowed) == 0 {
		return apperr.Errorf(apperr.Invalid, "%s takes no query parameters; unknown: %s", what, strings.Join(unknown, ", "))
	}
	return apperr.Errorf(apperr.Invalid, "unknown query parameters for %s: %s (it takes %s)", what, strings.Join(unknown, ", "), strings.Join(allowed, ", "))
}

// methodParams checks the pass-through parameters of the call's method on a
// collection and adds them to out.
func (c *call) methodParams(out url.Values) ([]string, error) {
	if c.item {
		return nil, nil
	}
	params := c.res.MethodParams[c.req.Method]
	names := make([]string, 0, len(params))
	for name, p := range params {
		names = append(names, name)
		v := c.req.Query.Get(name)
		if v == "" {
			if p.Required {
				return nil, apperr.Errorf(apperr.Invalid, "%s %s needs the query parameter %s (%s)", c.req.Method, c.describe(), name, typeHint(p.Type))
			}
			continue
		}
		if len(c.req.Query[name]) > 1 || !validParam(p.Type, v) {
			return nil, apperr.Errorf(apperr.Invalid, "query parameter %s must be %s, once", name, typeHint(p.Type))
		}
		out.Set(name, v)
	}
	slices.Sort(names)
	return names, nil
}

func typeHint(t string) string {
	switch t {
	case "integer":
		return "a whole number"
	case "boolean":
		return "true or false"
	case "integerList":
		return "comma-separated whole numbers, e.g. 1,2"
	}
	return "text"
}

func validParam(t, v string) bool {
	switch t {
	case "integer":
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	case "boolean":
		return v == "true" || v == "false"
	case "integerList":
		for part := range strings.SplitSeq(v, ",") {
			if _, err := strconv.ParseInt(part, 10, 64); err != nil {
				return false
			}
		}
		return true
	}
	return true
}

// single serves a call Keap answers with one object (or nothing): create,
// read, update, delete, and the child resources' writes.
func (s *Service) single(ctx context.Context, c *call) (*Result, error) {
	out := url.Values{}
	names, err := c.methodParams(out)
	if err != nil {
		return nil, err
	}
	if err := onlyParams(c.req.Query, c.req.Method+" "+c.describe(), names...); err != nil {
		return nil, err
	}
	var body []byte
	if c.req.Method == http.MethodPost || c.req.Method == http.MethodPut || c.req.Method == http.MethodPatch {
		doc, err := jsonBody(c.req.Body)
		if err != nil {
			return nil, err
		}
		if err := s.checkAddresses(ctx, c, doc); err != nil {
			return nil, err
		}
		body = c.req.Body
	}
	status, data, err := s.send(ctx, c, c.req.Method, c.path, out, body)
	if err != nil {
		return nil, err
	}
	return c.result(status, data)
}

// upsert creates or updates a record through the resource's upsert call, e.g.
// Keap's PUT /contacts with duplicate_option.
func (s *Service) upsert(ctx context.Context, c *call) (*Result, error) {
	u := c.res.Upsert
	if err := onlyParams(c.req.Query, "PUT "+c.describe(), "duplicateOption"); err != nil {
		return nil, err
	}
	doc, err := jsonBody(c.req.Body)
	if err != nil {
		return nil, err
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, apperr.Errorf(apperr.Invalid, "the upsert body must be a JSON object")
	}
	option := u.DuplicateOption
	inBody, _ := obj["duplicate_option"].(string)
	if _, present := obj["duplicate_option"]; present {
		option = inBody
	}
	if q := c.req.Query.Get("duplicateOption"); q != "" {
		if inBody != "" && inBody != q {
			return nil, apperr.Errorf(apperr.Invalid, "duplicateOption %s and the body's duplicate_option %s disagree: give one", q, inBody)
		}
		option = q
	}
	if !slices.Contains(u.DuplicateOptions, option) {
		return nil, apperr.Errorf(apperr.Invalid, "duplicateOption must be one of %s, not %q", strings.Join(u.DuplicateOptions, ", "), option)
	}
	if err := s.checkAddresses(ctx, c, doc); err != nil {
		return nil, err
	}
	obj["duplicate_option"] = option
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("hubs: encode upsert: %w", err)
	}
	status, data, err := s.send(ctx, c, u.Method, u.Path, nil, body)
	if err != nil {
		return nil, err
	}
	r, err := c.result(status, data)
	if err != nil {
		return nil, err
	}
	r.Upsert = UpsertUpdated
	if status == http.StatusCreated {
		r.Upsert = UpsertCreated
	}
	return r, nil
}

// result reshapes one Keap answer.
func (c *call) result(status int, data []byte) (*Result, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Result{Status: status}, nil
	}
	body, err := recode(data, c.stripNulls())
	if err != nil {
		return nil, apperr.Errorf(apperr.ProviderDown, "Keap's answer to %s %s is not JSON", c.req.Method, c.describe())
	}
	return &Result{Status: status, Body: body}, nil
}

// stripNulls says whether nulls are removed from answers: unless the instance
// says filter.response.nulls=false.
func (c *call) stripNulls() bool {
	return instances.Value(c.el, c.inst, KeyFilterNulls) != "false"
}

// send makes one Keap call and returns its success status and body, or the
// caller's error for Keap's refusal.
func (s *Service) send(ctx context.Context, c *call, method, path string, q url.Values, body []byte) (int, []byte, error) {
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.target.RESTBase+path, rdr)
	if err != nil {
		return 0, nil, fmt.Errorf("hubs: build Keap request: %w", err)
	}
	// The query is encoded straight into the URL rather than joined to the
	// string above and parsed out of it again. Every parameter has a value
	// (they are set with Set), so the encoding is never empty.
	if len(q) > 0 {
		req.URL.RawQuery = q.Encode()
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.keap.Do(ctx, c.target, req, body)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := readBody(resp.Body, resp.ContentLength)
	if err != nil {
		return 0, nil, keap.TransportError("reading Keap's answer", err)
	}
	if len(data) > maxKeapBody {
		return 0, nil, apperr.Errorf(apperr.ProviderDown, "Keap's answer is larger than %d bytes; ask for a smaller pageSize", maxKeapBody)
	}
	if resp.StatusCode >= 300 {
		what := c.req.Method + " " + c.at()
		if path != c.path {
			what = method + " Keap's " + path
		}
		return 0, nil, providerError(resp.StatusCode, data, what)
	}
	return resp.StatusCode, data, nil
}

// readBody reads a Keap answer of length bytes (-1 when Keap did not say),
// but no more than maxKeapBody+1, so that a larger one shows. The buffer is
// sized once: for the length Keap gave, and one byte more to see the end
// without growing it, or else for 8 KB, more than a page of ten contacts. It
// grows only for an answer longer than that.
func readBody(body io.Reader, length int64) ([]byte, error) {
	size := int64(8 << 10)
	if length >= 0 {
		size = min(length, maxKeapBody) + 1
	}
	buf := make([]byte, 0, size)
	r := io.LimitReader(body, maxKeapBody+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // room for more, as append grows
		}
	}
}

// providerError turns Keap's refusal into the caller's error, keeping the
// meaning of Keap's status and Keap's own words.
func providerError(status int, body []byte, what string) error {
	e := &apperr.Error{ProviderMessage: keap.ErrorMessage(body)}
	switch {
	case status == http.StatusNotFound:
		e.Code, e.Message = apperr.NotFound, "Keap found nothing for "+what
	case status == http.StatusUnauthorized:
		e.Code, e.Message = apperr.ProviderDown, "Keap refused the instance's credentials (after a token refresh, for OAuth): check the instance, or provision it again"
	case status == http.StatusForbidden:
		e.Code, e.Message = apperr.Forbidden, "Keap does not allow "+what+" for this account"
	case status == http.StatusConflict:
		e.Code, e.Message = apperr.Conflict, "Keap refused "+what+" as conflicting"
	case status == http.StatusTooManyRequests:
		e.Code, e.Message = apperr.ProviderThrottled, "Keap's rate limit refused "+what+" after retries: try again later"
	case status >= 500:
		e.Code, e.Message = apperr.ProviderDown, fmt.Sprintf("Keap failed (%d) on %s", status, what)
	default:
		e.Code, e.Message = apperr.ProviderRefused, fmt.Sprintf("Keap refused %s (%d)", what, status)
	}
	if e.ProviderMessage == "" {
		e.ProviderMessage = http.StatusText(status)
	}
	return e
}
