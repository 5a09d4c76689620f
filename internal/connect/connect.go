// Package connect owns the hosted connect flow: the Keap developer app an
// organization stores once per element, and connect sessions, through which an
// application sends its end user to a connectord page, then to Keap's
// authorize page, and gets back a new (or repaired) instance without ever
// holding the client secret or an OAuth callback of its own.
//
// It must not know HTTP or SQL: the handlers decode requests and render pages,
// the Store keeps sessions (hashes of their secrets only) and seals the app
// secret, and instances are created and repaired by the instances service, with
// its validation and secret handling.
package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
)

// CallbackPath is where Keap returns the user, under the public URL; it is the
// redirect URI to register with the Keap developer app.
const CallbackPath = "/connect/callback"

// PagePath is the connect page, under the public URL.
const PagePath = "/connect"

// Session lifetimes: the default, and the bounds a caller may ask for.
const (
	DefaultExpiry = 30 * time.Minute
	MinExpiry     = time.Minute
	MaxExpiry     = 24 * time.Hour
)

// Session statuses.
const (
	StatusPending    = "pending"    // created; the user has not come back from Keap
	StatusConnecting = "connecting" // Keap returned; the code is being exchanged
	StatusSuccess    = "success"
	StatusError      = "error"
)

// Reasons a session ends in error, as the application's redirect carries them
// (error=…) and GET /connect/sessions/{id} shows them.
const (
	ReasonAccessDenied = "access_denied"          // the user pressed Deny at Keap
	ReasonExpired      = "expired"                // the session expired before the user finished
	ReasonRefused      = "provider_refused"       // Keap refused the authorization or the code
	ReasonUnavailable  = "provider_unavailable"   // Keap could not be reached or failed
	ReasonAppMissing   = "app_not_configured"     // the organization deleted its Keap app meanwhile
	ReasonInstanceGone = "instance_not_found"     // the instance to reconnect was deleted meanwhile
	ReasonRejected     = "configuration_rejected" // the instance's configuration no longer passes the checks
	ReasonInternal     = "server_error"
)

// App is an organization's Keap developer app for one element, in clear; only
// the Store sees the secret leave memory, sealed.
type App struct {
	ElementKey   string
	ClientID     string
	ClientSecret string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// AppRequest is the body of PUT /organizations/elements/{keyOrId}/oauth/app,
// with the names GET /elements/{keyOrId}/oauth/url uses.
type AppRequest struct {
	APIKey    string `json:"apiKey"`
	APISecret string `json:"apiSecret"`
}

// AppView is the stored app as the API shows it: the secret masked, and the
// redirect URI to register at Keap.
type AppView struct {
	Element     string    `json:"element"`
	APIKey      string    `json:"apiKey"`
	APISecret   string    `json:"apiSecret"`
	RedirectURI string    `json:"redirectUri"`
	CreatedDate time.Time `json:"createdDate"`
	UpdatedDate time.Time `json:"updatedDate"`
}

// Session is a connect session as stored. Configuration and InstanceToken are
// in clear only in memory; TokenHash, BrowserHash and StateHash are hashes of
// secrets that are never stored.
type Session struct {
	ID             int64
	OrganizationID int64
	CreatedBy      int64
	ElementKey     string
	InstanceID     int64 // the instance to reconnect, or the one created
	Reconnect      bool
	Name           string
	Tags           []string
	Configuration  map[string]json.RawMessage
	RedirectURL    string
	TokenHash      []byte
	BrowserHash    []byte
	Status         string
	Error          string
	ErrorMessage   string // what went wrong, as a caller-facing message
	InstanceToken  string // the created instance's token, until the application reads it
	TokenRead      bool   // the application read InstanceToken (it is deleted then)
	ExpiresAt      time.Time
	CompletedAt    *time.Time
	CreatedAt      time.Time

	OrganizationName string // read only, for the page
}

// Outcome is how a session ended, saved with FinishSession.
type Outcome struct {
	Status        string
	Error         string
	Message       string // the caller-facing message of what went wrong, if any
	InstanceID    int64
	InstanceToken string // a created instance's token, shown to the application once
	Notify        bool   // queue the instance's "created"/"reconnected" notification
}

// Store is what this package needs from the database. Every method is one
// transaction; missing rows are apperr.NotFound.
type Store interface {
	PutOAuthApp(ctx context.Context, orgID int64, app App) (App, error)
	OAuthApp(ctx context.Context, orgID int64, elementKey string) (App, error)
	DeleteOAuthApp(ctx context.Context, orgID int64, elementKey string) error

	CreateSession(ctx context.Context, s *Session) error
	// SessionByToken returns the session whose token hashes to tokenHash,
	// with its organization's name.
	SessionByToken(ctx context.Context, tokenHash []byte) (*Session, error)
	// BindBrowser records the hash of the cookie the connect page set, while
	// the session is pending.
	BindBrowser(ctx context.Context, id int64, browserHash []byte) error
	// StartAuthorize stores a new state hash for a pending session whose
	// browser hash is browserHash, replacing any earlier one, and returns the session.
	StartAuthorize(ctx context.Context, id int64, browserHash, stateHash []byte) (*Session, error)
	// ConsumeState finds the session holding stateHash and clears it (a state
	// works once, whatever happens next). When check accepts the session, it
	// becomes connecting; the session is returned with check's error.
	ConsumeState(ctx context.Context, stateHash []byte, check func(*Session) error) (*Session, error)
	// FinishSession saves how a session ended, and with o.Notify queues the
	// instance's notification, in one transaction.
	FinishSession(ctx context.Context, id int64, o Outcome) error
	// ReadSession returns one of the organization's sessions; a created
	// instance's token comes with it the first time and is then deleted.
	ReadSession(ctx context.Context, orgID, id int64) (*Session, error)
}

// Instances is what this package needs from the instances service.
type Instances interface {
	Create(ctx context.Context, p tenants.Principal, pathElement string, req instances.CreateRequest) (*instances.View, error)
	Check(ctx context.Context, p tenants.Principal, req instances.CreateRequest) error
	Get(ctx context.Context, p tenants.Principal, id int64) (*instances.View, error)
	Reconnect(ctx context.Context, p tenants.Principal, id int64, app instances.OAuthApp, code string) (*instances.View, error)
}

// Options configure a Service; Store, Instances, Catalog and PublicURL are required.
type Options struct {
	Store     Store
	Instances Instances
	Catalog   *elements.Catalog
	// PublicURL is where browsers reach connectord (CONNECTORD_PUBLIC_URL),
	// without a trailing slash.
	PublicURL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives failures the application is only told about as
	// server_error; the zero value discards.
	Log zerolog.Logger
}

func (o *Options) validate() error {
	var missing []string
	if o.Store == nil {
		missing = append(missing, "Store")
	}
	if o.Instances == nil {
		missing = append(missing, "Instances")
	}
	if o.Catalog == nil {
		missing = append(missing, "Catalog")
	}
	if o.PublicURL == "" {
		missing = append(missing, "PublicURL")
	}
	if len(missing) > 0 {
		return fmt.Errorf("connect: missing options %s", strings.Join(missing, ", "))
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Service runs the hosted connect flow.
type Service struct {
	opts Options
}

// New returns a Service built from opts.
func New(opts Options) (*Service, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Service{opts: opts}, nil
}

// CallbackURL is the redirect URI Keap sends users back to, the one to
// register with the Keap developer app.
func (s *Service) CallbackURL() string { return s.opts.PublicURL + CallbackPath }

// PublicURL is where browsers reach connectord.
func (s *Service) PublicURL() string { return s.opts.PublicURL }

func (s *Service) element(keyOrID string) (*elements.Element, error) {
	el, ok := s.opts.Catalog.Lookup(keyOrID)
	if !ok {
		return nil, apperr.Errorf(apperr.NotFound, "no element %q; the elements are %s", keyOrID, strings.Join(s.opts.Catalog.Keys(), ", "))
	}
	if !el.SupportsAuth(instances.AuthOAuth2) {
		return nil, apperr.Errorf(apperr.Invalid, "element %s does not authenticate with OAuth, so it has no Keap app to store", el.Key)
	}
	return el, nil
}

// PutApp stores (or replaces) the organization's Keap app for an element.
func (s *Service) PutApp(ctx context.Context, p tenants.Principal, keyOrID string, req AppRequest) (*AppView, error) {
	el, err := s.element(keyOrID)
	if err != nil {
		return nil, err
	}
	id, secret := strings.TrimSpace(req.APIKey), strings.TrimSpace(req.APISecret)
	var missing []string
	if id == "" {
		missing = append(missing, "apiKey (the client id of your Keap developer app)")
	}
	if secret == "" {
		missing = append(missing, "apiSecret (its client secret)")
	}
	if len(missing) > 0 {
		return nil, apperr.Errorf(apperr.Invalid, "missing required field: %s", strings.Join(missing, ", "))
	}
	if len(id) > 200 || len(secret) > 500 {
		return nil, apperr.Errorf(apperr.Invalid, "apiKey is at most 200 characters and apiSecret at most 500")
	}
	app, err := s.opts.Store.PutOAuthApp(ctx, p.OrganizationID, App{ElementKey: el.Key, ClientID: id, ClientSecret: secret})
	if err != nil {
		return nil, err
	}
	return s.appView(app), nil
}

// GetApp returns the organization's Keap app for an element, its secret masked.
func (s *Service) GetApp(ctx context.Context, p tenants.Principal, keyOrID string) (*AppView, error) {
	el, err := s.element(keyOrID)
	if err != nil {
		return nil, err
	}
	app, err := s.app(ctx, p.OrganizationID, el.Key)
	if err != nil {
		return nil, err
	}
	return s.appView(app), nil
}

// DeleteApp removes the organization's Keap app for an element. Instances
// created with it keep working: each holds its own copy of the credentials.
func (s *Service) DeleteApp(ctx context.Context, p tenants.Principal, keyOrID string) error {
	el, err := s.element(keyOrID)
	if err != nil {
		return err
	}
	if err := s.opts.Store.DeleteOAuthApp(ctx, p.OrganizationID, el.Key); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return noApp(el.Key)
		}
		return err
	}
	return nil
}

func (s *Service) app(ctx context.Context, orgID int64, elementKey string) (App, error) {
	app, err := s.opts.Store.OAuthApp(ctx, orgID, elementKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return App{}, noApp(elementKey)
	}
	return app, err
}

func noApp(elementKey string) error {
	return apperr.Errorf(apperr.NotFound, "this organization has no Keap app for %s: PUT /organizations/elements/%s/oauth/app with {\"apiKey\", \"apiSecret\"} first", elementKey, elementKey)
}

func (s *Service) appView(app App) *AppView {
	return &AppView{
		Element: app.ElementKey, APIKey: app.ClientID, APISecret: instances.Masked, RedirectURI: s.CallbackURL(),
		CreatedDate: app.CreatedAt.UTC(), UpdatedDate: app.UpdatedAt.UTC(),
	}
}

// IsRedirectURL reports whether u may be an application's redirect URL: an
// absolute http or https URL with a host, no user information and no fragment.
func IsRedirectURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && instances.IsHTTPURL(u) && p.Fragment == "" && !strings.Contains(u, "#") && len(u) <= 2000
}

// errBrowser is the refusal of a request from a browser the session is not bound to.
var errBrowser = apperr.Errorf(apperr.Forbidden, "this browser did not open the connect page of this session: open the connect link again in this browser")

// isExpired reports whether the session has run out at now.
func (s *Service) isExpired(sess *Session) bool { return !s.opts.Now().Before(sess.ExpiresAt) }

// AuthorizeOrigins are the origins of the elements' authorize pages, where the
// connect page's form leads (its Content-Security-Policy names them).
func (s *Service) AuthorizeOrigins() []string {
	var out []string
	for _, el := range s.opts.Catalog.All() {
		u, err := url.Parse(el.Endpoints.AuthorizationURL)
		if err != nil || u.Host == "" {
			continue
		}
		o := u.Scheme + "://" + u.Host
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
