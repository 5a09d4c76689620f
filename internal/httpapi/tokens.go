package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/connectord/connectord/internal/instances"
)

// tokenRefresher is what the token endpoint needs.
type tokenRefresher interface {
	ForceRefresh(ctx context.Context, orgID, id int64) (*instances.Instance, error)
}

// refreshResult answers PUT /instances/{id}/tokens/refresh.
type refreshResult struct {
	ID               int64      `json:"id"`
	RefreshTime      string     `json:"oauth.user.refresh_time"`
	TokenExpiresDate *time.Time `json:"tokenExpiresDate,omitempty"`
	NextRefreshDate  *time.Time `json:"nextRefreshDate,omitempty"`
}

func refreshTokens(tok tokenRefresher) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		inst, err := tok.ForceRefresh(r.Context(), principal(r).OrganizationID, id)
		if err != nil {
			return nil, err
		}
		res := refreshResult{ID: inst.ID, TokenExpiresDate: inst.TokenExpiresAt, NextRefreshDate: inst.RefreshDueAt}
		if inst.RefreshedAt != nil {
			res.RefreshTime = strconv.FormatInt(inst.RefreshedAt.UnixMilli(), 10)
		}
		return res, nil
	})
}
