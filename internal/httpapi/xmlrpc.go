package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/xmlrpcbridge"
)

// xmlrpcServer answers XML-RPC calls (internal/xmlrpcbridge's Endpoint).
type xmlrpcServer interface {
	Answer(ctx context.Context, creds *tenants.Credentials, body []byte) (xmlrpcbridge.Answer, error)
}

// bridgeKeys makes instances' bridge keys (internal/xmlrpcbridge's Keys).
type bridgeKeys interface {
	Rotate(ctx context.Context, p tenants.Principal, id int64) (xmlrpcbridge.NewKey, error)
}

// xmlrpcBridge serves Keap's XML-RPC API on connectord's host. Like Keap's,
// it answers 200 with a fault for every refusal a caller's XML-RPC library
// should show (a bad key, a bad call, Keap's no); only a body that cannot be
// read gets an HTTP error.
func xmlrpcBridge(bridge xmlrpcServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, r, apperr.Errorf(apperr.TooLarge, "request body is larger than %d bytes", MaxBodyBytes))
				return
			}
			writeError(w, r, apperr.Errorf(apperr.Invalid, "the request body could not be read"))
			return
		}
		var creds *tenants.Credentials
		if h := r.Header.Get("Authorization"); strings.TrimSpace(h) != "" {
			c, err := tenants.ParseAuthorization(h)
			if err != nil {
				writeError(w, r, err)
				return
			}
			creds = &c
		}
		a, err := bridge.Answer(r.Context(), creds, body)
		if err != nil {
			logger(r).Error().Err(err).Msg("xml-rpc bridge")
		}
		if i := infoOf(r.Context()); i != nil {
			i.principal = a.Principal
		}
		w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(a.Body)
	})
}

func rotateBridgeKey(keys bridgeKeys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := instanceID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		k, err := keys.Rotate(r.Context(), principal(r), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, k)
	})
}
