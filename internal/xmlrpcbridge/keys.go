package xmlrpcbridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/tenants"
)

// KeyPrefix starts every bridge key, so that a leaked one is recognisable
// (secret scanners) and never taken for a Keap key.
const KeyPrefix = "cdbk_"

// KeyStore keeps bridge keys' hashes (the store package).
type KeyStore interface {
	SetBridgeKey(ctx context.Context, orgID, instanceID int64, hash []byte) (time.Time, error)
	InstanceByBridgeKeyHash(ctx context.Context, hash []byte) (instanceID, orgID int64, err error)
}

// Keys makes and checks bridge keys: one per instance, shown once, stored hashed.
type Keys struct {
	store KeyStore
}

// NewKeys returns Keys over store.
func NewKeys(store KeyStore) *Keys { return &Keys{store: store} }

// NewKey is a bridge key as shown, once, to the instance's owner.
type NewKey struct {
	InstanceID  int64     `json:"instanceId"`
	BridgeKey   string    `json:"bridgeKey"`
	CreatedDate time.Time `json:"createdDate"`
}

// Rotate gives instance id a new bridge key; the previous one stops working at once.
func (k *Keys) Rotate(ctx context.Context, p tenants.Principal, id int64) (NewKey, error) {
	key := KeyPrefix + secrets.NewToken()
	created, err := k.store.SetBridgeKey(ctx, p.OrganizationID, id, secrets.Hash(key))
	if err != nil {
		return NewKey{}, fmt.Errorf("bridge key: %w", err)
	}
	return NewKey{InstanceID: id, BridgeKey: key, CreatedDate: created.UTC()}, nil
}

// Principal is who a bridge key acts as: its instance, in its organization.
func (k *Keys) Principal(ctx context.Context, key string) (tenants.Principal, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return tenants.Principal{}, apperr.Errorf(apperr.Unauthorized,
			"the first parameter is not a bridge key: pass the instance's bridge key (from POST /instances/{id}/bridge-key) where Keap took its API key, or send Authorization: User <user secret>, Element <instance token>")
	}
	id, org, err := k.store.InstanceByBridgeKeyHash(ctx, secrets.Hash(key))
	if apperr.CodeOf(err) == apperr.NotFound {
		return tenants.Principal{}, apperr.Errorf(apperr.Unauthorized, "the bridge key is not valid: it was rotated or its instance deleted; make a new one with POST /instances/{id}/bridge-key")
	}
	if err != nil {
		return tenants.Principal{}, fmt.Errorf("bridge key: %w", err)
	}
	return tenants.Principal{OrganizationID: org, InstanceID: id}, nil
}

// Authenticator checks an Authorization header's credentials (the tenants package).
type Authenticator interface {
	Authenticate(ctx context.Context, c tenants.Credentials, need tenants.Need) (tenants.Principal, error)
}

// Resolver finds the instance a principal acts for, refusing disabled and
// invalid ones (the instances package).
type Resolver interface {
	Resolve(ctx context.Context, p tenants.Principal) (*instances.Instance, *elements.Element, error)
}

// Endpoint answers XML-RPC calls at connectord's own /crm/xmlrpc/v1 and
// /api/xmlrpc: it authenticates them by bridge key or Authorization header
// and hands them to the Bridge.
type Endpoint struct {
	Bridge   *Bridge
	Keys     *Keys
	Auth     Authenticator
	Instance Resolver
}

// Answer is what the endpoint answers one call: a methodResponse, and who
// made the call when it was authenticated.
type Answer struct {
	Body      []byte
	Principal tenants.Principal
}

// Answer answers one methodCall body; creds are the Authorization header's,
// nil when the request had none. The error, when not nil, is an internal one
// to be logged: Body then holds a fault saying so without its detail.
func (e *Endpoint) Answer(ctx context.Context, creds *tenants.Credentials, body []byte) (Answer, error) {
	c, f := Parse(body)
	if f != nil {
		return Answer{Body: keap.EncodeFault(f)}, nil
	}
	if !e.Bridge.Keyed(c.Method) {
		return Answer{Body: e.Bridge.Serve(ctx, nil, nil, c)}, nil
	}
	var p tenants.Principal
	var err error
	if creds != nil {
		p, err = e.Auth.Authenticate(ctx, *creds, tenants.NeedElement)
	} else {
		p, err = e.Keys.Principal(ctx, c.Key())
	}
	if err != nil {
		return refusal(err)
	}
	inst, el, err := e.Instance.Resolve(ctx, p)
	if err != nil {
		a, ierr := refusal(err)
		a.Principal = p
		return a, ierr
	}
	return Answer{Body: e.Bridge.Serve(ctx, inst, el, c), Principal: p}, nil
}

// refusal is Keap's fault for a call connectord will not make: [InvalidKey]
// with the reason, or, for an internal error, a fault that hides it.
func refusal(err error) (Answer, error) {
	e, ok := apperr.As(err)
	if !ok || e.Code == apperr.Internal || e.Code == apperr.Unavailable {
		msg := "connectord could not check the key; retry"
		if ok && e.Code == apperr.Unavailable {
			msg = e.Message
		}
		return Answer{Body: keap.EncodeFault(fault("UnexpectedError", "%s", msg))}, err
	}
	return Answer{Body: keap.EncodeFault(fault("InvalidKey", "%s", e.Message))}, nil
}
