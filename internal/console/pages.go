package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/connect"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/httpapi"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
)

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // the menu entry to mark current
	Audit   bool   // the audit log page exists
	Session *signedIn
	CSRF    string
	Notice  string // what the last action did
	Error   string // why it failed
	Data    any
}

var funcs = template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"at":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"join":  strings.Join,
	"lower": strings.ToLower,
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
}

// render writes a page with the session's CSRF token in it.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s := sessionOf(r.Context()); s != nil {
		p.Session, p.CSRF = s, tenants.CSRFToken(s.token)
	}
	p.Audit = c.opt.Audit != nil
	if p.Notice == "" {
		p.Notice = notices[r.URL.Query().Get("done")]
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.opt.Log.Error().Err(err).Str("request_id", httpapi.RequestID(r.Context())).Str("page", name).Msg("console: render")
		http.Error(w, "internal error; quote request id "+httpapi.RequestID(r.Context()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with a page that says what went wrong.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Error: msg})
}

// message is what a person is shown for a service's error: its message, or
// for an internal error a generic one, the details logged with the request id.
func (c *Console) message(r *http.Request, err error) (int, string) {
	e, ok := apperr.As(err)
	if !ok || e.Code == apperr.Internal {
		id := httpapi.RequestID(r.Context())
		c.opt.Log.Error().Err(err).Str("request_id", id).Str("path", r.URL.Path).Msg("console: internal error")
		return http.StatusInternalServerError, "Something went wrong inside connectord; quote request id " + id + " when reporting it."
	}
	msg := e.Message
	if e.ProviderMessage != "" {
		msg += " (Keap said: " + e.ProviderMessage + ")"
	}
	return httpapi.StatusOf(err), msg
}

func (c *Console) serviceError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := c.message(r, err)
	c.fail(w, r, status, msg)
}

// notices are the results shown after a redirect, by key, so no text of the
// caller's ever travels in a URL.
var notices = map[string]string{
	"created":     "Instance created.",
	"connected":   "Instance connected.",
	"saved":       "Configuration saved.",
	"refreshed":   "Tokens renewed.",
	"disabled":    "Instance disabled: calls with its token are refused until you enable it.",
	"enabled":     "Instance enabled.",
	"deleted":     "Instance deleted.",
	"redelivered": "Notification queued for redelivery.",
	"appsaved":    "Keap app saved.",
	"redelivery":  "Failed notifications queued for redelivery.",
	"signedout":   "Signed out.",
}

func (c *Console) principal(r *http.Request) tenants.Principal {
	return sessionOf(r.Context()).Principal
}

func seeOther(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, Prefix+path, http.StatusSeeOther)
}

// ---- sign in and out ----

type signInData struct {
	Expired bool
	TTL     string
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: signInData{Expired: r.URL.Query().Get("expired") == "1", TTL: shortDuration(c.opt.SessionTTL)}})
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	token, sess, err := c.opt.Sessions.SignIn(r.Context(), r.PostFormValue("userSecret"), r.PostFormValue("organizationSecret"))
	if apperr.CodeOf(err) == apperr.Unauthorized || err == nil {
		c.recordSignIn(r, sess.Principal, err == nil)
	}
	if err != nil {
		status, msg := c.message(r, err)
		c.render(w, r, status, "signin", page{Title: "Sign in", Error: msg, Data: signInData{TTL: shortDuration(c.opt.SessionTTL)}})
		return
	}
	// Signing in again ends the session the browser had, if any.
	if old, err := r.Cookie(cookieName); err == nil && old.Value != "" {
		_ = c.opt.Sessions.SignOut(r.Context(), old.Value)
	}
	c.setCookie(w, token, sess)
	seeOther(w, r, "/instances")
}

// recordSignIn writes the audit entry of a sign-in, in a transaction of its
// own: it names the user when it succeeded, never when it failed, and never
// a secret tried.
func (c *Console) recordSignIn(r *http.Request, p tenants.Principal, ok bool) {
	if c.opt.Audit == nil {
		return
	}
	e := audit.SignIn(audit.Actor{
		OrganizationID: p.OrganizationID, UserID: p.UserID,
		RequestID: httpapi.RequestID(r.Context()), TraceID: httpapi.TraceID(r.Context()), SourceIP: httpapi.SourceIP(r),
	}, ok)
	if err := c.opt.Audit.RecordAudit(r.Context(), e); err != nil {
		c.opt.Log.Error().Err(err).Str("request_id", httpapi.RequestID(r.Context())).Msg("console: could not record a sign-in in the audit log")
	}
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if err := c.opt.Sessions.SignOut(r.Context(), sessionOf(r.Context()).token); err != nil {
		c.serviceError(w, r, err)
		return
	}
	c.clearCookie(w)
	seeOther(w, r, "/signin?done=signedout")
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) { seeOther(w, r, "/instances") }

// ---- elements ----

type elementsData struct {
	Elements   []elementCard
	CanConnect bool
	Form       createForm // what was typed, when a form failed
}

// elementCard is an element with the organization's Keap app for it.
type elementCard struct {
	*elements.Element
	App         *connect.AppView // nil: none stored yet
	AppError    string
	RedirectURI string // to register at Keap
}

type createForm struct {
	Element, Kind, Name, Tags, AppName, ClientID string
}

func (c *Console) elementCards(r *http.Request) []elementCard {
	var out []elementCard
	for _, el := range c.opt.Catalog.All() {
		card := elementCard{Element: el, RedirectURI: c.opt.PublicURL + connect.CallbackPath}
		if c.opt.Connect != nil && el.SupportsAuth(instances.AuthOAuth2) {
			app, err := c.opt.Connect.GetApp(r.Context(), c.principal(r), el.Key)
			switch {
			case err == nil:
				card.App, card.RedirectURI = app, app.RedirectURI
			case apperr.CodeOf(err) != apperr.NotFound:
				_, card.AppError = c.message(r, err)
			}
		}
		out = append(out, card)
	}
	return out
}

func (c *Console) elementsPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "elements", page{Title: "Elements", Nav: "elements", Data: elementsData{Elements: c.elementCards(r), CanConnect: c.opt.Connect != nil}})
}

// splitTags reads a comma-separated tag list.
func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// connectedURL is where every hosted flow the console starts comes back to.
func (c *Console) connectedURL() string { return c.opt.PublicURL + Prefix + "/connected" }

// connect starts the hosted flow for a new instance, as POST /connect/sessions
// does, and sends the browser to its connect page.
func (c *Console) connect(w http.ResponseWriter, r *http.Request) {
	if c.opt.Connect == nil {
		c.fail(w, r, http.StatusNotImplemented, "Connecting through the hosted flow is not available in this connectord.")
		return
	}
	key := chi.URLParam(r, "key")
	created, err := c.opt.Connect.CreateSession(r.Context(), c.principal(r), connect.Request{
		Element: &instances.ElementRef{Key: key}, Name: r.PostFormValue("name"), Tags: splitTags(r.PostFormValue("tags")),
		RedirectURL: c.connectedURL(),
	})
	if err != nil {
		c.elementsFormError(w, r, err, createForm{Element: key, Kind: "oauth2", Name: r.PostFormValue("name"), Tags: r.PostFormValue("tags")})
		return
	}
	http.Redirect(w, r, created.ConnectURL, http.StatusSeeOther)
}

// saveApp stores the organization's Keap app for an element, as PUT
// /organizations/elements/{keyOrId}/oauth/app does.
func (c *Console) saveApp(w http.ResponseWriter, r *http.Request) {
	if c.opt.Connect == nil {
		c.fail(w, r, http.StatusNotImplemented, "Keap apps are not available in this connectord.")
		return
	}
	key := chi.URLParam(r, "key")
	_, err := c.opt.Connect.PutApp(r.Context(), c.principal(r), key, connect.AppRequest{APIKey: r.PostFormValue("clientId"), APISecret: r.PostFormValue("clientSecret")})
	if err != nil {
		c.elementsFormError(w, r, err, createForm{Element: key, Kind: "app", ClientID: r.PostFormValue("clientId")})
		return
	}
	seeOther(w, r, "/elements?done=appsaved#el-"+key)
}

// connected is where the hosted flow sends the browser back, with the
// session's id and outcome. On success the console reads the session, as an
// application would, to open the new instance; the instance token in that
// answer is dropped, never shown.
func (c *Console) connected(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("status") == "success" && c.opt.Connect != nil {
		if id, err := strconv.ParseInt(q.Get("connectSessionId"), 10, 64); err == nil {
			if v, err := c.opt.Connect.Get(r.Context(), c.principal(r), id); err == nil && v.InstanceID != nil {
				seeOther(w, r, fmt.Sprintf("/instances/%d?done=connected", *v.InstanceID))
				return
			}
		}
		seeOther(w, r, "/instances?done=connected")
		return
	}
	reason := q.Get("error")
	if reason == "" {
		reason = "the connect flow did not finish"
	}
	c.fail(w, r, http.StatusOK, "Connecting failed: "+reason+". Nothing was created; try again from Elements.")
}

func (c *Console) elementsFormError(w http.ResponseWriter, r *http.Request, err error, f createForm) {
	status, msg := c.message(r, err)
	c.render(w, r, status, "elements", page{Title: "Elements", Nav: "elements", Error: msg,
		Data: elementsData{Elements: c.elementCards(r), CanConnect: c.opt.Connect != nil, Form: f}})
}

// createAPIKeyInstance creates an instance from a service account key or a
// legacy key and application name, through the same service call as POST
// /instances, so the checks and messages are the API's.
func (c *Console) createAPIKeyInstance(w http.ResponseWriter, r *http.Request) {
	key := chi.URLParam(r, "key")
	f := createForm{Element: key, Kind: r.PostFormValue("kind"), Name: r.PostFormValue("name"), Tags: r.PostFormValue("tags"), AppName: r.PostFormValue("appName")}
	cfg := map[string]json.RawMessage{instances.KeyAuthType: jsonString(instances.AuthAPIKey), instances.KeyAPIKey: jsonString(r.PostFormValue("apiKey"))}
	if f.Kind == "legacy" {
		cfg[instances.KeyAppName] = jsonString(f.AppName)
	}
	v, err := c.opt.Instances.Create(r.Context(), c.principal(r), key, instances.CreateRequest{
		Configuration: cfg, Tags: splitTags(f.Tags), Name: f.Name,
	})
	if err != nil {
		c.elementsFormError(w, r, err, f)
		return
	}
	// The view carries the instance token, shown once by the API; the
	// console never shows it.
	seeOther(w, r, "/instances/"+strconv.FormatInt(v.ID, 10)+"?done=created")
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// ---- instances ----

type instanceRow struct {
	*instances.View
	EventMode string
}

type instancesData struct {
	Tag       string
	Instances []instanceRow
}

func (c *Console) instancesPage(w http.ResponseWriter, r *http.Request) {
	tag := strings.TrimSpace(r.URL.Query().Get("tag"))
	list, err := c.opt.Instances.List(r.Context(), c.principal(r), splitTags(tag))
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	rows := make([]instanceRow, 0, len(list))
	for _, v := range list {
		rows = append(rows, instanceRow{View: v, EventMode: eventMode(v)})
	}
	c.render(w, r, http.StatusOK, "instances", page{Title: "Instances", Nav: "instances", Data: instancesData{Tag: tag, Instances: rows}})
}

func eventMode(v *instances.View) string {
	if !v.EventsEnabled {
		return "off"
	}
	if m := v.Configuration[instances.KeyEventVendorType]; m != nil && *m != "" {
		return *m
	}
	return "on"
}

func (c *Console) instanceID(r *http.Request) (int64, error) {
	s := chi.URLParam(r, "id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.Errorf(apperr.Invalid, "instance id %q is not a positive whole number", s)
	}
	return id, nil
}

// configRow is a configuration entry with the choices its form field offers
// (enum and boolean entries are drop-downs).
type configRow struct {
	instances.ConfigEntry
	Choices []string
}

type instanceData struct {
	Instance   *instances.View
	EventMode  string
	Config     []configRow
	Events     []events.Notification
	Older      int64 // the cursor of older notifications; 0 when these are the oldest
	Paged      bool  // this page is not the newest
	AnyFailed  bool  // some notification of the instance failed
	Failed     int
	Hooks      events.HookState
	HooksErr   string
	Cursors    []events.PollStatus
	CanConnect bool
	Values     map[string]string // what was typed, when saving failed
}

// loadInstance reads everything the instance page shows.
func (c *Console) loadInstance(r *http.Request, id int64) (*instanceData, error) {
	ctx, p := r.Context(), c.principal(r)
	v, err := c.opt.Instances.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	cfg, err := c.opt.Instances.Configuration(ctx, p, id)
	if err != nil {
		return nil, err
	}
	d := &instanceData{Instance: v, EventMode: eventMode(v), CanConnect: c.opt.Connect != nil}
	el, _ := c.opt.Catalog.Lookup(v.Element.Key)
	for _, e := range cfg {
		row := configRow{ConfigEntry: e}
		if f, ok := el.Field(e.Key); ok && !e.ReadOnly && !e.Secret {
			switch f.Type {
			case "enum":
				row.Choices = append([]string{""}, f.Values...)
			case "boolean":
				row.Choices = []string{"true", "false"}
			}
		}
		d.Config = append(d.Config, row)
	}
	f := events.Filter{PageSize: 50}
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, apperr.Errorf(apperr.Invalid, "before %q is not a notification cursor; follow the Older notifications link", v)
		}
		f.Before = events.NotificationID(n)
		d.Paged = true
	}
	var next events.NotificationID
	if d.Events, next, err = c.opt.Events.Notifications(ctx, p.OrganizationID, id, f); err != nil {
		return nil, err
	}
	d.Older = int64(next)
	// Whether any notification failed, on this page or an older one.
	failed, _, err := c.opt.Events.Notifications(ctx, p.OrganizationID, id, events.Filter{Status: events.StatusFailed, PageSize: 1})
	if err != nil {
		return nil, err
	}
	d.AnyFailed = len(failed) > 0
	for _, n := range d.Events {
		if n.Status == events.StatusFailed {
			d.Failed++
		}
	}
	// Hooks are Keap's side; when they cannot be read the page still shows the rest.
	if d.Hooks, err = c.opt.Hooks.State(ctx, p.OrganizationID, id); err != nil {
		_, d.HooksErr = c.message(r, err)
	}
	if d.Cursors, err = c.opt.Events.PollStatuses(ctx, p.OrganizationID, id); err != nil {
		return nil, err
	}
	return d, nil
}

func (c *Console) instancePage(w http.ResponseWriter, r *http.Request) {
	id, err := c.instanceID(r)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	d, err := c.loadInstance(r, id)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "instance", page{Title: d.Instance.Name, Nav: "instances", Data: d})
}

// editConfiguration saves the entries that changed, through the same update
// as PATCH /instances/{id}. A secret left empty keeps its value.
func (c *Console) editConfiguration(w http.ResponseWriter, r *http.Request) {
	id, err := c.instanceID(r)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	cur, err := c.opt.Instances.Configuration(r.Context(), c.principal(r), id)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	req := instances.UpdateRequest{Configuration: map[string]json.RawMessage{}}
	typed := map[string]string{}
	for _, e := range cur {
		if e.ReadOnly || e.Key == instances.KeyAuthType {
			continue
		}
		vals, sent := r.PostForm["cfg."+e.Key]
		if !sent {
			continue
		}
		v := strings.TrimSpace(vals[0])
		switch {
		case e.Secret && v == "":
			continue // unchanged
		case e.Secret:
			req.Configuration[e.Key] = jsonString(v)
		default:
			typed[e.Key] = v
			if v == strings.TrimSpace(deref(e.PropertyValue)) {
				continue
			}
			if v == "" {
				req.Configuration[e.Key] = json.RawMessage("null")
			} else {
				req.Configuration[e.Key] = jsonString(v)
			}
		}
	}
	if name := strings.TrimSpace(r.PostFormValue("name")); name != "" {
		req.Name = &name
	}
	if _, ok := r.PostForm["tags"]; ok {
		tags := splitTags(r.PostFormValue("tags"))
		if tags == nil {
			tags = []string{}
		}
		req.Tags = &tags
	}
	if _, err := c.opt.Instances.Update(r.Context(), c.principal(r), id, req); err != nil {
		status, msg := c.message(r, err)
		d, lerr := c.loadInstance(r, id)
		if lerr != nil {
			c.serviceError(w, r, lerr)
			return
		}
		d.Values = typed
		c.render(w, r, status, "instance", page{Title: d.Instance.Name, Nav: "instances", Error: msg, Data: d})
		return
	}
	seeOther(w, r, fmt.Sprintf("/instances/%d?done=saved", id))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// instanceAction runs an action on one instance and returns to its page.
func (c *Console) instanceAction(w http.ResponseWriter, r *http.Request, done string, act func(p tenants.Principal, id int64) error) {
	id, err := c.instanceID(r)
	if err == nil {
		err = act(c.principal(r), id)
	}
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	seeOther(w, r, fmt.Sprintf("/instances/%d?done=%s", id, done))
}

func (c *Console) refresh(w http.ResponseWriter, r *http.Request) {
	c.instanceAction(w, r, "refreshed", func(p tenants.Principal, id int64) error {
		_, err := c.opt.Tokens.ForceRefresh(r.Context(), p.OrganizationID, id)
		return err
	})
}

func (c *Console) setDisabled(disabled bool) http.HandlerFunc {
	done := map[bool]string{true: "disabled", false: "enabled"}[disabled]
	return func(w http.ResponseWriter, r *http.Request) {
		c.instanceAction(w, r, done, func(p tenants.Principal, id int64) error {
			_, err := c.opt.Instances.Update(r.Context(), p, id, instances.UpdateRequest{Disabled: &disabled})
			return err
		})
	}
}

// reconnect runs the hosted flow again for an instance: new tokens, same
// instance and token.
func (c *Console) reconnect(w http.ResponseWriter, r *http.Request) {
	id, err := c.instanceID(r)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	if c.opt.Connect == nil {
		c.fail(w, r, http.StatusNotImplemented, "Reconnecting through the hosted flow is not available in this connectord.")
		return
	}
	created, err := c.opt.Connect.CreateSession(r.Context(), c.principal(r), connect.Request{InstanceID: id, RedirectURL: c.connectedURL()})
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	http.Redirect(w, r, created.ConnectURL, http.StatusSeeOther)
}

func (c *Console) deletePage(w http.ResponseWriter, r *http.Request) {
	id, err := c.instanceID(r)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	v, err := c.opt.Instances.Get(r.Context(), c.principal(r), id)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "delete", page{Title: "Delete " + v.Name, Nav: "instances", Data: v})
}

func (c *Console) deleteInstance(w http.ResponseWriter, r *http.Request) {
	id, err := c.instanceID(r)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.fail(w, r, http.StatusBadRequest, "Deleting needs the confirmation box ticked.")
		return
	}
	if err := c.opt.Instances.Delete(r.Context(), c.principal(r), id); err != nil {
		c.serviceError(w, r, err)
		return
	}
	seeOther(w, r, "/instances?done=deleted")
}

func (c *Console) redeliverOne(w http.ResponseWriter, r *http.Request) {
	c.instanceAction(w, r, "redelivered", func(p tenants.Principal, id int64) error {
		return c.opt.Events.Redeliver(r.Context(), p.OrganizationID, id, chi.URLParam(r, "eventId"))
	})
}

func (c *Console) redeliverFailed(w http.ResponseWriter, r *http.Request) {
	c.instanceAction(w, r, "redelivery", func(p tenants.Principal, id int64) error {
		_, err := c.opt.Events.RedeliverFailed(r.Context(), p.OrganizationID, id)
		return err
	})
}

// ---- API docs and try it ----

type docsData struct {
	Instance *instances.View
	Doc      *elements.OpenAPI
	Calls    []elements.DocumentedCall
	Methods  []string
	Try      tryForm
	Result   *tryResult
}

type tryForm struct {
	Method, Path, Query, Body string
}

func (c *Console) docs(r *http.Request, f tryForm) (*docsData, error) {
	id, err := c.instanceID(r)
	if err != nil {
		return nil, err
	}
	v, err := c.opt.Instances.Get(r.Context(), c.principal(r), id)
	if err != nil {
		return nil, err
	}
	el, ok := c.opt.Catalog.Lookup(v.Element.Key)
	if !ok {
		return nil, apperr.Errorf(apperr.NotFound, "element %s is no longer in the catalog", v.Element.Key)
	}
	doc := el.OpenAPI()
	if f.Method == "" {
		f.Method = http.MethodGet
	}
	if f.Path == "" {
		f.Path = "/hubs/" + el.Hub + "/contacts"
		if _, ok := el.Resource("contacts"); !ok && len(el.Resources) > 0 {
			f.Path = "/hubs/" + el.Hub + "/" + el.Resources[0].Name
		}
		if f.Query == "" {
			f.Query = "pageSize=5"
		}
	}
	return &docsData{Instance: v, Doc: doc, Calls: doc.Calls(), Methods: []string{"GET", "POST", "PUT", "PATCH", "DELETE"}, Try: f}, nil
}

func (c *Console) docsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d, err := c.docs(r, tryForm{Method: strings.ToUpper(q.Get("method")), Path: q.Get("path")})
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "docs", page{Title: "API docs: " + d.Instance.Name, Nav: "instances", Data: d})
}

func (c *Console) tryIt(w http.ResponseWriter, r *http.Request) {
	f := tryForm{Method: strings.ToUpper(r.PostFormValue("method")), Path: strings.TrimSpace(r.PostFormValue("path")),
		Query: strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("query")), "?"), Body: r.PostFormValue("body")}
	// A query typed into the path joins the query field.
	if path, query, ok := strings.Cut(f.Path, "?"); ok {
		f.Path, f.Query = path, strings.Trim(query+"&"+f.Query, "&")
	}
	d, err := c.docs(r, f)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	d.Result = c.run(r, d.Instance, f)
	c.render(w, r, http.StatusOK, "docs", page{Title: "API docs: " + d.Instance.Name, Nav: "instances", Data: d})
}

// queryValues parses the try-it query, refusing what cannot be parsed.
func queryValues(s string) (url.Values, error) {
	q, err := url.ParseQuery(s)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "the query %q is not name=value pairs joined with &", s)
	}
	return q, nil
}

// allowedMethod says whether m is one the hubs serve.
func allowedMethod(m string) bool {
	return slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m)
}

// shortDuration writes 12h rather than 12h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
