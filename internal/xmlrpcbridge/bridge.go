// Package xmlrpcbridge owns connectord's answer to Keap's XML-RPC API, which
// Keap turns off on 31 December 2026: it reads a methodCall, translates it onto
// Keap's REST v2 API (the tables' field mapping is data, in tables/*.json), and
// answers a methodResponse with the types and faults Keap's XML-RPC answered.
// It also keeps the per-instance bridge keys callers authenticate with.
//
// It must not send anything to Keap except through its Doer (the upstream
// client: credentials, rate limits, retries), must not filter or page in
// memory what it asks Keap for (what v2 cannot filter is a fault naming what
// it can), and must not know the incoming HTTP request.
package xmlrpcbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/upstream"
)

// RESTPath is where Keap's REST v2 lives on its API host.
const RESTPath = "/crm/rest/v2"

// maxAnswer bounds what is read of one Keap answer.
const maxAnswer = 32 << 20

// Doer sends one request to Keap for an instance (the upstream package).
type Doer interface {
	Do(ctx context.Context, t upstream.Target, req *http.Request, body []byte) (*http.Response, error)
}

// Elements finds an instance's element (the elements catalog).
type Elements interface {
	Lookup(keyOrID string) (*elements.Element, bool)
}

// Bridge answers XML-RPC calls over REST v2.
type Bridge struct {
	keap     Doer
	elements Elements
	tables   map[string]*table
	settings map[string]setting
	methods  map[string]*method
	pages    *pageTokens
	log      zerolog.Logger
}

// New returns a Bridge that calls Keap through keap; log receives the
// failures a caller sees only as an [UnexpectedError] fault.
func New(keap Doer, els Elements, log zerolog.Logger) (*Bridge, error) {
	tables, err := loadTables(tableFiles)
	if err != nil {
		return nil, err
	}
	settings, err := loadSettings(tableFiles)
	if err != nil {
		return nil, err
	}
	b := &Bridge{keap: keap, elements: els, tables: tables, settings: settings, pages: newPageTokens(10*time.Minute, 100_000, time.Now), log: log}
	b.methods = methodTable()
	return b, nil
}

// Call is one decoded methodCall.
type Call struct {
	Method string
	Params []any
}

// Key is the call's first parameter, where Keap's XML-RPC took the API key,
// or "" when it has none or it is not text.
func (c *Call) Key() string {
	if len(c.Params) == 0 {
		return ""
	}
	s, _ := c.Params[0].(string)
	return s
}

// Keyed says whether the method takes a key as its first parameter.
func (b *Bridge) Keyed(method string) bool {
	m, ok := b.methods[method]
	return !ok || m.keyed
}

// Parse decodes a methodCall; a body that is not one is a fault.
func Parse(body []byte) (*Call, *keap.Fault) {
	name, params, err := keap.DecodeCall(body)
	if err != nil {
		return nil, &keap.Fault{Code: 0, String: "Failed to parse XML-RPC request: " + err.Error()}
	}
	return &Call{Method: name, Params: params}, nil
}

// Call answers one methodCall body for inst, whoever authenticated it (the
// proxy, in bridge mode): the first parameter is not read as a key.
func (b *Bridge) Call(ctx context.Context, inst *instances.Instance, body []byte) ([]byte, error) {
	el, ok := b.elements.Lookup(inst.ElementKey)
	if !ok {
		return nil, fmt.Errorf("xmlrpcbridge: instance %d has element %q which this build does not know", inst.ID, inst.ElementKey)
	}
	c, f := Parse(body)
	if f != nil {
		return keap.EncodeFault(f), nil
	}
	return b.Serve(ctx, inst, el, c), nil
}

// Serve answers c for inst: a methodResponse, a fault when Keap or the call
// said no.
func (b *Bridge) Serve(ctx context.Context, inst *instances.Instance, el *elements.Element, c *Call) []byte {
	result, err := b.serve(ctx, inst, el, c)
	if err != nil {
		var f *keap.Fault
		if !errors.As(err, &f) {
			f = &keap.Fault{Code: 2, String: "[UnexpectedError]" + callerMessage(err)}
			ev := b.log.Warn()
			if e, ok := apperr.As(err); !ok || e.Code == apperr.Internal {
				ev = b.log.Error()
			}
			if inst != nil {
				ev = ev.Int64("instance_id", inst.ID)
			}
			ev.Err(err).Str("method", c.Method).Msg("xml-rpc bridge call failed")
		}
		return keap.EncodeFault(f)
	}
	out, err := keap.EncodeResponse(result)
	if err != nil {
		return keap.EncodeFault(&keap.Fault{Code: 2, String: "[UnexpectedError]the bridge could not encode Keap's answer"})
	}
	return out
}

func callerMessage(err error) string {
	if e, ok := apperr.As(err); ok && e.Code != apperr.Internal {
		return e.Message
	}
	return "the bridge failed; see connectord's log"
}

func (b *Bridge) serve(ctx context.Context, inst *instances.Instance, el *elements.Element, c *Call) (any, error) {
	m, ok := b.methods[c.Method]
	if !ok {
		return nil, &keap.Fault{Code: 0, String: "No such handler: " + c.Method + " (system.listMethods lists what the bridge serves)"}
	}
	args := c.Params
	if m.keyed {
		if len(args) == 0 {
			return nil, &keap.Fault{Code: 0, String: "No method matching arguments: " + c.Method + " takes the key first"}
		}
		args = args[1:]
	}
	if err := m.check(c.Method, c.Params, args); err != nil {
		return nil, err
	}
	rc := &rcall{b: b, ctx: ctx}
	if inst != nil && el != nil {
		rc.target, rc.base = upstream.TargetFor(el, inst), strings.TrimRight(el.Endpoints.APIURL, "/")+RESTPath
	} else if m.keyed {
		return nil, fault("InvalidKey", "%s needs an instance: pass its bridge key first", c.Method)
	}
	return m.fn(rc, args)
}

// fault is a Keap service fault, its string tagged like "[RecordNotFound]…".
func fault(tag, format string, args ...any) *keap.Fault {
	return &keap.Fault{Code: 2, String: "[" + tag + "]" + fmt.Sprintf(format, args...)}
}

// rcall is one XML-RPC call being translated.
type rcall struct {
	b      *Bridge
	ctx    context.Context
	target upstream.Target
	base   string
}

// restError is a REST v2 answer that is not a success.
type restError struct {
	status  int
	message string
}

func (e *restError) Error() string { return fmt.Sprintf("Keap answered %d: %s", e.status, e.message) }

// rest sends one request to REST v2 and decodes its JSON answer (nil for none).
func (c *rcall) rest(method, path string, query url.Values, body any) (map[string]any, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("xmlrpcbridge: encode body: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(c.ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("xmlrpcbridge: request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.b.keap.Do(c.ctx, c.target, req, data)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("xmlrpcbridge: read Keap's answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &restError{status: resp.StatusCode, message: keapMessage(raw)}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("xmlrpcbridge: Keap's answer to %s %s is not a JSON object: %w", method, path, err)
	}
	return out, nil
}

// keapMessage is the message of a v2 error ({code, message, status, details})
// or of a v1 one ({message}), else the start of the body.
func keapMessage(raw []byte) string {
	var e struct {
		Message string `json:"message"`
		Fault   struct {
			Faultstring string `json:"faultstring"`
		} `json:"fault"`
	}
	if json.Unmarshal(raw, &e) == nil {
		if e.Message != "" {
			return e.Message
		}
		if e.Fault.Faultstring != "" {
			return e.Fault.Faultstring
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// translate turns a REST failure into Keap's XML-RPC fault; notFound is the
// fault for a 404.
func translate(err error, notFound *keap.Fault) error {
	var re *restError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.status == http.StatusNotFound && notFound != nil:
		return notFound
	case re.status == http.StatusNotFound:
		return fault("RecordNotFound", "%s", re.message)
	case re.status == http.StatusUnauthorized || re.status == http.StatusForbidden:
		return fault("InvalidKey", "Keap refused the instance's credential (%d: %s); repair the instance", re.status, re.message)
	case re.status == http.StatusConflict:
		return fault("DuplicateRecord", "%s", re.message)
	case re.status == http.StatusTooManyRequests:
		return fault("TooManyRequests", "Keap's rate limit: %s", re.message)
	case re.status >= 400 && re.status < 500:
		return fault("InvalidParameter", "%s", re.message)
	}
	return fault("UnexpectedError", "Keap answered %d: %s", re.status, re.message)
}

// recordNotFound is Keap's fault for a missing record.
func recordNotFound(table string, id int64) *keap.Fault {
	return fault("RecordNotFound", "Record was not found: %s %d", table, id)
}
