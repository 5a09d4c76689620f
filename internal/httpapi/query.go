package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
)

// parseQuery reads a query string into its parameters, the one place
// connectord does. Parameters are separated by & only: a ; is part of a
// value (Keap's REST v2 filters are written field==value;field2==value2),
// where url.ParseQuery drops the whole parameter. A name or value that is
// not validly percent-escaped is an error naming the parameter, where
// url.ParseQuery would leave it out and the request would go on as if it
// had not been sent.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "query parameter %q is not validly escaped: write %% as %%25 and escape other special characters as %%XX", rawName)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "query parameter %s is not validly escaped (%q): write %% as %%25 and escape other special characters as %%XX", name, rawValue)
		}
		q[name] = append(q[name], value)
	}
	return q, nil
}

// checkQuery answers 400 for a malformed query string, on every route, and
// keeps the parsed parameters for the handler (query).
func checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if i := infoOf(r.Context()); i != nil {
			i.query = q
		}
		next.ServeHTTP(w, r)
	})
}

// query returns the request's query parameters, as checkQuery parsed them.
func query(r *http.Request) url.Values {
	if i := infoOf(r.Context()); i != nil && i.query != nil {
		return i.query
	}
	if r.URL.RawQuery == "" {
		return url.Values{}
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return url.Values{} // checkQuery refused it before any handler
	}
	return q
}
