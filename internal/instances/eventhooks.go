package instances

import (
	"context"
	"strings"

	"github.com/connectord/connectord/internal/elements"
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

// keyEventObjects names the resources that produce events (comma-separated).
const keyEventObjects = "event.objects"

// checkWebhookEvents refuses webhook-mode settings that Keap REST hooks cannot
// serve: resources in event.objects that have no hooks, and a legacy API key,
// which cannot call Keap's REST API where hooks are registered.
func checkWebhookEvents(el *elements.Element, st settings, authType, mode string, p *problems) {
	if mode != "webhook" {
		return
	}
	var bad, good []string
	for _, name := range strings.Split(value(el, st.public, keyEventObjects), ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if r, ok := el.Resource(name); !ok || r.Events == nil || len(r.Events.EventKeys) == 0 {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		for _, r := range el.Resources {
			if r.Events != nil && len(r.Events.EventKeys) > 0 {
				good = append(good, r.Name)
			}
		}
		p.add("%s: %s have no Keap REST hooks, so webhook mode cannot report them (resources with hooks: %s)",
			keyEventObjects, strings.Join(bad, ", "), strings.Join(good, ", "))
	}
	if authType == AuthAPIKey && !keap.IsServiceAccountKey(st.secrets[KeyAPIKey]) {
		p.add("a legacy API key cannot register Keap REST hooks: use event.vendor.type polling, or a service account key or OAuth for webhook mode")
	}
}
