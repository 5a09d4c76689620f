package instances

import "context"

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

// noHooks is the EventHooks of a Service built without any.
type noHooks struct{}

func (noHooks) Changed(int64)                     {}
func (noHooks) Remove(context.Context, *Instance) {}
