package upstream

import (
	"context"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/quota"
	"github.com/connectord/connectord/internal/tenants"
)

// InstanceLoader reads an organization's instance with its credentials (the instances package).
type InstanceLoader interface {
	Load(ctx context.Context, p tenants.Principal, id int64) (*instances.Instance, *elements.Element, error)
}

// QuotaView says which of Keap's quotas an instance draws on, with their
// figures over every replica (GET /instances/{id}/quota).
type QuotaView struct {
	Instances InstanceLoader
	Quotas    *quota.Scheduler
}

// InstanceQuota returns the figures of each quota instance id draws on: its
// OAuth client id's, or its API key's.
func (v QuotaView) InstanceQuota(ctx context.Context, p tenants.Principal, id int64) ([]quota.Figures, error) {
	inst, el, err := v.Instances.Load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	t := TargetFor(el, inst)
	if t.AuthType == instances.AuthOAuth2 && t.ClientID == "" || t.AuthType != instances.AuthOAuth2 && t.APIKey == "" {
		return []quota.Figures{}, nil // no credential yet: no quota drawn on
	}
	f, err := v.Quotas.Figures(ctx, QuotaKey(t), inst.ID, inst.OrganizationID)
	if err != nil {
		return nil, err
	}
	return []quota.Figures{f}, nil
}
