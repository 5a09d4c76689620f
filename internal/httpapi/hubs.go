package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/hubs"
	"github.com/connectord/connectord/internal/tenants"
)

// Hub response headers.
const (
	NextPageHeader = "Elements-Next-Page-Token" // the cursor of the next page; absent on the last
	UpsertHeader   = "Elements-Upsert-Result"   // created or updated, on an upsert
)

// hubService is what the hub routes need (internal/hubs).
type hubService interface {
	Call(ctx context.Context, p tenants.Principal, req hubs.Request) (*hubs.Result, error)
	Countries(ctx context.Context, p tenants.Principal, hub string) ([]hubs.Locale, error)
	Provinces(ctx context.Context, p tenants.Principal, hub, country string) ([]hubs.Locale, error)
}

// hubResource serves /hubs/{hub}/{resource}[/{id}[/{sub}[/{subId}]]].
func hubResource(h hubService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readHubBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		res, err := h.Call(r.Context(), principal(r), hubs.Request{
			Hub: chi.URLParam(r, "hub"), Resource: chi.URLParam(r, "resource"), ID: chi.URLParam(r, "id"),
			Sub: chi.URLParam(r, "sub"), SubID: chi.URLParam(r, "subId"),
			Method: r.Method, Query: query(r), Body: body,
		})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if res.NextPage != "" {
			w.Header().Set(NextPageHeader, res.NextPage)
		}
		if res.Upsert != "" {
			w.Header().Set(UpsertHeader, res.Upsert)
		}
		if len(res.Body) == 0 {
			w.WriteHeader(res.Status)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(res.Body))}
		w.WriteHeader(res.Status)
		_, _ = w.Write(res.Body)
	})
}

// hubCountries serves GET /hubs/{hub}/lookups/countries.
func hubCountries(h hubService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := h.Countries(r.Context(), principal(r), chi.URLParam(r, "hub"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
}

// hubProvinces serves GET /hubs/{hub}/lookups/countries/{code}/provinces.
func hubProvinces(h hubService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := h.Provinces(r.Context(), principal(r), chi.URLParam(r, "hub"), chi.URLParam(r, "code"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
}

// readHubBody reads a hub call's body, which is handed to Keap as given: it
// must be JSON (checked by the hubs), at most MaxBodyBytes.
func readHubBody(r *http.Request) ([]byte, error) {
	if err := requireJSON(r); err != nil {
		return nil, err
	}
	return readBody(r)
}
