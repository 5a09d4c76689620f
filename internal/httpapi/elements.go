package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/oauthflow"
)

func listElements(catalog *elements.Catalog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, catalog.All())
	})
}

func lookupElement(catalog *elements.Catalog, r *http.Request) (*elements.Element, error) {
	key := chi.URLParam(r, "keyOrId")
	el, ok := catalog.Lookup(key)
	if !ok {
		return nil, apperr.Errorf(apperr.NotFound, "no element %q; the elements are %s", key, strings.Join(catalog.Keys(), ", "))
	}
	return el, nil
}

func getElement(catalog *elements.Catalog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		el, err := lookupElement(catalog, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, el)
	})
}

// oauthURL answers GET /elements/{keyOrId}/oauth/url. Like Open Connectors it
// needs no Authorization header: it only composes the provider's URL.
func oauthURL(catalog *elements.Catalog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		el, err := lookupElement(catalog, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		q := query(r)
		var missing []string
		for _, name := range []string{"apiKey", "apiSecret", "callbackUrl"} {
			if strings.TrimSpace(q.Get(name)) == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			writeError(w, r, apperr.Errorf(apperr.Invalid, "missing required query parameters: %s", strings.Join(missing, ", ")))
			return
		}
		cb := q.Get("callbackUrl")
		if !instances.IsHTTPURL(cb) {
			writeError(w, r, apperr.Errorf(apperr.Invalid, "callbackUrl %q is not an absolute http or https URL", cb))
			return
		}
		p := &oauthflow.Provider{AuthURL: el.Endpoints.AuthorizationURL}
		writeJSON(w, http.StatusOK, map[string]string{
			"element":  el.Key,
			"oauthUrl": p.AuthorizeURL(q.Get("apiKey"), cb, "full", q.Get("state")),
		})
	})
}

// elementOpenAPI answers GET /elements/{keyOrId}/openapi.json: the element's
// hub resources as an OpenAPI document, generated from its definition.
func elementOpenAPI(catalog *elements.Catalog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		el, err := lookupElement(catalog, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, el.OpenAPI())
	})
}
