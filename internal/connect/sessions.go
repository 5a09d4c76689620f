package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/oauthflow"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/tenants"
)

// Request is the body of POST /connect/sessions. For a new instance it names
// the element, the instance's name, tags and non-OAuth configuration (events
// and so on, checked as POST /instances checks them); with InstanceID it
// reconnects that instance instead, which keeps its own name, tags and
// configuration.
type Request struct {
	Element          *instances.ElementRef      `json:"element"`
	InstanceID       int64                      `json:"instanceId"`
	Name             string                     `json:"name"`
	Tags             []string                   `json:"tags"`
	Configuration    map[string]json.RawMessage `json:"configuration"`
	RedirectURL      string                     `json:"redirectUrl"`
	ExpiresInSeconds *int64                     `json:"expiresInSeconds"`
}

// Created is the answer to POST /connect/sessions. Token is the session's
// secret; ConnectURL carries it, for the end user's browser.
type Created struct {
	ID          int64     `json:"id"`
	Token       string    `json:"token"`
	ConnectURL  string    `json:"connectUrl"`
	ExpiresDate time.Time `json:"expiresDate"`
}

// View is a session as GET /connect/sessions/{id} shows it.
type View struct {
	ID            int64    `json:"id"`
	Status        string   `json:"status"`
	Error         string   `json:"error,omitempty"`
	ErrorMessage  string   `json:"errorMessage,omitempty"`
	Element       string   `json:"element"`
	Name          string   `json:"name,omitempty"`
	Tags          []string `json:"tags"`
	Reconnect     bool     `json:"reconnect"`
	InstanceID    *int64   `json:"instanceId,omitempty"`
	InstanceToken string   `json:"instanceToken,omitempty"`
	// TokenRead says the created instance's token was already shown, so a
	// read without it is not a lost token but an earlier read.
	TokenRead     bool       `json:"instanceTokenRead,omitempty"`
	RedirectURL   string     `json:"redirectUrl"`
	ExpiresDate   time.Time  `json:"expiresDate"`
	CreatedDate   time.Time  `json:"createdDate"`
	CompletedDate *time.Time `json:"completedDate,omitempty"`
}

// oauthKeys are the configuration entries the flow sets from the
// organization's Keap app; a session may not set them.
var oauthKeys = []string{
	instances.KeyAuthType, instances.KeyClientID, instances.KeyClientSecret, instances.KeyCallbackURL,
	instances.KeyAPIKey, instances.KeyScope, instances.KeyAuthorizeURL, instances.KeyTokenURL,
}

// CreateSession opens a connect session for the organization: it checks the
// request (the instance's configuration as POST /instances checks it) and
// that the organization has a Keap app for the element, and returns the
// session's token and the URL to send the end user to.
func (s *Service) CreateSession(ctx context.Context, p tenants.Principal, req Request) (*Created, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	redirect := strings.TrimSpace(req.RedirectURL)
	switch {
	case redirect == "":
		add("missing required field: redirectUrl (where the end user returns to your application)")
	case !IsRedirectURL(redirect):
		add("redirectUrl %q is not an absolute http or https URL without user information or fragment", truncate(redirect))
	}
	expiry := DefaultExpiry
	if req.ExpiresInSeconds != nil {
		expiry = time.Duration(*req.ExpiresInSeconds) * time.Second
		if expiry < MinExpiry || expiry > MaxExpiry {
			add("expiresInSeconds %d is out of range (%d to %d)", *req.ExpiresInSeconds, int(MinExpiry/time.Second), int(MaxExpiry/time.Second))
		}
	}
	for _, k := range oauthKeys {
		if _, ok := req.Configuration[k]; ok {
			add("configuration %s is set by the connect flow from the organization's Keap app; leave it out", k)
		}
	}

	sess := &Session{
		OrganizationID: p.OrganizationID, CreatedBy: p.UserID, RedirectURL: redirect,
		Configuration: req.Configuration, Status: StatusPending, Tags: []string{},
	}
	if req.InstanceID != 0 {
		if req.Name != "" || req.Tags != nil || req.Configuration != nil {
			add("name, tags and configuration are not taken with instanceId: a reconnected instance keeps its own")
		}
		if len(problems) > 0 {
			return nil, apperr.Errorf(apperr.Invalid, "%s", strings.Join(problems, "; "))
		}
		inst, err := s.opts.Instances.Get(ctx, p, req.InstanceID)
		if err != nil {
			return nil, err
		}
		if req.Element != nil && (req.Element.Key != "" && req.Element.Key != inst.Element.Key || req.Element.ID != 0 && req.Element.ID != inst.Element.ID) {
			return nil, apperr.Errorf(apperr.Invalid, "instance %d is an instance of %s, not of the element named in the body", inst.ID, inst.Element.Key)
		}
		if inst.AuthenticationType != instances.AuthOAuth2 {
			return nil, apperr.Errorf(apperr.Invalid, "instance %d authenticates with an API key; only OAuth instances are reconnected through Keap's authorization", inst.ID)
		}
		sess.ElementKey, sess.InstanceID, sess.Reconnect, sess.Name, sess.Tags = inst.Element.Key, inst.ID, true, inst.Name, inst.Tags
	} else {
		if len(problems) > 0 {
			return nil, apperr.Errorf(apperr.Invalid, "%s", strings.Join(problems, "; "))
		}
		// The instance is checked as POST /instances will check it after the
		// callback, with the app's credentials as the flow will set them.
		probe := s.createRequest(req.Element, req.Name, req.Tags, req.Configuration, App{ClientID: "probe", ClientSecret: "probe"}, "")
		if err := s.opts.Instances.Check(ctx, p, probe); err != nil {
			return nil, err
		}
		el, _ := s.opts.Catalog.Lookup(elementRef(req.Element))
		sess.ElementKey, sess.Name, sess.Tags = el.Key, strings.TrimSpace(req.Name), req.Tags
		if sess.Tags == nil {
			sess.Tags = []string{}
		}
	}
	if _, err := s.app(ctx, p.OrganizationID, sess.ElementKey); err != nil {
		if e, ok := apperr.As(err); ok && e.Code == apperr.NotFound {
			return nil, apperr.Errorf(apperr.Conflict, "%s", e.Message)
		}
		return nil, err
	}
	token := secrets.NewToken()
	sess.TokenHash = secrets.Hash(token)
	sess.ExpiresAt = s.opts.Now().Add(expiry).UTC().Truncate(time.Microsecond)
	if err := s.opts.Store.CreateSession(ctx, sess); err != nil {
		return nil, fmt.Errorf("create connect session: %w", err)
	}
	return &Created{ID: sess.ID, Token: token, ConnectURL: s.ConnectURL(token), ExpiresDate: sess.ExpiresAt}, nil
}

// ConnectURL is the page a session's end user opens.
func (s *Service) ConnectURL(token string) string {
	return s.opts.PublicURL + PagePath + "?token=" + url.QueryEscape(token)
}

func elementRef(ref *instances.ElementRef) string {
	if ref == nil {
		return ""
	}
	if ref.Key != "" {
		return ref.Key
	}
	return fmt.Sprint(ref.ID)
}

// createRequest is the POST /instances body the flow creates an instance with.
func (s *Service) createRequest(el *instances.ElementRef, name string, tags []string, cfg map[string]json.RawMessage, app App, code string) instances.CreateRequest {
	full := make(map[string]json.RawMessage, len(cfg)+3)
	for k, v := range cfg {
		full[k] = v
	}
	str := func(v string) json.RawMessage { b, _ := json.Marshal(v); return b }
	full[instances.KeyClientID] = str(app.ClientID)
	full[instances.KeyClientSecret] = str(app.ClientSecret)
	full[instances.KeyCallbackURL] = str(s.CallbackURL())
	req := instances.CreateRequest{Element: el, Configuration: full, Tags: tags, Name: name}
	if code != "" {
		req.ProviderData = &instances.ProviderData{Code: code}
	}
	return req
}

// Get returns one of the organization's sessions. The first read after the
// session created an instance carries the instance's token; later reads do not.
func (s *Service) Get(ctx context.Context, p tenants.Principal, id int64) (*View, error) {
	sess, err := s.opts.Store.ReadSession(ctx, p.OrganizationID, id)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, apperr.Errorf(apperr.NotFound, "no connect session %d in this organization", id)
		}
		return nil, err
	}
	v := &View{
		ID: sess.ID, Status: sess.Status, Error: sess.Error, ErrorMessage: sess.ErrorMessage, Element: sess.ElementKey, Name: sess.Name, Tags: sess.Tags,
		Reconnect: sess.Reconnect, InstanceToken: sess.InstanceToken, TokenRead: sess.TokenRead, RedirectURL: sess.RedirectURL,
		ExpiresDate: sess.ExpiresAt.UTC(), CreatedDate: sess.CreatedAt.UTC(), CompletedDate: sess.CompletedAt,
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if sess.InstanceID != 0 && (sess.Reconnect || sess.Status == StatusSuccess) {
		id := sess.InstanceID
		v.InstanceID = &id
	}
	// A session past its expiry that never finished reads as expired: a
	// pending one was not completed in time; a connecting one lost its
	// server mid-exchange (the exchange is bounded well below any expiry).
	if (sess.Status == StatusPending || sess.Status == StatusConnecting) && s.isExpired(sess) {
		v.Status, v.Error = StatusError, ReasonExpired
	}
	return v, nil
}

// Page is what the connect page shows, and how the handler answers.
type Page struct {
	SessionID        int64
	OrganizationName string
	ElementName      string
	ElementKey       string
	InstanceName     string
	Reconnect        bool
	ExpiresAt        time.Time
	// Browser is the new value of the cookie that binds the session to this
	// browser; the handler sets it.
	Browser string
	// Redirect, when set, is where the browser goes instead: the
	// application's redirect URL with the outcome (an expired session).
	Redirect string
}

// Open serves the connect page of the session whose token is given. It binds
// the session to this browser (a new cookie value each time the page opens,
// so only the browser that opened it last can finish it).
func (s *Service) Open(ctx context.Context, token string) (*Page, error) {
	if token == "" {
		return nil, apperr.Errorf(apperr.Invalid, "this connect link has no token: open the link your application gave you")
	}
	sess, err := s.opts.Store.SessionByToken(ctx, secrets.Hash(token))
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, apperr.Errorf(apperr.NotFound, "this connect link is not valid: ask your application for a new one")
	}
	if err != nil {
		return nil, err
	}
	if sess.Status == StatusError && sess.Error == ReasonExpired {
		return &Page{SessionID: sess.ID, Redirect: s.outcomeURL(sess, ReasonExpired)}, nil
	}
	if sess.Status != StatusPending {
		return nil, apperr.Errorf(apperr.Gone, "this connect link was already used: ask your application for a new one")
	}
	if s.isExpired(sess) {
		if err := s.opts.Store.FinishSession(ctx, sess.ID, Outcome{Status: StatusError, Error: ReasonExpired}); err != nil {
			return nil, err
		}
		return &Page{SessionID: sess.ID, Redirect: s.outcomeURL(sess, ReasonExpired)}, nil
	}
	browser := secrets.NewToken()
	if err := s.opts.Store.BindBrowser(ctx, sess.ID, secrets.Hash(browser)); err != nil {
		return nil, err
	}
	el, _ := s.opts.Catalog.Lookup(sess.ElementKey)
	page := &Page{
		SessionID: sess.ID, OrganizationName: sess.OrganizationName, ElementKey: sess.ElementKey,
		InstanceName: sess.Name, Reconnect: sess.Reconnect, ExpiresAt: sess.ExpiresAt, Browser: browser,
	}
	page.ElementName = sess.ElementKey
	if el != nil {
		page.ElementName = el.Name
	}
	return page, nil
}

// Authorize starts the user's authorization at Keap for a session opened in
// this browser: it issues a single-use state bound to the session and the
// browser, and returns Keap's authorize URL to send the user to (or, for a
// session that expired meanwhile, the application's URL with the outcome).
func (s *Service) Authorize(ctx context.Context, sessionID int64, browser string) (string, error) {
	if browser == "" {
		return "", errBrowser
	}
	state := secrets.NewToken()
	sess, err := s.opts.Store.StartAuthorize(ctx, sessionID, secrets.Hash(browser), secrets.Hash(state))
	switch apperr.CodeOf(err) {
	case apperr.NotFound:
		return "", errBrowser
	case apperr.Conflict:
		return "", apperr.Errorf(apperr.Gone, "this connect session is finished: ask your application for a new one")
	}
	if err != nil {
		return "", err
	}
	if s.isExpired(sess) {
		// Back to the application, which can open a new session.
		if err := s.opts.Store.FinishSession(ctx, sess.ID, Outcome{Status: StatusError, Error: ReasonExpired}); err != nil {
			return "", err
		}
		return s.outcomeURL(sess, ReasonExpired), nil
	}
	app, err := s.app(ctx, sess.OrganizationID, sess.ElementKey)
	if err != nil {
		return "", apperr.Errorf(apperr.Conflict, "the organization removed its Keap app meanwhile: ask your application for a new link")
	}
	el, _ := s.opts.Catalog.Lookup(sess.ElementKey)
	p := &oauthflow.Provider{AuthURL: el.Endpoints.AuthorizationURL}
	return p.AuthorizeURL(app.ClientID, s.CallbackURL(), "full", state), nil
}

// finishTimeout bounds the work after a callback's state is spent: the code
// exchange and the instance's creation (each Keap call has its own, shorter,
// time-out).
const finishTimeout = 2 * time.Minute

// Callback is what Keap sent back to /connect/callback, and the browser's
// bindings (cookie values by session id).
type Callback struct {
	State   string
	Code    string
	Error   string // Keap's error, e.g. access_denied
	Browser func(sessionID int64) string
}

// Finish completes a session with what Keap sent back: it checks the state
// (single use, bound to the session and to this browser), exchanges the code
// and creates or reconnects the instance, and returns the application's
// redirect URL with the outcome. An error means nothing was done and the
// browser is not redirected: the state is unknown, used, or not this browser's.
func (s *Service) Finish(ctx context.Context, cb Callback) (string, error) {
	if cb.State == "" {
		return "", apperr.Errorf(apperr.Invalid, "this callback has no state: start again from your application")
	}
	sess, err := s.opts.Store.ConsumeState(ctx, secrets.Hash(cb.State), func(sess *Session) error {
		if !secrets.Equal(sess.BrowserHash, secrets.Hash(cb.Browser(sess.ID))) || cb.Browser(sess.ID) == "" {
			return errBrowser
		}
		return nil
	})
	if apperr.CodeOf(err) == apperr.NotFound {
		return "", apperr.Errorf(apperr.Invalid, "this callback's state is unknown or was already used; nothing was created: start again from your application")
	}
	if err != nil {
		return "", err
	}
	// The state is spent: finish the session even if the browser hangs up
	// now, or it would stay connecting with the user's code unused.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	// fail ends the session in error. cause, when there is one, is kept as
	// its message for the application if it is meant for callers, and
	// logged if it is not.
	fail := func(reason string, cause error) (string, error) {
		o := Outcome{Status: StatusError, Error: reason}
		if e, ok := apperr.As(cause); ok && e.Code != apperr.Internal {
			o.Message = e.Message
			if e.ProviderMessage != "" {
				o.Message += ": " + e.ProviderMessage
			}
		} else if cause != nil {
			s.opts.Log.Error().Err(cause).Int64("connect_session_id", sess.ID).Msg("connect session failed")
		}
		if err := s.opts.Store.FinishSession(ctx, sess.ID, o); err != nil {
			return "", err
		}
		return s.outcomeURL(sess, reason), nil
	}
	switch {
	case s.isExpired(sess):
		return fail(ReasonExpired, nil)
	case cb.Error == "access_denied":
		return fail(ReasonAccessDenied, nil)
	case cb.Error != "" || cb.Code == "":
		return fail(ReasonRefused, apperr.Errorf(apperr.ProviderRefused, "Keap answered the authorization with error %q and no code", truncate(cb.Error)))
	}
	app, err := s.app(ctx, sess.OrganizationID, sess.ElementKey)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return fail(ReasonAppMissing, err)
		}
		return fail(ReasonInternal, err)
	}
	p := tenants.Principal{OrganizationID: sess.OrganizationID, UserID: sess.CreatedBy}
	var out Outcome
	if sess.Reconnect {
		_, err = s.opts.Instances.Reconnect(ctx, p, sess.InstanceID, instances.OAuthApp{ClientID: app.ClientID, ClientSecret: app.ClientSecret, CallbackURL: s.CallbackURL()}, cb.Code)
		out = Outcome{Status: StatusSuccess, InstanceID: sess.InstanceID, Notify: true}
	} else {
		var v *instances.View
		v, err = s.opts.Instances.Create(ctx, p, "", s.createRequest(&instances.ElementRef{Key: sess.ElementKey}, sess.Name, sess.Tags, sess.Configuration, app, cb.Code))
		if err == nil {
			out = Outcome{Status: StatusSuccess, InstanceID: v.ID, InstanceToken: v.Token, Notify: true}
		}
	}
	if err != nil {
		return fail(reasonOf(err, sess.Reconnect), err)
	}
	if err := s.opts.Store.FinishSession(ctx, sess.ID, out); err != nil {
		return "", err
	}
	return s.outcomeURL(sess, ""), nil
}

// reasonOf names, for the application, why creating or reconnecting failed.
func reasonOf(err error, reconnect bool) string {
	switch apperr.CodeOf(err) {
	case apperr.ProviderRefused:
		return ReasonRefused
	case apperr.ProviderDown, apperr.ProviderTimeout, apperr.ProviderThrottled:
		return ReasonUnavailable
	case apperr.NotFound:
		if reconnect {
			return ReasonInstanceGone
		}
		return ReasonRejected
	case apperr.Invalid, apperr.Conflict:
		return ReasonRejected
	}
	return ReasonInternal
}

// outcomeURL is the session's own redirect URL with connectSessionId and the
// status added to its query: the only place the flow ever redirects to.
func (s *Service) outcomeURL(sess *Session, reason string) string {
	u, err := url.Parse(sess.RedirectURL)
	if err != nil {
		// Checked at creation; a stored URL that no longer parses is a bug.
		return ""
	}
	q := u.Query()
	q.Set("connectSessionId", fmt.Sprint(sess.ID))
	if reason == "" {
		q.Set("status", StatusSuccess)
		q.Del("error")
	} else {
		q.Set("status", StatusError)
		q.Set("error", reason)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
