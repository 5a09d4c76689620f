package console

import (
	"context"
	"crypto/subtle"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/httpapi"
	"github.com/connectord/connectord/internal/tenants"
)

// Prefix is where the console is mounted.
const Prefix = "/console"

// Handler lists every console page, relative to Prefix, where the API's
// router mounts it.
func (c *Console) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	// Browsers say where a request comes from (Sec-Fetch-Site, Origin): a
	// cross-origin form post is refused before any handler runs.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusForbidden, "This form was sent from another site, so it was refused. Open the console at "+c.opt.PublicURL+Prefix+" and send it from there.")
	}))
	r.Use(cop.Handler)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+".")
	})

	r.Handle("/assets/*", http.StripPrefix(Prefix+"/assets/", http.FileServerFS(c.assets)))
	r.Get("/signin", c.signInPage)
	r.Post("/signin", c.signIn)

	r.Group(func(r chi.Router) {
		r.Use(c.requireSession, c.checkCSRF)
		r.Get("/", c.home)
		r.Post("/signout", c.signOut)
		r.Get("/elements", c.elementsPage)
		r.Post("/elements/{key}/connect", c.audited(audit.ConnectSessionOpened, c.connect))
		r.Post("/elements/{key}/instances", c.audited(audit.InstanceCreated, c.createAPIKeyInstance))
		r.Post("/elements/{key}/app", c.audited(audit.KeapAppSet, c.saveApp))
		r.Get("/connected", c.connected)
		r.Get("/instances", c.instancesPage)
		r.Get("/instances/{id}", c.instancePage)
		r.Post("/instances/{id}/configuration", c.audited(audit.InstanceChanged, c.editConfiguration))
		r.Post("/instances/{id}/refresh", c.audited(audit.InstanceTokensRefreshed, c.refresh))
		r.Post("/instances/{id}/reconnect", c.audited(audit.ConnectSessionOpened, c.reconnect))
		r.Post("/instances/{id}/disable", c.audited(audit.InstanceChanged, c.setDisabled(true)))
		r.Post("/instances/{id}/enable", c.audited(audit.InstanceChanged, c.setDisabled(false)))
		r.Get("/instances/{id}/delete", c.deletePage)
		r.Post("/instances/{id}/delete", c.audited(audit.InstanceDeleted, c.deleteInstance))
		r.Post("/instances/{id}/events/redeliver", c.audited(audit.EventsRedelivered, c.redeliverFailed))
		r.Post("/instances/{id}/events/{eventId}/redeliver", c.audited(audit.EventsRedelivered, c.redeliverOne))
		r.Get("/instances/{id}/docs", c.docsPage)
		r.Post("/instances/{id}/docs", c.tryIt)
		if c.opt.Audit != nil {
			r.Get("/audit", c.auditPage)
		}
	})
	return r
}

// audited records the change a form makes in the audit log exactly as the
// API records the same change (httpapi.Audited: same action, the signed-in
// user, the request id and source IP), in the change's transaction.
func (c *Console) audited(action string, h http.HandlerFunc) http.HandlerFunc {
	if c.opt.Audit == nil {
		return h
	}
	return httpapi.Audited(c.opt.Audit, action, c.principal, h).ServeHTTP
}

// securityHeaders go on every console answer: no framing, no referrer to
// other sites, and a policy that lets the page load only its own stylesheet
// and send forms only to connectord.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// cookieName holds the session token.
const cookieName = "connectord_console"

type sessionKey struct{}

// signedIn is the session of a request and its token.
type signedIn struct {
	tenants.ConsoleSession
	token string
}

func sessionOf(ctx context.Context) *signedIn {
	s, _ := ctx.Value(sessionKey{}).(*signedIn)
	return s
}

// requireSession lets signed-in requests through; others are sent to sign in
// (a page) or refused (a form post, which would lose what was typed anyway).
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var token string
		if ck, err := r.Cookie(cookieName); err == nil {
			token = ck.Value
		}
		sess, err := c.opt.Sessions.Session(r.Context(), token)
		if err != nil {
			if token != "" {
				c.clearCookie(w)
			}
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				to := Prefix + "/signin"
				if token != "" {
					to += "?expired=1"
				}
				http.Redirect(w, r, to, http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "You are not signed in, or your session expired. Sign in again and repeat what you did.")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, &signedIn{ConsoleSession: sess, token: token})))
	})
}

// csrfField is the form field every console form carries.
const csrfField = "csrf"

// checkCSRF refuses a state-changing request whose form does not carry the
// session's anti-forgery token. It backs up the cross-origin check for
// browsers that send neither Sec-Fetch-Site nor Origin.
func (c *Console) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		want := tenants.CSRFToken(sessionOf(r.Context()).token)
		got := r.PostFormValue(csrfField)
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			c.fail(w, r, http.StatusForbidden, "This form is missing its security token or carries a stale one, so it was refused. Reload the page and send it again.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) setCookie(w http.ResponseWriter, token string, sess tenants.ConsoleSession) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: token, Path: Prefix, Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (c *Console) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}
