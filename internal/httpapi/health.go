package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/connectord/connectord/internal/apperr"
)

func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// pinger is the database, as readiness sees it.
type pinger interface {
	Ping(ctx context.Context) error
}

func readyz(db pinger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			writeError(w, r, &apperr.Error{Code: apperr.Unavailable, Message: "the database is not reachable", Err: err})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, apperr.Errorf(apperr.NotFound, "no route %s %s", clip(r.Method), loggedPath(r)))
	})
}

func methodNotAllowed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, apperr.Errorf(apperr.MethodNotAllowed, "method %s is not allowed on %s", clip(r.Method), loggedPath(r)))
	})
}
