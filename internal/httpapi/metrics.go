package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// observer is what the routes report to (internal/metrics).
type observer interface {
	ObserveRequest(route, method string, status int, orgID int64, took time.Duration)
	HookDelivery(outcome string, events int)
}

// nopObserver stands in when Deps.Metrics is nil.
type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, int, int64, time.Duration) {}
func (nopObserver) HookDelivery(string, int)                                 {}

// observeRequests reports each request with the route pattern chi matched,
// never the path, which carries ids and, for the hook receiver, a secret.
func observeRequests(obs observer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := ""
			if rc := chi.RouteContext(r.Context()); rc != nil {
				route = rc.RoutePattern()
			}
			obs.ObserveRequest(route, r.Method, ww.Status(), principal(r).OrganizationID, time.Since(start))
		})
	}
}
