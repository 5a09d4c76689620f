// Package audit owns the audit log's vocabulary: its entries, its actions,
// and the pending record a change carries in its context from the request
// (or the operator's command) that asked for it down to the store, which
// writes the entry in the change's own transaction.
//
// It must not touch the database or HTTP: the store writes entries, the
// HTTP layer starts records and writes the failed ones. An entry never holds
// a secret or a configuration value, only configuration keys.
package audit

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Actions recorded in the log.
const (
	InstanceCreated         = "instance.created"
	InstanceChanged         = "instance.changed"
	InstanceDisabled        = "instance.disabled"
	InstanceEnabled         = "instance.enabled"
	InstanceDeleted         = "instance.deleted"
	InstanceTokensRefreshed = "instance.tokens_refreshed"
	InstanceReconnected     = "instance.reconnected"
	EventsRedelivered       = "events.redelivered"
	OrganizationCreated     = "organization.created" // connectord orgs create
	KeysRotated             = "keys.rotated"         // connectord keys rotate, one entry per instance
	KeapAppSet              = "keap_app.set"         // an organization's Keap app credentials, per element
	KeapAppDeleted          = "keap_app.deleted"
	ConnectSessionOpened    = "connect_session.opened"
	InstanceBridgeKeySet    = "instance.bridge_key_set" // POST /instances/{id}/bridge-key (issue 11)
	ConsoleSignIn           = "console.sign_in"         // outcome succeeded or failed
)

// Actions lists every action, for filters to check against.
var Actions = []string{InstanceCreated, InstanceChanged, InstanceDisabled, InstanceEnabled, InstanceDeleted,
	InstanceTokensRefreshed, InstanceReconnected, EventsRedelivered, OrganizationCreated, KeysRotated,
	KeapAppSet, KeapAppDeleted, ConnectSessionOpened, InstanceBridgeKeySet, ConsoleSignIn}

// Outcomes of an entry.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
)

// Operator is the actor of connectord's own commands.
const Operator = "operator"

// Anonymous is the actor of a failed console sign-in: whoever tried is not
// known, and the secrets tried are never recorded.
const Anonymous = "anonymous"

// Target types.
const (
	TargetInstance       = "instance"
	TargetOrganization   = "organization"
	TargetKeapApp        = "keap_app" // no id: the element is in the detail
	TargetConnectSession = "connect_session"
	TargetConsoleSession = "console_session" // no id: sessions are named by their secret token
)

// TargetOf is the type of target action is about.
func TargetOf(action string) string {
	switch action {
	case OrganizationCreated:
		return TargetOrganization
	case KeapAppSet, KeapAppDeleted:
		return TargetKeapApp
	case ConnectSessionOpened:
		return TargetConnectSession
	case ConsoleSignIn:
		return TargetConsoleSession
	}
	return TargetInstance
}

// Entry is one line of the audit log.
type Entry struct {
	ID             int64          `json:"id"`
	At             time.Time      `json:"at"`
	OrganizationID int64          `json:"organizationId,omitempty"`
	UserID         int64          `json:"userId,omitempty"`
	Actor          string         `json:"actor"` // "user <id>" or "operator"
	Action         string         `json:"action"`
	TargetType     string         `json:"targetType,omitempty"`
	TargetID       int64          `json:"targetId,omitempty"`
	RequestID      string         `json:"requestId,omitempty"`
	TraceID        string         `json:"traceId,omitempty"`
	SourceIP       string         `json:"sourceIp,omitempty"`
	Outcome        string         `json:"outcome"`
	Detail         map[string]any `json:"detail"`
}

// Actor is who asks for a change and from where.
type Actor struct {
	OrganizationID int64 // 0 for the operator
	UserID         int64 // 0 for the operator
	RequestID      string
	TraceID        string
	SourceIP       string
}

func (a Actor) name() string {
	if a.UserID == 0 {
		return Operator
	}
	return "user " + strconv.FormatInt(a.UserID, 10)
}

// SignIn is the entry of a console sign-in: a's user and organization
// when it succeeded; when it failed, a names no user, and its organization
// only when the user secret tried is one of that organization's users (the
// organization learns someone holds one of its user secrets; a sign-in
// matching no user has no organization and is seen only by the operator).
func SignIn(a Actor, ok bool) Entry {
	e := Entry{
		OrganizationID: a.OrganizationID, UserID: a.UserID, Actor: a.name(),
		Action: ConsoleSignIn, TargetType: TargetConsoleSession,
		RequestID: a.RequestID, TraceID: a.TraceID, SourceIP: a.SourceIP,
		Outcome: Succeeded, Detail: map[string]any{},
	}
	if !ok {
		e.UserID, e.Actor, e.Outcome = 0, Anonymous, Failed
		e.Detail["reason"] = "the secrets match no user of an organization"
	}
	return e
}

// Record is the audit entry a change owes: started with what is asked,
// refined by the domain code (which action exactly, which keys), written by
// the store in the change's transaction, or as failed when no change was
// committed.
type Record struct {
	mu         sync.Mutex
	actor      Actor
	action     string
	targetType string
	targetID   int64
	detail     map[string]any
	pending    bool // an entry was written in a transaction not yet committed
	committed  bool // an entry was committed
	each       bool // every transaction of the change gets an entry (StartEach)
	failed     string
}

type ctxKey struct{}

// Start returns ctx carrying a new record of action on target (targetID 0
// when the change creates it).
func Start(ctx context.Context, a Actor, action, targetType string, targetID int64) (context.Context, *Record) {
	r := &Record{actor: a, action: action, targetType: targetType, targetID: targetID, detail: map[string]any{}}
	return context.WithValue(ctx, ctxKey{}, r), r
}

// StartEach is Start for an operator's command that changes many targets
// one transaction at a time (keys rotate): each transaction that takes an
// entry writes one, for its own target.
func StartEach(ctx context.Context, a Actor, action, targetType string) (context.Context, *Record) {
	ctx, r := Start(ctx, a, action, targetType, 0)
	r.each = true
	return ctx, r
}

// From returns the record ctx carries, or nil.
func From(ctx context.Context) *Record {
	r, _ := ctx.Value(ctxKey{}).(*Record)
	return r
}

// Describe refines ctx's record, if any: action replaces the action when not
// empty, and detail's entries are added (keys of configuration, counts,
// ids; never values or secrets).
func Describe(ctx context.Context, action string, detail map[string]any) {
	r := From(ctx)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if action != "" {
		r.action = action
	}
	for k, v := range detail {
		r.detail[k] = v
	}
}

// Fail marks ctx's record, if any, as failed for reason even though its
// transaction commits: the action failed, and what it left behind (a token
// refresh Keap refused leaves the instance invalid) is saved with the entry.
func Fail(ctx context.Context, reason string) {
	r := From(ctx)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = reason
}

// Keys returns the keys of m, sorted: what a change names of a configuration.
func Keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Take returns the success entry for a change of target in organization
// orgID (0: the actor's) about to be committed, and marks it pending; ok is
// false when the record already has a committed entry. The store calls it
// inside the change's transaction and Committed after the commit.
func (r *Record) Take(orgID int64, targetID int64) (e Entry, ok bool) {
	if r == nil {
		return Entry{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.committed && !r.each {
		return Entry{}, false
	}
	if targetID != 0 {
		r.targetID = targetID
	}
	r.pending = true
	if r.failed != "" {
		e := r.entry(orgID, Failed)
		e.Detail["reason"] = r.failed
		return e, true
	}
	return r.entry(orgID, Succeeded), true
}

// Committed says the transaction that took the entry committed.
func (r *Record) Committed() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending {
		r.pending, r.committed = false, true
	}
}

// RolledBack says the transaction that took the entry did not commit.
func (r *Record) RolledBack() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = false
}

// FailedEntry returns the entry of a change that failed: ok is false when a
// success entry was committed (the change happened; what failed after it is
// not the change).
func (r *Record) FailedEntry(reason string) (e Entry, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.committed {
		return Entry{}, false
	}
	e = r.entry(0, Failed)
	if reason != "" {
		e.Detail["reason"] = reason
	}
	return e, true
}

// Done says whether a success entry was committed.
func (r *Record) Done() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.committed
}

func (r *Record) entry(orgID int64, outcome string) Entry {
	if orgID == 0 {
		orgID = r.actor.OrganizationID
	}
	detail := make(map[string]any, len(r.detail)+1)
	for k, v := range r.detail {
		detail[k] = v
	}
	return Entry{
		OrganizationID: orgID, UserID: r.actor.UserID, Actor: r.actor.name(),
		Action: r.action, TargetType: r.targetType, TargetID: r.targetID,
		RequestID: r.actor.RequestID, TraceID: r.actor.TraceID, SourceIP: r.actor.SourceIP,
		Outcome: outcome, Detail: detail,
	}
}

// Filter selects entries for GET /audit-logs.
type Filter struct {
	From, To   *time.Time // at >= From, at < To
	Action     string
	InstanceID int64
	Before     int64 // entries with ids below this (the previous page's cursor)
	Limit      int
}
