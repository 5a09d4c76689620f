package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/secrets"
)

// HookTarget is the hook a receiver secret belongs to.
type HookTarget struct {
	InstanceID int64
	ElementKey string
	EventKey   string
	Config     map[string]*string // the instance's non-secret configuration, as it is now
}

// ReceiverStore is what the receiver needs from the database.
type ReceiverStore interface {
	// HookBySecret finds the hook whose receiver secret hashes to secretHash;
	// apperr.NotFound when none does.
	HookBySecret(ctx context.Context, secretHash []byte) (HookTarget, error)
	// EnqueueEventsSplit stores events durably with their notifications (the
	// store's entry point); rawFor(from, to) is the raw of the notification
	// carrying evs[from:to].
	EnqueueEventsSplit(ctx context.Context, instanceID int64, evs []Event, rawFor func(from, to int) json.RawMessage) ([]NotificationID, error)
}

// Receiver takes Keap's REST hook requests: the verification handshake and
// deliveries, which it normalises into events and stores before they are
// acknowledged.
type Receiver struct {
	store   ReceiverStore
	catalog *elements.Catalog
	now     func() time.Time
}

// NewReceiver returns a Receiver; now stamps objects Keap sent without a timestamp.
func NewReceiver(store ReceiverStore, catalog *elements.Catalog, now func() time.Time) *Receiver {
	return &Receiver{store: store, catalog: catalog, now: now}
}

// noReceiver answers every secret that is not a hook's: the same for a
// wrong one and for one whose hook or instance is gone.
func noReceiver() error {
	return apperr.Errorf(apperr.NotFound, "no Keap hook receiver at this path")
}

// Hook finds the hook secret belongs to: apperr.NotFound, the same for a
// wrong secret and for a hook or instance that is gone, when none does. It
// is checked before a request's body is read, so that a caller without a
// hook's secret costs one indexed lookup and no memory; the hook found is
// what Keap's verification handshake asks about.
func (r *Receiver) Hook(ctx context.Context, secret string) (HookTarget, error) {
	if secret == "" {
		return HookTarget{}, noReceiver()
	}
	t, err := r.store.HookBySecret(ctx, secrets.Hash(secret))
	switch {
	case apperr.CodeOf(err) == apperr.NotFound:
		return HookTarget{}, noReceiver()
	case err != nil:
		return HookTarget{}, unavailable(err)
	}
	return t, nil
}

// Deliver normalises one Keap delivery to hook t (found by Hook) and stores
// it. When it returns nil the events are durable and Keap may be told so; it
// returns how many events the delivery made. An error carries apperr.NotFound
// for a hook whose instance is gone, Invalid for a body that is not a
// delivery of this hook's event, Gone for a hook the instance no longer
// wants, and Unavailable when the events could not be stored (Keap then
// retries).
func (r *Receiver) Deliver(ctx context.Context, t HookTarget, body []byte) (int, error) {
	el, ok := r.catalog.Lookup(t.ElementKey)
	if !ok {
		return 0, noReceiver()
	}
	evs, err := ParseDelivery(el, t.EventKey, body, r.now())
	if err != nil {
		return 0, err
	}
	// Between a configuration change and the reconciler deleting the hook at
	// Keap (or when Keap cannot be reached to delete it), deliveries of a
	// hook no longer wanted are refused with 410, which makes Keap stop
	// sending them at once.
	wanted, _ := wantedHooks(el, &instances.Instance{Config: t.Config})
	if !slices.ContainsFunc(wanted, func(w wantedHook) bool { return w.eventKey == t.EventKey }) {
		return 0, apperr.Errorf(apperr.Gone, "the instance no longer receives %s by webhook (events disabled, polling, or not in event.objects); connectord deletes this hook", t.EventKey)
	}
	if _, err := r.store.EnqueueEventsSplit(ctx, t.InstanceID, evs, deliveryPart(body)); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return 0, noReceiver() // the instance was deleted meanwhile
		}
		return 0, unavailable(err)
	}
	return len(evs), nil
}

// deliveryPart returns the raw of the notification carrying the events of
// object keys [from, to) of a delivery: the delivery with just those object
// keys, so a consumer's raw matches its events (a delivery of 1000 objects is
// 50 notifications, and repeating all of it in each would store and send it 50
// times). body has been parsed by ParseDelivery, one event per object key.
func deliveryPart(body []byte) func(from, to int) json.RawMessage {
	var d struct {
		EventKey   json.RawMessage   `json:"event_key"`
		ObjectType json.RawMessage   `json:"object_type"`
		ObjectKeys []json.RawMessage `json:"object_keys"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return func(int, int) json.RawMessage { return body }
	}
	return func(from, to int) json.RawMessage {
		if from < 0 || to > len(d.ObjectKeys) || from > to {
			return body
		}
		part := map[string]any{"event_key": d.EventKey, "object_keys": d.ObjectKeys[from:to]}
		if d.ObjectType != nil {
			part["object_type"] = d.ObjectType
		}
		b, err := json.Marshal(part)
		if err != nil {
			return body
		}
		return b
	}
}

func unavailable(err error) error {
	return &apperr.Error{Code: apperr.Unavailable, Message: "connectord could not store the delivery; retry later", Err: err}
}

// delivery is the body of a Keap REST hook delivery.
type delivery struct {
	EventKey   *string     `json:"event_key"`
	ObjectType string      `json:"object_type"`
	ObjectKeys []objectKey `json:"object_keys"`
}

type objectKey struct {
	ID        json.RawMessage `json:"id"`
	APIURL    string          `json:"apiUrl"`
	Timestamp string          `json:"timestamp"`
}

// ParseDelivery turns a Keap delivery for eventKey into events of element el:
// one per object key, its type and resource from the element's event keys,
// dated by the object's timestamp (now when Keap sent none). Every problem is
// an apperr.Invalid naming it.
func ParseDelivery(el *elements.Element, eventKey string, body []byte, now time.Time) ([]Event, error) {
	invalid := func(format string, args ...any) ([]Event, error) {
		return nil, apperr.Errorf(apperr.Invalid, "not a Keap hook delivery: "+format, args...)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("the body is empty; send {\"event_key\", \"object_type\", \"object_keys\": [{\"id\", \"timestamp\"}]}")
	}
	var d delivery
	if err := json.Unmarshal(body, &d); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return invalid("the body must be a JSON object")
			}
			return invalid("%s has the wrong type (%s)", te.Field, te.Value)
		}
		return invalid("malformed JSON: %v", err)
	}
	if d.EventKey == nil || *d.EventKey == "" {
		return invalid("event_key is missing")
	}
	if *d.EventKey != eventKey {
		return invalid("event_key %q is not %q, the event this hook was registered for", *d.EventKey, eventKey)
	}
	resource, typ, ok := hookEvent(el, eventKey)
	if !ok {
		return invalid("event_key %q is not an event of element %s", eventKey, el.Key)
	}
	if len(d.ObjectKeys) == 0 {
		return invalid("object_keys is missing or empty")
	}
	out := make([]Event, 0, len(d.ObjectKeys))
	for i, k := range d.ObjectKeys {
		id, err := objectID(k.ID)
		if err != nil {
			return invalid("object_keys[%d].id %v", i, err)
		}
		date := now.UTC()
		if k.Timestamp != "" {
			ts, err := time.Parse(time.RFC3339Nano, k.Timestamp)
			if err != nil {
				return invalid("object_keys[%d].timestamp %q is not an RFC 3339 time such as 2026-11-30T12:00:00.000Z", i, k.Timestamp)
			}
			date = ts.UTC()
		}
		out = append(out, Event{Date: date, ElementKey: el.Key, EventType: typ, ObjectID: id, ObjectType: resource})
	}
	return out, nil
}

// objectID reads an object key's id: a whole number, or a non-empty string.
func objectID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("is missing")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", errors.New("is not a non-empty string or a whole number")
		}
		return s, nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return "", fmt.Errorf("%s is not a whole number", truncate(string(raw), 40))
	}
	return strconv.FormatInt(n, 10), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
