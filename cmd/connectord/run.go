package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/connect"
	"github.com/connectord/connectord/internal/console"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/httpapi"
	"github.com/connectord/connectord/internal/hubs"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/metrics"
	"github.com/connectord/connectord/internal/proxy"
	"github.com/connectord/connectord/internal/quota"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/store"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/tokens"
	"github.com/connectord/connectord/internal/trace"
	"github.com/connectord/connectord/internal/upstream"
	"github.com/connectord/connectord/internal/xmlrpcbridge"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `connectord — a self-hosted integration connector service for Infusionsoft (Keap)

Usage:
  connectord [serve] [--sandbox]          run the HTTP API (the default)
  connectord migrate                      apply pending database migrations and exit
  connectord orgs create --name N --email E
                                          create an organization and its first user;
                                          prints their secrets once, as JSON
  connectord keys rotate                  re-encrypt stored credentials under
                                          CONNECTORD_ENCRYPTION_KEY
  connectord version                      print the version

Run 'connectord COMMAND --help' for a command's flags. Configuration is read from
the environment; see README.md for the table.
`

// run is the whole program: main only supplies the process's arguments,
// environment and streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, args, getenv, stdout, stderr)
	case "orgs":
		return orgsCmd(ctx, args, getenv, stdout, stderr)
	case "keys":
		return keysCmd(ctx, args, getenv, stdout)
	case "version":
		if len(args) > 0 {
			fmt.Fprintln(stdout, "Usage: connectord version\n\nPrints the version of this build.")
			return nil
		}
		fmt.Fprintln(stdout, "connectord", version)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q; run 'connectord --help'", cmd)
}

// parseFlags parses a subcommand's flags; --help prints its usage and is not an error.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, help string) (bool, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, help)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return true, nil
		}
		return false, fmt.Errorf("%w; run with --help", err)
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q; run with --help", fs.Args())
	}
	return false, nil
}

// subcommand checks that args start with verb, the one a command group has
// (orgs create, keys rotate); --help in its place prints help and is done.
func subcommand(args []string, verb, usage, help string, stdout io.Writer) (rest []string, done bool, err error) {
	switch {
	case len(args) > 0 && args[0] == verb:
		return args[1:], false, nil
	case len(args) > 0 && (args[0] == "--help" || args[0] == "-h"):
		fmt.Fprint(stdout, help)
		return nil, true, nil
	}
	return nil, true, errors.New("usage: " + usage)
}

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if help, err := parseFlags(fs, args, stdout, "Usage: connectord migrate\n\nApplies every pending migration to DATABASE_URL and exits.\n"); help || err != nil {
		return err
	}
	db, err := openFromEnv(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func orgsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const help = "Usage: connectord orgs create --name NAME --email EMAIL\n\nCreates an organization and its first user and prints one JSON object with\ntheir ids and secrets. This is the only time the secrets are shown.\n\n"
	rest, done, err := subcommand(args, "create", "connectord orgs create --name NAME --email EMAIL", help, stdout)
	if done || err != nil {
		return err
	}
	fs := flag.NewFlagSet("orgs create", flag.ContinueOnError)
	name := fs.String("name", "", "the organization's name (required)")
	email := fs.String("email", "", "the first user's email address (required)")
	if help, err := parseFlags(fs, rest, stdout, help); help || err != nil {
		return err
	}
	var missing []string
	if *name == "" {
		missing = append(missing, "--name")
	}
	if *email == "" {
		missing = append(missing, "--email")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s; run 'connectord orgs create --help'", strings.Join(missing, " and "))
	}
	db, err := openFromEnv(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	actx, rec := audit.Start(ctx, audit.Actor{}, audit.OrganizationCreated, audit.TargetOrganization, 0)
	created, err := tenants.NewService(db).CreateOrganization(actx, *name, *email)
	if err != nil {
		recordFailed(ctx, db, rec, err)
		if e, ok := apperrMessage(err); ok {
			return errors.New(e)
		}
		return err
	}
	return json.NewEncoder(stdout).Encode(created)
}

func newLogger(c config, w io.Writer) zerolog.Logger {
	if c.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(c.LogLevel).With().Timestamp().Logger()
}

// Sandbox credentials: the fake Keap that `serve --sandbox` runs accepts these.
const (
	sandboxClientID     = "sandbox-client-id"
	sandboxClientSecret = "sandbox-client-secret"
	sandboxServiceKey   = "KeapAK-sandbox-service-account-key"
	sandboxLegacyApp    = "ab123"
	sandboxLegacyKey    = "sandbox-legacy-encrypted-key"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sandbox := fs.Bool("sandbox", false, "run a fake Keap in-process at /sandbox/keap and point the Infusionsoft endpoints at it")
	if help, err := parseFlags(fs, args, stdout, "Usage: connectord serve [--sandbox]\n\nApplies pending migrations and serves the HTTP API on CONNECTORD_ADDR.\n\n"); help || err != nil {
		return err
	}
	cfg, err := loadServeConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	// connectord's live heap is a few MB, so with Go's default (GOGC=100)
	// the collector runs several times a second under load, each time at a
	// fixed cost. Collecting at four times the live heap costs some MB and
	// 7–15% less CPU per proxied call (re-measured on net/http,
	// docs/performance.md). GOGC in the environment, if set, decides.
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	db, err := openMigrated(ctx, cfg.DatabaseURL, cfg.Ring)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := checkKeys(ctx, db, cfg); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("CONNECTORD_ADDR %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	selfURL := "http://" + loopbackAddr(ln.Addr())
	if cfg.PublicURL == "" {
		cfg.PublicURL = selfURL
	}

	var fake http.Handler
	if *sandbox {
		// The sandbox is reachable by whoever reaches the API: its hooks
		// connect under the same callback policy as event delivery, and its
		// authorize page redirects only to the README's callback and
		// connectord's own, never anywhere a link names.
		hookDialer := events.CallbackPolicy{AllowPrivate: cfg.CallbackAllowPrivate}.Dialer()
		fk := fakekeap.New(fakekeap.Options{Logger: log.With().Str("component", "fakekeap").Logger(),
			HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: hookDialer.DialContext},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}})
		defer fk.Close()
		// The fake sends users back only to registered redirect URIs: the
		// README journey's placeholder and connectord's own connect callback.
		fk.RegisterClient(sandboxClientID, sandboxClientSecret, "https://www.yourcallbackurl.com", cfg.PublicURL+connect.CallbackPath)
		fk.AddServiceAccountKey(sandboxServiceKey)
		fk.AddLegacyKey(sandboxLegacyApp, sandboxLegacyKey)
		fk.SeedContacts(25)
		fake = fk
		cfg.Endpoints = elements.Endpoints{
			AuthorizationURL: cfg.PublicURL + "/sandbox/keap/app/oauth/authorize",
			TokenURL:         selfURL + "/sandbox/keap/token",
			APIURL:           selfURL + "/sandbox/keap",
		}
		log.Warn().Str("client_id", sandboxClientID).Str("client_secret", sandboxClientSecret).
			Str("service_account_key", sandboxServiceKey).Str("legacy_app", sandboxLegacyApp).Str("legacy_key", sandboxLegacyKey).
			Msg("sandbox: a fake Keap runs at /sandbox/keap and accepts these made-up credentials; nothing reaches the real Keap")
	}

	catalog, err := elements.Load(map[string]elements.Endpoints{"infusionsoft": cfg.Endpoints})
	if err != nil {
		return err
	}
	// One client for every call to Keap: the proxy's and the hubs', token
	// refreshes, key checks, hooks and polling.
	keapHTTP := upstream.NewHTTPClient(upstream.HTTPOptions{Timeout: cfg.KeapTimeout, TLSHandshakeTimeout: cfg.KeapTLSHandshakeTimeout})
	// Calls built elsewhere (x/oauth2's token refreshes, key checks) carry
	// the request's trace too; upstream sets it on the others itself.
	keapHTTP.Transport = &trace.Transport{Base: keapHTTP.Transport}
	// Keap's quotas, shared with the other replicas through the database.
	quotas := quota.New(quota.Options{Client: cfg.Quotas.Client, Key: cfg.Quotas.Key, MaxWait: cfg.Quotas.MaxWait,
		Lease: cfg.Quotas.Lease, Ledger: db, Log: log.With().Str("component", "quota").Logger()})
	mx := metrics.New(metrics.Options{OrgLabels: cfg.MetricsOrgLabels, DB: db, Quotas: quotas, Log: log.With().Str("component", "metrics").Logger()})
	tok := tokens.New(db, catalog, tokens.Options{
		Margin: cfg.Refresh.Margin, PollInterval: cfg.Refresh.PollInterval, Workers: cfg.Refresh.Workers,
		Client: keapHTTP, Log: log.With().Str("component", "tokens").Logger(), Observer: mx,
	})
	keapOpts := upstream.Options{HTTP: keapHTTP, Quotas: quotas, Log: log.With().Str("component", "upstream").Logger(), Observer: mx}
	if cfg.KeapRateLimitOff {
		keapOpts.KeyRate, keapOpts.ClientRate = rate.Inf, rate.Inf
		log.Warn().Msg("CONNECTORD_KEAP_RATE_LIMIT_OFF: calls to Keap are not rate-limited; Keap will refuse bursts over its quotas")
	}
	keapClient := upstream.New(tok, keapOpts)
	callbacks := events.CallbackPolicy{AllowPrivate: cfg.CallbackAllowPrivate}
	hooks := events.NewHooks(db, catalog, keapClient, events.HookOptions{
		PublicURL: cfg.PublicURL, CheckInterval: cfg.HookCheckInterval, Log: log.With().Str("component", "hooks").Logger(),
	})
	insts, err := instances.NewService(db, catalog, instances.Options{
		Keys: &keap.Client{HTTP: keapHTTP}, Callbacks: callbacks, HTTP: keapHTTP,
		Hooks: hooks, ResolveCacheTTL: cfg.AuthCacheTTL,
	})
	if err != nil {
		return err
	}
	connector, err := connect.New(connect.Options{
		Store: db, Instances: insts, Catalog: catalog, PublicURL: cfg.PublicURL,
		Log: log.With().Str("component", "connect").Logger(),
	})
	if err != nil {
		return err
	}
	hubService := hubs.New(insts, keapClient, hubs.Options{})
	web, err := console.New(console.Options{
		Log: log.With().Str("component", "console").Logger(), Catalog: catalog,
		Sessions:  tenants.NewSessions(db, cfg.ConsoleSessionTTL, time.Now),
		Instances: insts, Tokens: tok, Events: db, Hooks: hooks, Hubs: hubService,
		Connect: connector, PublicURL: cfg.PublicURL, SessionTTL: cfg.ConsoleSessionTTL,
		Audit: db, // sign-ins and the changes made in the console (issue 14)
	})
	if err != nil {
		return err
	}
	auth := tenants.NewAuthCache(tenants.NewService(db), cfg.AuthCacheTTL, time.Now)
	bridge, err := xmlrpcbridge.New(keapClient, catalog, log.With().Str("component", "xmlrpcbridge").Logger())
	if err != nil {
		return err
	}
	bridgeKeys := xmlrpcbridge.NewKeys(db)
	// GET /metrics is on the API's listener unless CONNECTORD_METRICS_ADDR
	// gives it one of its own.
	var metricsOnAPI http.Handler
	if cfg.MetricsAddr == "" {
		metricsOnAPI = mx.Handler()
	}
	handler := httpapi.Routes(httpapi.Deps{
		Log:             log,
		Catalog:         catalog,
		Tenants:         auth,
		Instances:       insts,
		Tokens:          tok,
		DB:              db,
		Sandbox:         fake,
		Hubs:            hubService,
		Proxy:           proxy.New(insts, keapClient, proxy.XMLRPC{Sunset: cfg.XMLRPCSunset, Bridge: bridge}),
		Events:          db,
		Receiver:        events.NewReceiver(db, catalog, time.Now),
		Hooks:           hooks,
		BodyReadTimeout: cfg.HTTP.BodyReadTimeout,
		Console:         web.Handler(),
		Connect:         connector,
		Quotas:          upstream.QuotaView{Instances: insts, Quotas: quotas},
		XMLRPC:          &xmlrpcbridge.Endpoint{Bridge: bridge, Keys: bridgeKeys, Auth: auth, Instance: insts},
		BridgeKey:       bridgeKeys,

		AuthFailuresPerMinute: cfg.AuthFailuresPerMinute,
		Metrics:               mx,
		Scrape:                metricsOnAPI,
		Audit:                 db,
	})
	delivery := events.NewDelivery(db, catalog, events.DeliveryOptions{
		BackoffBase: cfg.DeliveryBackoffBase, Lease: cfg.DeliveryLease, Policy: callbacks,
		Log: log.With().Str("component", "delivery").Logger(), Observer: mx,
	})
	poller := events.NewPoller(db, catalog, keapClient, events.PollerOptions{
		IntervalOverride: cfg.PollerIntervalOverride, Lease: cfg.PollerLease, Log: log.With().Str("component", "poller").Logger(), Observer: mx,
	})

	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("CONNECTORD_METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
		}
		defer metricsLn.Close()
	}
	srv := newHTTPServer(ctx, cfg.HTTP, handler, log)
	limited, maxConns := limitConnections(ln, cfg.HTTP.MaxConnections, log)

	// The server and the background workers run as one group: when ctx ends
	// or one of them fails, all stop, and serve returns once every one has.
	// The workers finish what they are on first (a refresh, a delivery, a
	// page, an instance's hooks) and record it, before the pool closes.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(limited); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info().Msg("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	worker := func(run func(context.Context)) { g.Go(func() error { run(gctx); return nil }) }
	worker(tok.Run)
	worker(delivery.Run)
	worker(func(ctx context.Context) {
		db.ListenNotificationsDue(ctx, time.Second, delivery.Wake, func(err error) {
			log.Warn().Err(err).Msg("listen for due notifications; deliveries fall back to polling until it reconnects")
		})
	})
	worker(func(ctx context.Context) {
		pruneDelivered(ctx, db, cfg.EventsRetention, log.With().Str("component", "retention").Logger())
	})
	worker(func(ctx context.Context) {
		pruneAudit(ctx, db, cfg.AuditRetention, log.With().Str("component", "retention").Logger())
	})
	worker(hooks.Run)
	worker(poller.Run)
	worker(quotas.Run) // hands this replica's slices back when ctx ends
	if metricsLn != nil {
		serveMetrics(gctx, g, metricsLn, mx.Handler(), log)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("public_url", cfg.PublicURL).Str("version", version).
		Bool("sandbox", *sandbox).Int("max_connections", maxConns).Msg("listening")
	return g.Wait()
}

// serveMetrics serves GET /metrics alone on ln (CONNECTORD_METRICS_ADDR),
// with net/http's server, in g until ctx ends.
func serveMetrics(ctx context.Context, g *errgroup.Group, ln net.Listener, h http.Handler, log zerolog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	log.Info().Str("metrics_addr", ln.Addr().String()).Msg("metrics listening")
}

// pruneAudit deletes audit log entries older than retention
// (CONNECTORD_AUDIT_RETENTION), at start and then hourly, until ctx ends.
func pruneAudit(ctx context.Context, db *store.DB, retention time.Duration, log zerolog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := db.PruneAudit(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn().Err(err).Msg("prune the audit log; will try again in an hour")
		case n > 0:
			log.Info().Int64("deleted", n).Dur("retention", retention).Msg("pruned the audit log")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneDelivered deletes delivered notifications older than retention, at
// start and then hourly, until ctx ends. Replicas doing it at once is harmless.
func pruneDelivered(ctx context.Context, db *store.DB, retention time.Duration, log zerolog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := db.PruneDelivered(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn().Err(err).Msg("prune delivered notifications; will try again in an hour")
		case n > 0:
			log.Info().Int64("deleted", n).Dur("retention", retention).Msg("pruned delivered notifications")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loopbackAddr turns a wildcard listening address into one this process can call.
func loopbackAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// apperrMessage returns the caller-facing message of an application error.
func apperrMessage(err error) (string, bool) {
	if e, ok := apperr.As(err); ok && e.Code != apperr.Internal {
		return e.Message, true
	}
	return "", false
}

// checkKeys refuses to start when stored credentials were sealed with a key the
// configuration no longer holds: better a clear message now than failures later.
func checkKeys(ctx context.Context, db *store.DB, cfg config) error {
	inUse, err := db.KeyIDsInUse(ctx)
	if err != nil {
		return err
	}
	var unknown []string
	for id, n := range inUse {
		if !cfg.Ring.Has(id) {
			unknown = append(unknown, fmt.Sprintf("key %s sealed %d instances", id, n))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("configuration: stored credentials were encrypted with keys that are not configured (%s): set CONNECTORD_ENCRYPTION_KEY_PREVIOUS to the old key", strings.Join(unknown, "; "))
	}
	return nil
}

func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	const help = "Usage: connectord keys rotate\n\nRe-encrypts every instance's stored credentials under CONNECTORD_ENCRYPTION_KEY.\nRun it after moving the old key to CONNECTORD_ENCRYPTION_KEY_PREVIOUS; when it\nfinishes, the previous key is no longer needed.\n"
	rest, done, err := subcommand(args, "rotate", "connectord keys rotate", help, stdout)
	if done || err != nil {
		return err
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	if help, err := parseFlags(fs, rest, stdout, help); help || err != nil {
		return err
	}
	cfg, err := loadServeConfig(getenv)
	if err != nil {
		return err
	}
	db, err := openMigrated(ctx, cfg.DatabaseURL, cfg.Ring)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := checkKeys(ctx, db, cfg); err != nil {
		return err
	}
	actx, rec := audit.StartEach(ctx, audit.Actor{}, audit.KeysRotated, audit.TargetInstance)
	audit.Describe(actx, "", map[string]any{"keyId": cfg.Ring.CurrentID()})
	n, err := db.ResealCredentials(actx)
	if err != nil {
		recordFailed(ctx, db, rec, err)
		return err
	}
	fmt.Fprintf(stdout, "re-encrypted the credentials of %d instances under key %s\n", n, cfg.Ring.CurrentID())
	return nil
}

// recordFailed writes the audit entry of an operator's command that failed;
// a failure to write it is added to nothing: the command's error is the news.
func recordFailed(ctx context.Context, db *store.DB, rec *audit.Record, err error) {
	reason := "internal error"
	if m, ok := apperrMessage(err); ok {
		reason = m
	}
	if e, ok := rec.FailedEntry(reason); ok {
		_ = db.RecordAudit(ctx, e)
	}
}

// openFromEnv opens DATABASE_URL, migrated, for the commands that need no keys.
func openFromEnv(ctx context.Context, getenv func(string) string) (*store.DB, error) {
	var p envProblems
	url := databaseURL(getenv, &p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return openMigrated(ctx, url, nil)
}

// openMigrated opens the database and applies pending migrations: every command
// that touches data starts from the current schema.
func openMigrated(ctx context.Context, url string, ring *secrets.Ring) (*store.DB, error) {
	db, err := store.Open(ctx, url, ring)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
