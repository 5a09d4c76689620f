// Package instances owns connector instances: provisioning them with an OAuth
// code, a Keap service account key or a legacy key; their configuration (which
// entries exist, their defaults, validation, which are secret); and how an
// instance is shown to its owner, with every secret masked.
//
// It must not know HTTP or SQL: it takes typed requests and a Store, and it keeps
// secrets in clear only in memory, handing them to the Store to encrypt.
package instances

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/oauthflow"
)

// Authentication types.
const (
	AuthOAuth2 = "oauth2"
	AuthAPIKey = "apikey"
)

// Configuration keys the service itself reads or writes.
const (
	KeyAuthType        = "authentication.type"
	KeyClientID        = "oauth.api.key"
	KeyClientSecret    = "oauth.api.secret"
	KeyCallbackURL     = "oauth.callback.url"
	KeyAccessToken     = "oauth.user.token"
	KeyRefreshToken    = "oauth.user.refresh_token"
	KeyRefreshTime     = "oauth.user.refresh_time"
	KeyRefreshInterval = "oauth.user.refresh_interval"
	KeyScope           = "oauth.scope"
	KeyAuthorizeURL    = "oauth.authorization.url"
	KeyTokenURL        = "oauth.token.url"
	KeyAPIKey          = "infusionsoft.api.key"
	KeyAppName         = "infusionsoft.app.name"
	KeyBaseURL         = "base.url"
	KeyEventsEnabled   = "event.notification.enabled"
	KeyEventVendorType = "event.vendor.type"
	KeyEventCallback   = "event.notification.callback.url"
	// KeyEventSignatureKey is secret: it lives in Instance.Secrets.
	KeyEventSignatureKey = "event.notification.signature.key"
	KeyEventBatchSize    = "event.notification.batch.size"
	KeyEventObjects      = "event.objects"
	KeyPollerInterval    = "event.poller.refresh_interval"
	KeyPollerConfig      = "event.poller.configuration"
	KeyXMLRPCMode        = "xmlrpc.mode"
)

// The values of KeyXMLRPCMode.
const (
	XMLRPCBridge      = "bridge"      // connectord answers XML-RPC over Keap's REST v2
	XMLRPCPassthrough = "passthrough" // XML-RPC goes on to Keap's
)

// XMLRPCMode is how an instance's XML-RPC calls through the proxy are
// answered. New instances store the element's default (bridge) when they are
// created; an instance stored before the entry existed has none and reads
// passthrough, which is what it did then.
func XMLRPCMode(inst *Instance) string {
	if v, ok := inst.Config[KeyXMLRPCMode]; ok && v != nil && *v != "" {
		return *v
	}
	return XMLRPCPassthrough
}

// Instance is a connector instance as stored. Secrets holds the secret
// configuration values and tokens in clear; only the Store sees it leave memory,
// encrypted.
type Instance struct {
	ID             int64
	OrganizationID int64
	CreatedBy      int64
	ElementKey     string
	Name           string
	AuthType       string
	TokenHash      []byte
	Tags           []string
	Disabled       bool
	Valid          bool
	InvalidReason  string
	Config         map[string]*string // non-secret configuration set by the caller or connectord
	Secrets        map[string]string  // secret configuration and tokens
	TokenExpiresAt *time.Time
	RefreshedAt    *time.Time
	// Refresh scheduling, owned by the token refresher. Only valid OAuth
	// instances have a RefreshDueAt; a new or repaired one is due at once.
	RefreshDueAt       *time.Time
	RefreshFailures    int
	LastRefreshError   string
	LastRefreshErrorAt *time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// ErrUnchanged, returned by an update function, leaves the instance as it was:
// nothing is written.
var ErrUnchanged = errors.New("instances: unchanged")

// Value is the effective value of one of inst's non-secret configuration
// entries: what was set, else the element's default.
func Value(el *elements.Element, inst *Instance, key string) string {
	return value(el, inst.Config, key)
}

// Store is what this package needs from the database. Every method is one
// transaction; errors for missing rows carry apperr.NotFound.
type Store interface {
	CreateInstance(ctx context.Context, inst *Instance) error
	Instance(ctx context.Context, orgID, id int64) (*Instance, error)
	Instances(ctx context.Context, orgID int64, tags []string) ([]*Instance, error)
	// UpdateInstance locks the instance, applies fn and saves what fn left.
	UpdateInstance(ctx context.Context, orgID, id int64, fn func(*Instance) error) (*Instance, error)
	DeleteInstance(ctx context.Context, orgID, id int64) error
}

// KeyVerifier checks API keys with the provider before an instance is saved.
type KeyVerifier interface {
	VerifyAPIKey(ctx context.Context, restBase, key string) error
	VerifyLegacyKey(ctx context.Context, legacyURL, key string) error
}

// CallbackChecker decides whether an event callback URL may be configured (the
// events package's policy: no loopback, private or link-local destinations).
type CallbackChecker interface {
	Check(ctx context.Context, url string) error
}

// Service provisions and manages instances.
type Service struct {
	store     Store
	catalog   *elements.Catalog
	keys      KeyVerifier
	callbacks CallbackChecker
	client    *http.Client
	now       func() time.Time
	hooks     EventHooks

	resolved *resolveCache // nil when Options.ResolveCacheTTL is 0
}

// Options are what a Service is built from besides its store and catalog.
type Options struct {
	// Keys checks API keys with Keap before an instance is saved (required).
	Keys KeyVerifier
	// Callbacks decides which event callback URLs may be set (required).
	Callbacks CallbackChecker
	// HTTP calls the provider's token endpoint; default http.DefaultClient.
	HTTP *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Hooks is told about created, changed and deleted instances, whose
	// provider hooks it keeps; default none.
	Hooks EventHooks
	// ResolveCacheTTL makes Resolve remember a usable instance for as long,
	// so that the calls applications make all day (the hubs, the proxy) do
	// not each load and decrypt it. Changes made through this Service
	// (PATCH, PUT, DELETE) take effect at once; changes made elsewhere
	// (another replica, the token refresher marking an instance invalid)
	// within the TTL. A disabled or invalid instance is never remembered.
	// Zero leaves Resolve uncached.
	ResolveCacheTTL time.Duration
}

// validate fills in the defaults and names every missing dependency.
func (o *Options) validate() error {
	var missing []string
	if o.Keys == nil {
		missing = append(missing, "Keys")
	}
	if o.Callbacks == nil {
		missing = append(missing, "Callbacks")
	}
	if o.ResolveCacheTTL < 0 {
		return errors.New("instances: ResolveCacheTTL must not be negative")
	}
	if len(missing) > 0 {
		return errors.New("instances: Options need " + strings.Join(missing, " and "))
	}
	if o.HTTP == nil {
		o.HTTP = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Hooks == nil {
		o.Hooks = noHooks{}
	}
	return nil
}

// NewService returns a Service built from opt, or what is wrong with opt.
func NewService(store Store, catalog *elements.Catalog, opt Options) (*Service, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	s := &Service{store: store, catalog: catalog, keys: opt.Keys, callbacks: opt.Callbacks,
		client: opt.HTTP, now: opt.Now, hooks: opt.Hooks}
	if opt.ResolveCacheTTL > 0 {
		c := &resolveCache{ttl: opt.ResolveCacheTTL, now: s.now, m: map[int64]resolved{}}
		s.resolved = c
		s.store = forgetting{Store: s.store, cache: c}
	}
	return s, nil
}

// checkCallback applies the callback policy to an event callback URL being set.
func (s *Service) checkCallback(ctx context.Context, public map[string]*string, p *problems) {
	v, ok := public[KeyEventCallback]
	if !ok || v == nil || *v == "" {
		return
	}
	if err := s.callbacks.Check(ctx, *v); err != nil {
		p.add("configuration %s: %v", KeyEventCallback, err)
	}
}

func (s *Service) oauth(el *elements.Element) *oauthflow.Provider {
	return &oauthflow.Provider{AuthURL: el.Endpoints.AuthorizationURL, TokenURL: el.Endpoints.TokenURL, Client: s.client}
}
