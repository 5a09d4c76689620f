package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/tenants"
)

// OpenConnectorsPrefix is Open Connectors' base path; the whole API is served
// under it too, so existing scripts work by changing only the host.
const OpenConnectorsPrefix = "/elements/api-v2"

// Deps are what the routes are built from.
type Deps struct {
	Log       zerolog.Logger
	Catalog   *elements.Catalog
	Tenants   authenticator
	Instances instanceService
	Tokens    tokenRefresher
	DB        pinger
	Sandbox   http.Handler // the fake Keap, mounted at /sandbox/keap in sandbox mode
	Hubs      hubService   // the normalised resources at /hubs/… (internal/hubs)
	Proxy     proxier      // the pass-through to Keap at /proxy/… (internal/proxy); nil serves none
	Events    eventLog     // instances' event notifications and their redelivery
	Receiver  hookReceiver // Keap's REST hook handshakes and deliveries
	Hooks     hookStates   // instances' Keap hooks and their status
	Console   http.Handler // the web console (internal/console), mounted at /console; nil serves none
	Quotas    quotaViewer  // the Keap quotas an instance draws on (internal/quota)
	// BodyReadTimeout bounds reading a request's body; default 30s.
	BodyReadTimeout time.Duration
	// Connect serves the organizations' Keap apps and the hosted connect flow (internal/connect).
	Connect connectService
	// XMLRPC is the XML-RPC bridge onto Keap's REST v2 (internal/xmlrpcbridge).
	XMLRPC xmlrpcServer
	// BridgeKey makes instances' bridge keys (internal/xmlrpcbridge).
	BridgeKey bridgeKeys

	// AuthFailuresPerMinute is how many failed authentications one source
	// address may make a minute (and at once) before it is answered 429;
	// 0 does not limit them.
	AuthFailuresPerMinute int
	Metrics               observer     // counts requests and hook deliveries (internal/metrics); nil counts nothing
	Scrape                http.Handler // when set, serves GET /metrics (the metrics' exposition)
	Audit                 AuditLog     // the audit log (the store); nil records nothing and serves no /audit-logs
}

// Routes lists every route connectord serves.
func Routes(d Deps) http.Handler {
	d.Tenants = limitAuthFailures(d.Tenants, d.AuthFailuresPerMinute)
	r := chi.NewRouter()
	bodyTimeout := d.BodyReadTimeout
	if bodyTimeout <= 0 {
		bodyTimeout = 30 * time.Second
	}
	if d.Metrics == nil {
		d.Metrics = nopObserver{}
	}
	r.Use(withRequestID(d.Log), logRequests, observeRequests(d.Metrics), recoverPanics, checkQuery, refuseBadText, limitBody(bodyTimeout))
	r.NotFound(notFound().ServeHTTP)
	r.MethodNotAllowed(methodNotAllowed().ServeHTTP)

	r.Method(http.MethodGet, "/healthz", healthz())
	r.Method(http.MethodGet, "/readyz", readyz(d.DB))
	if d.Scrape != nil {
		r.Method(http.MethodGet, "/metrics", d.Scrape)
	}
	if d.Sandbox != nil {
		r.Mount("/sandbox/keap", http.StripPrefix("/sandbox/keap", d.Sandbox))
	}
	// The web console: HTML pages for people, not part of the API document.
	if d.Console != nil {
		r.Mount("/console", d.Console)
	}
	// Keap calls this, authenticated by the hook's secret in the path.
	r.Method(http.MethodPost, "/events/keap/{secret}", receiveKeapHook(d.Receiver, d.Metrics))
	// ---- the hosted connect flow's pages, for end users' browsers (issue 12) ----
	r.Method(http.MethodGet, "/connect", connectPage(d.Connect))
	r.Method(http.MethodPost, "/connect/authorize", connectAuthorize(d.Connect))
	r.Method(http.MethodGet, "/connect/callback", connectCallback(d.Connect))
	// ---- XML-RPC bridge (issue 11): Keap's XML-RPC paths on connectord's host ----
	r.Method(http.MethodPost, "/crm/xmlrpc/v1", xmlrpcBridge(d.XMLRPC))
	r.Method(http.MethodPost, "/api/xmlrpc", xmlrpcBridge(d.XMLRPC))

	api := func(r chi.Router) {
		r.Method(http.MethodGet, "/elements", listElements(d.Catalog))
		r.Method(http.MethodGet, "/elements/{keyOrId}", getElement(d.Catalog))
		r.Method(http.MethodGet, "/elements/{keyOrId}/oauth/url", oauthURL(d.Catalog))
		r.Method(http.MethodGet, "/elements/{keyOrId}/openapi.json", elementOpenAPI(d.Catalog))

		r.Group(func(r chi.Router) {
			r.Use(authenticate(d.Tenants, tenants.NeedOrganization))
			// audited(…) records the change in the audit log (issue 14).
			r.Method(http.MethodPost, "/elements/{keyOrId}/instances", audited(d.Audit, audit.InstanceCreated, createInstance(d.Instances)))
			r.Method(http.MethodPost, "/instances", audited(d.Audit, audit.InstanceCreated, createInstance(d.Instances)))
			r.Method(http.MethodGet, "/instances", listInstances(d.Instances))
			r.Method(http.MethodGet, "/instances/{id}", getInstance(d.Instances))
			r.Method(http.MethodPatch, "/instances/{id}", audited(d.Audit, audit.InstanceChanged, patchInstance(d.Instances)))
			r.Method(http.MethodPut, "/instances/{id}", audited(d.Audit, audit.InstanceReconnected, putInstance(d.Instances)))
			r.Method(http.MethodDelete, "/instances/{id}", audited(d.Audit, audit.InstanceDeleted, deleteInstance(d.Instances)))
			r.Method(http.MethodGet, "/instances/{id}/configuration", getConfiguration(d.Instances))
			r.Method(http.MethodGet, "/instances/{id}/configuration/{configKey}", getConfigEntry(d.Instances))
			r.Method(http.MethodPatch, "/instances/{id}/configuration/{configKey}", audited(d.Audit, audit.InstanceChanged, patchConfigEntry(d.Instances)))
			r.Method(http.MethodPut, "/instances/{id}/tokens/refresh", audited(d.Audit, audit.InstanceTokensRefreshed, refreshTokens(d.Tokens)))
			r.Method(http.MethodGet, "/instances/{id}/events", listEvents(d.Events))
			r.Method(http.MethodPost, "/instances/{id}/events/redeliver", audited(d.Audit, audit.EventsRedelivered, redeliverEvents(d.Events)))
			r.Method(http.MethodPost, "/instances/{id}/events/{eventId}/redeliver", audited(d.Audit, audit.EventsRedelivered, redeliverEvent(d.Events)))
			r.Method(http.MethodGet, "/instances/{id}/events/hooks", listEventHooks(d.Hooks))
			r.Method(http.MethodGet, "/instances/{id}/events/polling", listPollCursors(d.Events))
			if d.Audit != nil {
				r.Method(http.MethodGet, "/audit-logs", listAuditLogs(d.Audit))
			}
			r.Method(http.MethodGet, "/instances/{id}/quota", instanceQuota(d.Quotas))
			r.Method(http.MethodPost, "/instances/{id}/bridge-key", audited(d.Audit, audit.InstanceBridgeKeySet, rotateBridgeKey(d.BridgeKey)))
			// ---- Keap apps and connect sessions (issue 12) ----
			r.Method(http.MethodPut, "/organizations/elements/{keyOrId}/oauth/app", audited(d.Audit, audit.KeapAppSet, putOAuthApp(d.Connect)))
			r.Method(http.MethodGet, "/organizations/elements/{keyOrId}/oauth/app", getOAuthApp(d.Connect))
			r.Method(http.MethodDelete, "/organizations/elements/{keyOrId}/oauth/app", audited(d.Audit, audit.KeapAppDeleted, deleteOAuthApp(d.Connect)))
			r.Method(http.MethodPost, "/connect/sessions", audited(d.Audit, audit.ConnectSessionOpened, createConnectSession(d.Connect)))
			r.Method(http.MethodGet, "/connect/sessions/{id}", getConnectSession(d.Connect))
		})

		r.Group(func(r chi.Router) {
			r.Use(authenticate(d.Tenants, tenants.NeedElement))
			// ---- hub routes (issue 4) ----
			r.Method(http.MethodGet, "/hubs/{hub}/lookups/countries", hubCountries(d.Hubs))
			r.Method(http.MethodGet, "/hubs/{hub}/lookups/countries/{code}/provinces", hubProvinces(d.Hubs))
			// The element definitions say which resource allows which method; the hubs answer 405 for the rest.
			for _, p := range []string{"/hubs/{hub}/{resource}", "/hubs/{hub}/{resource}/{id}",
				"/hubs/{hub}/{resource}/{id}/{sub}", "/hubs/{hub}/{resource}/{id}/{sub}/{subId}"} {
				for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
					r.Method(m, p, hubResource(d.Hubs))
				}
			}
			// ---- proxy routes (issue 4) ----
			if d.Proxy != nil {
				proxy := proxyKeap(d.Proxy, d.Log)
				for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
					r.Method(m, "/proxy/*", proxy)
				}
			}
		})
	}
	r.Group(api)
	r.Route(OpenConnectorsPrefix, api)
	return r
}
