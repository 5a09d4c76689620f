package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/tenants"
)

// instanceService is what the instance handlers need.
type instanceService interface {
	Create(ctx context.Context, p tenants.Principal, pathElement string, req instances.CreateRequest) (*instances.View, error)
	Replace(ctx context.Context, p tenants.Principal, id int64, req instances.CreateRequest) (*instances.View, error)
	Get(ctx context.Context, p tenants.Principal, id int64) (*instances.View, error)
	List(ctx context.Context, p tenants.Principal, tags []string) ([]*instances.View, error)
	Update(ctx context.Context, p tenants.Principal, id int64, req instances.UpdateRequest) (*instances.View, error)
	Delete(ctx context.Context, p tenants.Principal, id int64) error
	Configuration(ctx context.Context, p tenants.Principal, id int64) ([]instances.ConfigEntry, error)
	ConfigEntryFor(ctx context.Context, p tenants.Principal, id int64, key string) (instances.ConfigEntry, error)
	SetConfiguration(ctx context.Context, p tenants.Principal, id int64, key string, req instances.SetConfigurationRequest) (instances.ConfigEntry, error)
}

func instanceID(r *http.Request) (int64, error) {
	s := chi.URLParam(r, "id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.Errorf(apperr.Invalid, "instance id %q is not a positive whole number", s)
	}
	return id, nil
}

func createInstance(svc instanceService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req instances.CreateRequest
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, r, err)
			return
		}
		v, err := svc.Create(r.Context(), principal(r), chi.URLParam(r, "keyOrId"), req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func listInstances(svc instanceService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tags []string
		for _, v := range append(query(r)["tags"], query(r)["tags[]"]...) {
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					tags = append(tags, t)
				}
			}
		}
		list, err := svc.List(r.Context(), principal(r), tags)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
}

// instanceHandler adapts a call on one instance into a handler.
func instanceHandler(call func(r *http.Request, id int64) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := instanceID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		v, err := call(r, id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func getInstance(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		return svc.Get(r.Context(), principal(r), id)
	})
}

func patchInstance(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		var req instances.UpdateRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		return svc.Update(r.Context(), principal(r), id, req)
	})
}

func putInstance(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		var req instances.CreateRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		return svc.Replace(r.Context(), principal(r), id, req)
	})
}

func deleteInstance(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		return nil, svc.Delete(r.Context(), principal(r), id)
	})
}

func getConfiguration(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		return svc.Configuration(r.Context(), principal(r), id)
	})
}

func getConfigEntry(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		return svc.ConfigEntryFor(r.Context(), principal(r), id, chi.URLParam(r, "configKey"))
	})
}

func patchConfigEntry(svc instanceService) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		var req instances.SetConfigurationRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		return svc.SetConfiguration(r.Context(), principal(r), id, chi.URLParam(r, "configKey"), req)
	})
}
