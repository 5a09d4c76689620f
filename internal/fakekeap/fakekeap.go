// Package fakekeap is an in-memory fake of Keap (Infusionsoft) for connectord's
// tests and for `connectord serve --sandbox`: the OAuth 2.0 authorize and token
// endpoints with rotating refresh tokens, a slice of REST v1 (account, contacts,
// tags, companies, locales, REST hooks with the verification handshake, and
// generic opportunities, notes, tasks, campaigns, emails, orders, products,
// transactions and subscriptions, refusing query parameters Keap's OpenAPI
// document does not list), REST v2 over the same contacts, tags and companies
// (v2.go: contacts with filter, order_by and page_token, duplicate_option,
// update_mask and merge; tags with :applyTags/:removeTags; companies;
// opportunities; notes; tasks; orders with items and payments; products with
// :adjustInventory; subscriptions; email opt-in status; automation goals;
// settings; the contacts' custom field model and custom field filters),
// XML-RPC for OAuth, service account and legacy keys, throttling headers and
// injectable failures. Service account keys and legacy keys are accepted as
// X-Keap-API-Key, access tokens (and service account keys) as Bearer, on REST
// v1, REST v2 and /crm/xmlrpc/v1 alike, as Keap takes them today.
//
// It owns only its own memory. It must never be used against or in front of
// the real Keap, and it persists nothing: every Server starts empty.
package fakekeap

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
)

// AppName is the application name of the fake's single tenant (ab123.infusionsoft.com).
const AppName = "ab123"

// tokenScope is the scope Keap reports for a token of AppName.
const tokenScope = "full|" + AppName + ".infusionsoft.com"

// maxBody bounds every request body the fake reads.
const maxBody = 4 << 20

// Options configures a Server; the zero value suits tests and the sandbox.
type Options struct {
	// AccessTokenTTL is the access token lifetime; zero means 24h as at Keap.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the refresh token lifetime; zero means 45 days.
	RefreshTokenTTL time.Duration
	// Now is the clock for token expiry, timestamps and throttle windows; nil means time.Now.
	Now func() time.Time
	// Logger receives hook handshake and delivery outcomes; the zero value discards.
	Logger zerolog.Logger
	// AutoApprove makes the authorize endpoint redirect with a code even for
	// a browser. Without it a browser (Accept: text/html) gets a small
	// Allow/Deny page while programmatic clients are approved at once, so the
	// zero value serves both tests and a person trying the sandbox.
	AutoApprove bool
	// HTTPClient makes hook handshakes and deliveries; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// BaseURL is where the fake is reachable, used for apiUrl in hook
	// deliveries; empty means the base of the last API request served.
	BaseURL string
}

// Stats counts what clients did to the fake, for assertions.
type Stats struct {
	CodeExchanges          int // authorization codes exchanged for tokens
	Refreshes              int // successful refresh_token grants
	RefreshTokenReuse      int // refresh attempts with a token that was valid but already rotated away (the lost race)
	InvalidRefreshAttempts int // refresh attempts with an unknown, expired, revoked or foreign token
	APICalls               int // REST and XML-RPC requests, including refused ones
	Throttled              int // API calls refused with 429 for being over the rate limit
	HookDeliveries         int // hook deliveries attempted
}

// Server is the fake Keap. It is safe for concurrent use.
type Server struct {
	opts    Options
	log     zerolog.Logger
	client  *http.Client
	handler http.Handler
	down    atomic.Bool
	// xmlrpcOff makes XML-RPC answer as after Keap's sunset (SetXMLRPC).
	xmlrpcOff atomic.Bool

	mu        sync.Mutex
	stats     Stats
	clients   map[string]string          // client id -> secret
	redirects map[string][]string        // client id -> registered redirect URIs
	saks      map[string]bool            // service account keys
	legacy    map[string]map[string]bool // app -> legacy keys
	codes     map[string]authCode
	access    map[string]accessToken
	refresh   map[string]*refreshToken
	throttle  throttle
	contacts  map[int64]*contact
	tags      map[int64]*tag
	companies map[int64]*company
	hooks     map[string]*hook
	lastID    map[string]int64 // per kind of record
	baseURL   string
	closed    bool
	pending   sync.WaitGroup // hook deliveries in flight

	records map[string]map[int64]record // the generic resources of resources.go, by path

	v2records     map[string]map[int64]map[string]any // the REST v2 resources of v2records.go, by kind
	emailOpt      map[string]string                   // lower-case email -> opt status set through REST v2
	goals         []goal                              // automation goals AddGoal declared
	contactCustom []customField                       // the contacts' custom fields, as AddContactCustomField declared them
	achieved      []AchievedGoal                      // goals achieved through REST v2, in order
}

// New returns an empty fake Keap.
func New(opts Options) *Server {
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = 24 * time.Hour
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = 45 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		client:    client,
		clients:   map[string]string{},
		redirects: map[string][]string{},
		saks:      map[string]bool{},
		legacy:    map[string]map[string]bool{},
		codes:     map[string]authCode{},
		access:    map[string]accessToken{},
		refresh:   map[string]*refreshToken{},
		contacts:  map[int64]*contact{},
		tags:      map[int64]*tag{},
		companies: map[int64]*company{},
		hooks:     map[string]*hook{},
		emailOpt:  map[string]string{},
		lastID:    map[string]int64{},
		baseURL:   strings.TrimSuffix(opts.BaseURL, "/"),
	}
	s.throttle.counts = map[string]*throttleCount{}
	s.handler = s.routes()
	return s
}

// routes lists every endpoint of the fake.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "No resource found for "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusMethodNotAllowed, "Request method '"+r.Method+"' not supported")
	})

	r.Get("/app/oauth/authorize", s.handleAuthorize)
	r.Post("/app/oauth/authorize", s.handleAuthorize)
	r.Post("/token", s.handleToken)

	r.Route("/crm/rest/v1", func(r chi.Router) {
		r.Use(s.gate(authAPIOrLegacyKey), middleware.StripSlashes) // Keap's own next URLs read /contacts/?…
		r.Use(checkParams)
		r.Get("/account/profile", s.handleAccountProfile)
		r.Get("/oauth/connect/userinfo", s.handleUserInfo)
		r.Get("/contacts", s.handleListContacts)
		r.Post("/contacts", s.handleCreateContact)
		r.Put("/contacts", s.handleUpsertContact)
		r.Get("/contacts/{id}", s.handleGetContact)
		r.Patch("/contacts/{id}", s.handlePatchContact)
		r.Delete("/contacts/{id}", s.handleDeleteContact)
		r.Get("/contacts/{id}/tags", s.handleListContactTags)
		r.Post("/contacts/{id}/tags", s.handleApplyTags)
		r.Delete("/contacts/{id}/tags", s.handleRemoveTags)
		r.Get("/tags", s.handleListTags)
		r.Post("/tags", s.handleCreateTag)
		r.Get("/tags/{id}", s.handleGetTag)
		r.Get("/companies", s.handleListCompanies)
		r.Post("/companies", s.handleCreateCompany)
		r.Get("/companies/{id}", s.handleGetCompany)
		r.Patch("/companies/{id}", s.handlePatchCompany)
		r.Get("/locales/countries", s.handleCountries)
		r.Get("/locales/countries/{cc}/provinces", s.handleProvinces)
		r.Get("/hooks/event_keys", s.handleEventKeys)
		r.Get("/hooks", s.handleListHooks)
		r.Post("/hooks", s.handleCreateHook)
		r.Get("/hooks/{key}", s.handleGetHook)
		r.Put("/hooks/{key}", s.handleUpdateHook)
		r.Delete("/hooks/{key}", s.handleDeleteHook)
		r.Post("/hooks/{key}/verify", s.handleVerifyHook)
		r.Post("/hooks/{key}/delayedVerify", s.handleDelayedVerifyHook)
		s.resourceRoutes(r)
	})
	r.Route("/crm/rest/v2", s.v2Routes)

	r.With(s.gate(authAPIOrLegacyKey)).Post("/crm/xmlrpc/v1", s.handleXMLRPC)
	r.Post("/legacy/{app}/api/xmlrpc", s.handleLegacyXMLRPC)
	return r
}

// ServeHTTP serves the fake Keap from the root of its URL space.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n")
		return
	}
	s.handler.ServeHTTP(w, r)
}

// SetDown simulates a provider outage: while down, every endpoint answers 503.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close stops new hook deliveries and waits for those in flight.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.pending.Wait()
}

// nextIDLocked hands out the next id of a kind of record.
func (s *Server) nextIDLocked(kind string) int64 {
	s.lastID[kind]++
	return s.lastID[kind]
}

// stamp is the current time as Keap stores it: UTC, millisecond precision.
func (s *Server) stamp() time.Time {
	return s.opts.Now().UTC().Truncate(time.Millisecond)
}

func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func randomToken() string { return rand.Text() }

// requestBase is the absolute URL of the fake's root as the caller sees it,
// including any prefix a mounting http.StripPrefix removed.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && strings.HasSuffix(u.Path, r.URL.Path) {
		prefix = strings.TrimSuffix(u.Path, r.URL.Path)
	}
	return scheme + "://" + r.Host + prefix
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeMessage writes the error body of Keap's REST v1 services.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

// writeFault writes the error body of Keap's API gateway.
func writeFault(w http.ResponseWriter, status int, faultstring, errorcode string) {
	writeJSON(w, status, map[string]any{"fault": map[string]any{
		"faultstring": faultstring,
		"detail":      map[string]string{"errorcode": errorcode},
	}})
}

// readJSON decodes a bounded JSON request body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Input could not be converted to a valid request: "+err.Error())
		return false
	}
	return true
}
