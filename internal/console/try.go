package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/hubs"
	"github.com/connectord/connectord/internal/instances"
)

// tryResult is one call made from the try-it panel, as the page shows it.
type tryResult struct {
	Request        string // method, path and query
	RequestHeaders [][2]string
	RequestBody    string
	Status         int
	StatusText     string
	Headers        [][2]string
	Body           string
}

// maxShownBody bounds the answer shown on the page.
const maxShownBody = 256 << 10

// run makes a hub call as the instance, server-side, through the hubs
// service the API's /hubs routes use: the instance token never reaches the
// page. Errors are shown as the API would answer them.
func (c *Console) run(r *http.Request, v *instances.View, f tryForm) *tryResult {
	res := &tryResult{Request: f.Method + " " + f.Path, RequestBody: f.Body,
		RequestHeaders: [][2]string{{"Authorization", "User …, Element … (instance " + strconv.FormatInt(v.ID, 10) + "'s token, kept on the server)"}}}
	if f.Query != "" {
		res.Request += "?" + f.Query
	}
	if strings.TrimSpace(f.Body) != "" {
		res.RequestHeaders = append(res.RequestHeaders, [2]string{"Content-Type", "application/json"})
	}
	status, headers, body, err := c.call(r, v, f)
	if err != nil {
		var msg string
		status, msg = c.message(r, err)
		body = marshal(map[string]string{"message": msg})
		headers = [][2]string{{"Content-Type", "application/json"}}
	}
	res.Status, res.StatusText, res.Headers = status, http.StatusText(status), headers
	if len(body) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") == nil {
			body = pretty.Bytes()
		}
		if len(body) > maxShownBody {
			body = append(body[:maxShownBody:maxShownBody], "\n… (cut at 256 KiB)"...)
		}
		res.Body = string(body)
	}
	return res
}

func (c *Console) call(r *http.Request, v *instances.View, f tryForm) (int, [][2]string, []byte, error) {
	if !allowedMethod(f.Method) {
		return 0, nil, nil, apperr.Errorf(apperr.Invalid, "method %q is not one of GET, POST, PUT, PATCH, DELETE", f.Method)
	}
	prefix := "/hubs/" + v.Element.Hub + "/"
	if !strings.HasPrefix(f.Path, prefix) {
		return 0, nil, nil, apperr.Errorf(apperr.Invalid, "the path must start with %s: this instance serves hub %s", prefix, v.Element.Hub)
	}
	if strings.ContainsAny(f.Path, "{}") {
		return 0, nil, nil, apperr.Errorf(apperr.Invalid, "the path %s still has a {placeholder}: put a record's id in its place", f.Path)
	}
	q, err := queryValues(f.Query)
	if err != nil {
		return 0, nil, nil, err
	}
	p := c.principal(r)
	p.InstanceID = v.ID
	rest := strings.Split(strings.TrimSuffix(strings.TrimPrefix(f.Path, prefix), "/"), "/")
	ctx := r.Context()
	if rest[0] == "lookups" && f.Method == http.MethodGet && len(q) == 0 {
		switch {
		case len(rest) == 2 && rest[1] == "countries":
			list, err := c.opt.Hubs.Countries(ctx, p, v.Element.Hub)
			return jsonAnswer(list, err)
		case len(rest) == 4 && rest[1] == "countries" && rest[3] == "provinces":
			list, err := c.opt.Hubs.Provinces(ctx, p, v.Element.Hub, rest[2])
			return jsonAnswer(list, err)
		}
	}
	if len(rest) > 4 {
		return 0, nil, nil, apperr.Errorf(apperr.NotFound, "the hubs serve at most /hubs/{hub}/{resource}/{id}/{sub}/{subId}, not %s", f.Path)
	}
	rest = append(rest, "", "", "")
	var body []byte
	if strings.TrimSpace(f.Body) != "" {
		body = []byte(f.Body)
	}
	out, err := c.opt.Hubs.Call(ctx, p, hubs.Request{
		Hub: v.Element.Hub, Resource: rest[0], ID: rest[1], Sub: rest[2], SubID: rest[3],
		Method: f.Method, Query: q, Body: body,
	})
	if err != nil {
		return 0, nil, nil, err
	}
	var h [][2]string
	if len(out.Body) > 0 {
		h = append(h, [2]string{"Content-Type", "application/json"}, [2]string{"Content-Length", strconv.Itoa(len(out.Body))})
	}
	if out.NextPage != "" {
		h = append(h, [2]string{"Elements-Next-Page-Token", out.NextPage})
	}
	if out.Upsert != "" {
		h = append(h, [2]string{"Elements-Upsert-Result", out.Upsert})
	}
	return out.Status, h, out.Body, nil
}

func jsonAnswer(v any, err error) (int, [][2]string, []byte, error) {
	if err != nil {
		return 0, nil, nil, err
	}
	b := marshal(v)
	return http.StatusOK, [][2]string{{"Content-Type", "application/json"}, {"Content-Length", strconv.Itoa(len(b))}}, b, nil
}

// marshal writes v as the API would: without escaping <, > and &, which the
// page escapes itself.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
