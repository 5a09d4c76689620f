// Package httpapi is connectord's HTTP transport: routes, middleware
// (request ids, request logs, body limits, authentication), JSON decoding and the
// one function that writes every error response.
//
// It must not hold business rules: handlers decode, call a service, and encode.
// HTTP types stop here.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/connectord/connectord/internal/apperr"
)

// MaxBodyBytes is the largest request body connectord reads.
const MaxBodyBytes = 1 << 20

// statusOf maps every error code to its one status.
var statusOf = map[apperr.Code]int{
	apperr.Invalid:          http.StatusBadRequest,
	apperr.Unauthorized:     http.StatusUnauthorized,
	apperr.Forbidden:        http.StatusForbidden,
	apperr.NotFound:         http.StatusNotFound,
	apperr.Conflict:         http.StatusConflict,
	apperr.TooLarge:         http.StatusRequestEntityTooLarge,
	apperr.Unsupported:      http.StatusUnsupportedMediaType,
	apperr.MethodNotAllowed: http.StatusMethodNotAllowed,
	apperr.ProviderRefused:  http.StatusBadRequest,
	apperr.ProviderDown:     http.StatusBadGateway,
	apperr.ProviderTimeout:  http.StatusGatewayTimeout,
	apperr.Unavailable:      http.StatusServiceUnavailable,
	apperr.Internal:         http.StatusInternalServerError,

	apperr.ProviderThrottled: http.StatusTooManyRequests,
	apperr.Canceled:          StatusClientClosedRequest,
	apperr.RequestTimeout:    http.StatusRequestTimeout,
	apperr.Gone:              http.StatusGone,
	apperr.Throttled:         http.StatusTooManyRequests,
	apperr.NotImplemented:    http.StatusNotImplemented,
}

// authChallenge is the WWW-Authenticate of every 401: the Authorization
// schemes connectord takes (Open Connectors' header, "User …, Organization …"
// or "User …, Element …").
const authChallenge = `User realm="connectord", Organization realm="connectord", Element realm="connectord"`

// StatusClientClosedRequest is what the request log shows for a caller that
// hung up before its answer was ready (nginx's 499); nothing is sent.
const StatusClientClosedRequest = 499

// errorBody is the Open Connectors error shape.
type errorBody struct {
	RequestID       string `json:"requestId"`
	TraceID         string `json:"traceId,omitempty"` // the W3C trace the request belongs to
	Message         string `json:"message"`
	ProviderMessage string `json:"providerMessage,omitempty"`
}

// writeError writes err as the caller should see it. Errors that are not
// *apperr.Error are internal: logged in full, shown as a generic message.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	id := RequestID(r.Context())
	if apperr.CodeOf(err) == apperr.Canceled || errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The caller hung up, which cancelled the work: an outcome, not a
		// failure, and nobody reads an answer.
		if i := infoOf(r.Context()); i != nil {
			i.clientClosed = true
		}
		logger(r).Debug().Err(err).Msg("client closed request")
		return
	}
	e, ok := apperr.As(err)
	if !ok || e.Code == apperr.Internal {
		logger(r).Error().Err(err).Msg("internal error")
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error; quote request id " + id + " when reporting it"}
	} else if e.Err != nil {
		logger(r).Warn().Err(e.Err).Str("code", string(e.Code)).Msg(e.Message)
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", authChallenge)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	writeJSON(w, status, errorBody{RequestID: id, TraceID: TraceID(r.Context()), Message: e.Message, ProviderMessage: e.ProviderMessage})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decodeJSON reads a JSON object body into v strictly: the body must be JSON,
// at most MaxBodyBytes, well formed, and name only fields v has. Every unknown
// field is named in the one error.
func decodeJSON(r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	data, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeStrict(data, v)
}

func decodeStrict(data []byte, v any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return apperr.Errorf(apperr.Invalid, "request body is empty: send a JSON object")
	}
	if err := checkText(data); err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(data, se.Offset)
			return apperr.Errorf(apperr.Invalid, "malformed JSON at line %d, column %d (byte %d): %s", line, col, se.Offset, se.Error())
		}
		return apperr.Errorf(apperr.Invalid, "malformed JSON: %s", err.Error())
	}
	if _, ok := generic.(map[string]any); !ok {
		return apperr.Errorf(apperr.Invalid, "request body must be a JSON object")
	}
	if unknown := unknownFields(generic, reflect.TypeOf(v), ""); len(unknown) > 0 {
		sort.Strings(unknown)
		return apperr.Errorf(apperr.Invalid, "unknown fields in request body: %s", strings.Join(unknown, ", "))
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return apperr.Errorf(apperr.Invalid, "field %s must be %s, not %s", te.Field, jsonKind(te.Type), te.Value)
		}
		return apperr.Errorf(apperr.Invalid, "request body does not fit: %s", err.Error())
	}
	return nil
}

// checkText refuses what encoding/json would let through silently: bytes
// that are not UTF-8 (it would turn them into U+FFFD), a member named twice in
// one object (it would keep the last), and NUL characters, which PostgreSQL
// cannot store in text and no field of connectord's API needs. It walks the
// body's tokens once; a syntax error is left for json.Unmarshal to describe.
func checkText(data []byte) error {
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		line, col := position(data, int64(i)+1)
		return apperr.Errorf(apperr.Invalid, "request body is not valid UTF-8 at line %d, column %d (byte %d): send text encoded as UTF-8", line, col, i)
	}
	type frame struct {
		object  bool
		wantKey bool   // an object's next token is a member name or its end
		path    string // the container's own path
		name    string // an object's current member
		index   int    // an array's current element
		names   map[string]struct{}
	}
	var stack []*frame
	done := func() { // a value is complete: its container goes on
		if len(stack) > 0 {
			if f := stack[len(stack)-1]; f.object {
				f.wantKey = true
			} else {
				f.index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error json.Unmarshal reports with its position
		}
		var top *frame
		path := ""
		if len(stack) > 0 {
			top = stack[len(stack)-1]
			if top.object {
				path = join(top.path, top.name)
			} else {
				path = join(top.path, strconv.Itoa(top.index))
			}
		}
		if top != nil && top.object && top.wantKey {
			name, ok := tok.(string)
			if !ok { // the object's '}'
				stack = stack[:len(stack)-1]
				done()
				continue
			}
			if strings.IndexByte(name, 0) >= 0 {
				return apperr.Errorf(apperr.Invalid, "a member name in %s contains a NUL character (\\u0000)", quoteField(top.path))
			}
			if _, dup := top.names[name]; dup {
				return apperr.Errorf(apperr.Invalid, "field %s is given twice; give each field once", quoteField(join(top.path, name)))
			}
			top.names[name] = struct{}{}
			top.name, top.wantKey = name, false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				stack = append(stack, &frame{object: t == '{', wantKey: t == '{', path: path, names: map[string]struct{}{}})
				continue
			}
			stack = stack[:len(stack)-1] // an array's ']'
		case string:
			if strings.IndexByte(t, 0) >= 0 {
				return apperr.Errorf(apperr.Invalid, "field %s contains a NUL character (\\u0000), which connectord cannot store", quoteField(path))
			}
		}
		done()
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// quoteField shows a field path in an error, cut short: it is the caller's
// text and may be long.
func quoteField(path string) string {
	if path == "" {
		return "(the body)"
	}
	if len(path) > 100 {
		path = path[:100] + "…"
	}
	return strconv.Quote(path)
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset-1 && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// unknownFields lists the object keys in data that type t has no field for.
// Maps are free-form and not checked.
func unknownFields(data any, t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := data.(map[string]any)
		if !ok {
			return nil
		}
		var out []string
		for key, val := range obj {
			f, ok := fieldFor(t, key)
			if !ok {
				out = append(out, prefix+key)
				continue
			}
			out = append(out, unknownFields(val, f.Type, prefix+key+".")...)
		}
		return out
	case reflect.Slice, reflect.Array:
		arr, ok := data.([]any)
		if !ok {
			return nil
		}
		var out []string
		for i, e := range arr {
			out = append(out, unknownFields(e, t.Elem(), fmt.Sprintf("%s%d.", prefix, i))...)
		}
		return out
	}
	return nil
}

// fieldFor finds the struct field encoding/json would fill for key.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key { // encoding/json would also take "NAME" for "name": we do not
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// StatusOf is the HTTP status connectord answers err with, for other HTTP
// surfaces (the console) that show an error their own way.
func StatusOf(err error) int {
	if s, ok := statusOf[apperr.CodeOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}
