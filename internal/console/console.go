// Package console is connectord's web console at /console, for people: sign
// in with a user's and organization's secrets, the element catalog with
// Connect and API-key forms, the instances with their configuration, tokens,
// events, hooks and polling, and each instance's API docs with a "try it"
// panel that calls the hubs as that instance. Pages are server-rendered with
// html/template; the stylesheet is embedded; no JavaScript is needed.
//
// It owns only the HTTP side of the console: sessions, CSRF checks, security
// headers, forms and pages. Every rule about instances, events and hubs is the
// services' (internal/instances, events, hubs, tokens), called exactly as the
// API calls them, so the console checks nothing twice. It must never put a
// secret (instance token, Keap credential, user or organization secret,
// session token) in a page, a URL or a log line.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/connect"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/httpapi"
	"github.com/connectord/connectord/internal/hubs"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
)

//go:embed templates assets
var files embed.FS

// Sessions signs people in and out (tenants.Sessions).
type Sessions interface {
	SignIn(ctx context.Context, userSecret, orgSecret string) (string, tenants.ConsoleSession, error)
	Session(ctx context.Context, token string) (tenants.ConsoleSession, error)
	SignOut(ctx context.Context, token string) error
}

// Instances is what the console does with instances (instances.Service).
type Instances interface {
	Create(ctx context.Context, p tenants.Principal, pathElement string, req instances.CreateRequest) (*instances.View, error)
	Get(ctx context.Context, p tenants.Principal, id int64) (*instances.View, error)
	List(ctx context.Context, p tenants.Principal, tags []string) ([]*instances.View, error)
	Update(ctx context.Context, p tenants.Principal, id int64, req instances.UpdateRequest) (*instances.View, error)
	Delete(ctx context.Context, p tenants.Principal, id int64) error
	Configuration(ctx context.Context, p tenants.Principal, id int64) ([]instances.ConfigEntry, error)
}

// Tokens renews an instance's OAuth tokens on demand (tokens.Service).
type Tokens interface {
	ForceRefresh(ctx context.Context, orgID, id int64) (*instances.Instance, error)
}

// Events shows and redelivers an instance's notifications (store.DB).
type Events interface {
	Notifications(ctx context.Context, orgID, instanceID int64, f events.Filter) ([]events.Notification, events.NotificationID, error)
	Redeliver(ctx context.Context, orgID, instanceID int64, eventID string) error
	RedeliverFailed(ctx context.Context, orgID, instanceID int64) (int64, error)
	PollStatuses(ctx context.Context, orgID, instanceID int64) ([]events.PollStatus, error)
}

// Hooks shows an instance's Keap hooks (events.Hooks).
type Hooks interface {
	State(ctx context.Context, orgID, instanceID int64) (events.HookState, error)
}

// Hubs runs hub calls as an instance (hubs.Service).
type Hubs interface {
	Call(ctx context.Context, p tenants.Principal, req hubs.Request) (*hubs.Result, error)
	Countries(ctx context.Context, p tenants.Principal, hub string) ([]hubs.Locale, error)
	Provinces(ctx context.Context, p tenants.Principal, hub, country string) ([]hubs.Locale, error)
}

// Connect runs the hosted connect flow and keeps the organizations' Keap
// apps (connect.Service), as the API's /connect/sessions and
// /organizations/elements/{keyOrId}/oauth/app do.
type Connect interface {
	CreateSession(ctx context.Context, p tenants.Principal, req connect.Request) (*connect.Created, error)
	Get(ctx context.Context, p tenants.Principal, id int64) (*connect.View, error)
	GetApp(ctx context.Context, p tenants.Principal, keyOrID string) (*connect.AppView, error)
	PutApp(ctx context.Context, p tenants.Principal, keyOrID string, req connect.AppRequest) (*connect.AppView, error)
}

// Options build a Console; New checks them.
type Options struct {
	Log       zerolog.Logger
	Catalog   *elements.Catalog
	Sessions  Sessions
	Instances Instances
	Tokens    Tokens
	Events    Events
	Hooks     Hooks
	Hubs      Hubs
	// Connect runs the hosted flow behind the Connect and Reconnect buttons
	// and stores the organization's Keap apps; nil shows OAuth elements
	// without them, saying why.
	Connect Connect
	// Audit records sign-ins and the changes made through the console and
	// lists them on the audit page (the store, as GET /audit-logs); nil
	// records nothing and shows no audit page.
	Audit httpapi.AuditLog
	// PublicURL is connectord's public base URL; an https one makes the
	// session cookie Secure.
	PublicURL string
	// SessionTTL is how long a sign-in lasts; it is shown on the sign-in page.
	SessionTTL time.Duration
	Now        func() time.Time
}

func (o *Options) validate() error {
	var missing []string
	for name, ok := range map[string]bool{
		"Catalog": o.Catalog != nil, "Sessions": o.Sessions != nil, "Instances": o.Instances != nil, "Tokens": o.Tokens != nil,
		"Events": o.Events != nil, "Hooks": o.Hooks != nil, "Hubs": o.Hubs != nil, "PublicURL": o.PublicURL != "",
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("console: missing options %s", strings.Join(missing, ", "))
	}
	if o.SessionTTL <= 0 {
		return errors.New("console: SessionTTL must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Console serves /console.
type Console struct {
	opt    Options
	pages  map[string]*template.Template
	assets fs.FS
	secure bool
}

// New returns a Console.
func New(opt Options) (*Console, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	return &Console{opt: opt, pages: pages, assets: assets, secure: strings.HasPrefix(opt.PublicURL, "https://")}, nil
}

// parsePages parses each page with the layout it fills.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}
