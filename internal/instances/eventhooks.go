package instances

import (
	"context"

	"github.com/connectord/connectord/internal/keap"
)

// EventHooks keeps the provider hooks an instance's events arrive through (the
// events package's Hooks).
type EventHooks interface {
	// Changed says the instance was created or changed, so its hooks are
	// looked at now rather than at the next poll.
	Changed(id int64)
	// Remove deletes the instance's hooks at the provider, best effort and
	// bounded in time, before the instance and its credentials are deleted.
	Remove(ctx context.Context, inst *Instance)
}

// noHooks is the EventHooks of a Service that was given none.
type noHooks struct{}

func (noHooks) Changed(int64)                     {}
func (noHooks) Remove(context.Context, *Instance) {}

// UseEventHooks makes the Service tell h about created, changed and deleted instances.
func (s *Service) UseEventHooks(h EventHooks) { s.hooks = h }

func (s *Service) eventHooks() EventHooks {
	if s.hooks == nil {
		return noHooks{}
	}
	return s.hooks
}

// checkEventsAuth refuses events for a legacy API key: it reaches only Keap's
// XML-RPC API, and both ways of getting events (REST hooks, polling the REST
// lists) need the REST API. (Which resources produce events is
// checkEventObjects' part.)
func checkEventsAuth(st settings, authType string, p *problems) {
	if authType == AuthAPIKey && !keap.IsServiceAccountKey(st.secrets[KeyAPIKey]) {
		p.add("a legacy API key reaches only Keap's XML-RPC API, so it can neither register Keap REST hooks nor poll: use a service account key or OAuth for events")
	}
}
