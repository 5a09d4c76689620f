package httpapi

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/connect"
	"github.com/connectord/connectord/internal/tenants"
)

// connectService is what the connect handlers need (internal/connect).
type connectService interface {
	PutApp(ctx context.Context, p tenants.Principal, keyOrID string, req connect.AppRequest) (*connect.AppView, error)
	GetApp(ctx context.Context, p tenants.Principal, keyOrID string) (*connect.AppView, error)
	DeleteApp(ctx context.Context, p tenants.Principal, keyOrID string) error
	CreateSession(ctx context.Context, p tenants.Principal, req connect.Request) (*connect.Created, error)
	Get(ctx context.Context, p tenants.Principal, id int64) (*connect.View, error)
	Open(ctx context.Context, token string) (*connect.Page, error)
	Authorize(ctx context.Context, sessionID int64, browser string) (string, error)
	Finish(ctx context.Context, cb connect.Callback) (string, error)
	PublicURL() string
	AuthorizeOrigins() []string
}

func putOAuthApp(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req connect.AppRequest
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, r, err)
			return
		}
		v, err := svc.PutApp(r.Context(), principal(r), chi.URLParam(r, "keyOrId"), req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func getOAuthApp(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := svc.GetApp(r.Context(), principal(r), chi.URLParam(r, "keyOrId"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func deleteOAuthApp(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.DeleteApp(r.Context(), principal(r), chi.URLParam(r, "keyOrId")); err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

func createConnectSession(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req connect.Request
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, r, err)
			return
		}
		v, err := svc.CreateSession(r.Context(), principal(r), req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, v)
	})
}

func getConnectSession(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := chi.URLParam(r, "id")
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			writeError(w, r, apperr.Errorf(apperr.Invalid, "connect session id %q is not a positive whole number", s))
			return
		}
		v, err := svc.Get(r.Context(), principal(r), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, v)
	})
}

// The connect pages: server-rendered, no script, one inline style sheet
// allowed by its hash.

//go:embed pages/connect.html
var pageFS embed.FS

var pages = template.Must(template.ParseFS(pageFS, "pages/connect.html"))

const pageStyle = `body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#f6f7f9;margin:0}
main{max-width:34rem;margin:2rem auto;padding:1.5rem;background:#fff;border:1px solid #d0d4da;border-radius:8px}
h1{font-size:1.5rem;margin-top:0}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}.muted{color:#555}
button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#0b5cad;color:#fff;cursor:pointer}
button:focus{outline:3px solid #f5a623;outline-offset:2px}
@media (max-width:30rem){main{margin:0;border-radius:0;border-width:0 0 1px}}`

// pageStyleHash is the style sheet's CSP source: the page allows this one
// inline style and nothing else.
var pageStyleHash = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// pageData is what the templates render.
type pageData struct {
	Title     string
	Style     template.CSS
	Message   string
	RequestID string
	Page      *connect.Page
	Expires   string
	Action    string
}

// setPageHeaders sets the headers every connect page carries: no framing, no
// referrer (the page's URL carries the session token), no caching, and a
// policy that allows only the page's own style sheet and a form that goes to
// connectord and on to Keap.
func setPageHeaders(w http.ResponseWriter, formTargets []string) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+pageStyleHash+"; form-action 'self' "+strings.Join(formTargets, " ")+
		"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

func renderPage(w http.ResponseWriter, r *http.Request, svc connectService, status int, name string, d pageData) {
	setPageHeaders(w, svc.AuthorizeOrigins())
	d.Style = template.CSS(pageStyle)
	d.RequestID = RequestID(r.Context())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		logger(r).Error().Err(err).Str("template", name).Msg("render connect page")
	}
}

// pageError shows err as a page: its message for the user, the status the
// API would answer; internal errors are logged and shown generically.
func pageError(w http.ResponseWriter, r *http.Request, svc connectService, err error) {
	e, ok := apperr.As(err)
	if !ok || e.Code == apperr.Internal {
		logger(r).Error().Err(err).Msg("internal error")
		e = &apperr.Error{Code: apperr.Internal, Message: "Something went wrong on our side. Try again, or ask your application for a new link."}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	renderPage(w, r, svc, status, "message", pageData{Title: "Cannot connect", Message: e.Message})
}

// seeOther sends the browser on to target, an absolute URL, with no body.
func seeOther(w http.ResponseWriter, svc connectService, target string) {
	setPageHeaders(w, svc.AuthorizeOrigins())
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}

// browserCookie names the cookie binding session id to the browser that
// opened its connect page; one per session, so two sessions in two tabs do
// not undo each other.
func browserCookie(id int64) string { return "connectord_connect_" + strconv.FormatInt(id, 10) }

// connectPage is the page an application sends its end user to.
func connectPage(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, err := svc.Open(r.Context(), r.URL.Query().Get("token"))
		if err != nil {
			pageError(w, r, svc, err)
			return
		}
		if page.Redirect != "" {
			seeOther(w, svc, page.Redirect)
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name: browserCookie(page.SessionID), Value: page.Browser, Path: connect.PagePath,
			Expires: page.ExpiresAt, MaxAge: max(1, int(time.Until(page.ExpiresAt)/time.Second)),
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(svc.PublicURL(), "https://"),
		})
		renderPage(w, r, svc, http.StatusOK, "connect", pageData{
			Title: "Connect " + page.ElementName, Page: page,
			Expires: page.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"),
			Action:  connect.PagePath + "/authorize",
		})
	})
}

// connectAuthorize is the connect page's form: it sends the browser to Keap.
func connectAuthorize(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			pageError(w, r, svc, apperr.Errorf(apperr.Invalid, "the form could not be read: open the connect link again"))
			return
		}
		id, err := strconv.ParseInt(r.PostForm.Get("session"), 10, 64)
		if err != nil || id <= 0 {
			pageError(w, r, svc, apperr.Errorf(apperr.Invalid, "the form names no connect session: open the connect link again"))
			return
		}
		var browser string
		if c, err := r.Cookie(browserCookie(id)); err == nil {
			browser = c.Value
		}
		target, err := svc.Authorize(r.Context(), id, browser)
		if err != nil {
			pageError(w, r, svc, err)
			return
		}
		seeOther(w, svc, target)
	})
}

// connectCallback is where Keap returns the user: the outcome goes to the
// session's own redirect URL, never anywhere else.
func connectCallback(svc connectService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		target, err := svc.Finish(r.Context(), connect.Callback{
			State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"),
			Browser: func(id int64) string {
				if c, err := r.Cookie(browserCookie(id)); err == nil {
					return c.Value
				}
				return ""
			},
		})
		if err != nil {
			pageError(w, r, svc, err)
			return
		}
		if u, perr := url.Parse(target); perr != nil || target == "" || !u.IsAbs() {
			pageError(w, r, svc, apperr.Errorf(apperr.Internal, "the session's redirect URL %q does not parse", target))
			return
		}
		seeOther(w, svc, target)
	})
}
