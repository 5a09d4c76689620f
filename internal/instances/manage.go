package instances

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/tenants"
)

// Get returns one of the organization's instances.
func (s *Service) Get(ctx context.Context, p tenants.Principal, id int64) (*View, error) {
	inst, el, err := s.load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return s.render(el, inst), nil
}

// List returns the organization's instances that carry every tag in tags.
func (s *Service) List(ctx context.Context, p tenants.Principal, tags []string) ([]*View, error) {
	list, err := s.store.Instances(ctx, p.OrganizationID, tags)
	if err != nil {
		return nil, err
	}
	out := make([]*View, 0, len(list))
	for _, inst := range list {
		el, err := s.elementOf(inst)
		if err != nil {
			return nil, err
		}
		out = append(out, s.render(el, inst))
	}
	return out, nil
}

// UpdateRequest is the body of PATCH /instances/{id}: every field is optional and
// configuration entries are merged into the instance's (null removes one).
type UpdateRequest struct {
	Name          *string                    `json:"name"`
	Tags          *[]string                  `json:"tags"`
	Disabled      *bool                      `json:"disabled"`
	Configuration map[string]json.RawMessage `json:"configuration"`
}

// Update changes an instance in place. A new API key or application name is
// checked with the provider before it is saved; a new secret is encrypted anew.
func (s *Service) Update(ctx context.Context, p tenants.Principal, id int64, req UpdateRequest) (*View, error) {
	cur, el, err := s.load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	var pr problems
	var name string
	if req.Name != nil {
		name = checkName(*req.Name, &pr)
	}
	var tags []string
	if req.Tags != nil {
		tags = checkTags(*req.Tags, &pr)
	}
	changes := parseConfig(el, req.Configuration, &pr)
	if v, ok := changes[KeyAuthType]; ok && (v == nil || *v != cur.AuthType) {
		pr.add("authentication.type cannot change with PATCH; re-provision the instance with PUT /instances/%d", id)
	}
	merged := split(el, changes, settings{public: maps.Clone(cur.Config), secrets: maps.Clone(cur.Secrets)})
	merged.public[KeyAuthType] = &cur.AuthType
	checkSettings(el, merged, false, false, &pr)
	s.checkCallback(ctx, changes, &pr)
	if err := pr.err(); err != nil {
		return nil, err
	}
	delete(merged.public, KeyAuthType)
	delete(changes, KeyAuthType)
	_, keyChanged := changes[KeyAPIKey]
	_, appChanged := changes[KeyAppName]
	if cur.AuthType == AuthAPIKey && (keyChanged || appChanged) {
		probe := &Instance{AuthType: cur.AuthType, Config: merged.public, Secrets: merged.secrets}
		if err := s.connect(ctx, el, probe, ""); err != nil {
			return nil, err
		}
	}
	updated, err := s.store.UpdateInstance(ctx, p.OrganizationID, id, func(inst *Instance) error {
		if req.Name != nil {
			inst.Name = name
		}
		if req.Tags != nil {
			inst.Tags = tags
		}
		if req.Disabled != nil {
			inst.Disabled = *req.Disabled
		}
		// Apply only the changes to the locked row, so a token refreshed
		// meanwhile is kept.
		st := split(el, changes, settings{public: inst.Config, secrets: inst.Secrets})
		inst.Config, inst.Secrets = st.public, st.secrets
		if inst.AuthType == AuthAPIKey && (keyChanged || appChanged) {
			inst.Valid, inst.InvalidReason = true, ""
		}
		if _, ok := changes[KeyRefreshInterval]; ok && inst.RefreshDueAt != nil {
			now := s.now()
			inst.RefreshDueAt = &now // the refresher reschedules it at once
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.hooks.Changed(id)
	return s.render(el, updated), nil
}

// Load reads one of the organization's instances, with its credentials, and
// its element: for the services that call Keap for it.
func (s *Service) Load(ctx context.Context, p tenants.Principal, id int64) (*Instance, *elements.Element, error) {
	return s.load(ctx, p, id)
}

// load reads one of the organization's instances and its element.
func (s *Service) load(ctx context.Context, p tenants.Principal, id int64) (*Instance, *elements.Element, error) {
	inst, err := s.store.Instance(ctx, p.OrganizationID, id)
	if err != nil {
		return nil, nil, err
	}
	el, err := s.elementOf(inst)
	if err != nil {
		return nil, nil, err
	}
	return inst, el, nil
}

// Delete removes an instance and its credentials, after its provider hooks
// (best effort: the instance is deleted even when the provider is unreachable).
func (s *Service) Delete(ctx context.Context, p tenants.Principal, id int64) error {
	inst, err := s.store.Instance(ctx, p.OrganizationID, id)
	if err != nil {
		return err
	}
	s.hooks.Remove(ctx, inst)
	return s.store.DeleteInstance(ctx, p.OrganizationID, id)
}

// Configuration lists an instance's configuration entries, secrets masked.
func (s *Service) Configuration(ctx context.Context, p tenants.Principal, id int64) ([]ConfigEntry, error) {
	inst, el, err := s.load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return s.entries(el, inst), nil
}

// ConfigEntryFor returns one configuration entry.
func (s *Service) ConfigEntryFor(ctx context.Context, p tenants.Principal, id int64, key string) (ConfigEntry, error) {
	list, err := s.Configuration(ctx, p, id)
	if err != nil {
		return ConfigEntry{}, err
	}
	for _, e := range list {
		if e.Key == key {
			return e, nil
		}
	}
	return ConfigEntry{}, apperr.Errorf(apperr.NotFound, "instance %d has no configuration entry %q", id, key)
}

// SetConfigurationRequest is the body of PATCH /instances/{id}/configuration/{key}.
type SetConfigurationRequest struct {
	PropertyValue json.RawMessage `json:"propertyValue"`
}

// SetConfiguration changes one configuration entry.
func (s *Service) SetConfiguration(ctx context.Context, p tenants.Principal, id int64, key string, req SetConfigurationRequest) (ConfigEntry, error) {
	if _, err := s.ConfigEntryFor(ctx, p, id, key); err != nil {
		return ConfigEntry{}, err
	}
	if req.PropertyValue == nil {
		return ConfigEntry{}, apperr.Errorf(apperr.Invalid, "missing required field: propertyValue (null removes the entry)")
	}
	if _, err := s.Update(ctx, p, id, UpdateRequest{Configuration: map[string]json.RawMessage{key: req.PropertyValue}}); err != nil {
		return ConfigEntry{}, fmt.Errorf("set %s: %w", key, err)
	}
	return s.ConfigEntryFor(ctx, p, id, key)
}

// Resolve returns the instance an Element token authenticated, with its element,
// ready for calls to the provider: a disabled instance is refused (403), an
// invalid one too (409, with the reason and how to repair it). With
// Options.ResolveCacheTTL the instance may be shared with other callers: read it only.
func (s *Service) Resolve(ctx context.Context, p tenants.Principal) (*Instance, *elements.Element, error) {
	if p.InstanceID == 0 {
		return nil, nil, apperr.Errorf(apperr.Unauthorized, "this call needs an Element part in the Authorization header: 'User <user secret>, Element <instance token>'")
	}
	if inst, el, ok := s.resolved.get(p.OrganizationID, p.InstanceID); ok {
		return inst, el, nil
	}
	gen := s.resolved.generation()
	inst, el, err := s.load(ctx, p, p.InstanceID)
	if err != nil {
		return nil, nil, err
	}
	if inst.Disabled {
		return nil, nil, apperr.Errorf(apperr.Forbidden, "instance %d is disabled; enable it with PATCH /instances/%d {\"disabled\": false}", inst.ID, inst.ID)
	}
	if !inst.Valid {
		return nil, nil, apperr.Errorf(apperr.Conflict, "instance %d is not valid: %s", inst.ID, inst.InvalidReason)
	}
	s.resolved.put(gen, inst, el)
	return inst, el, nil
}
