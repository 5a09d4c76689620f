package events

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event types, as Open Connectors names them.
const (
	Created = "CREATED"
	Updated = "UPDATED"
	Deleted = "DELETED"
)

// ValidEventType reports whether t is one of Created, Updated and Deleted.
func ValidEventType(t string) bool { return t == Created || t == Updated || t == Deleted }

// Event is one normalised change of one provider object, as a notification
// carries it.
type Event struct {
	Date       time.Time `json:"date"`
	ElementKey string    `json:"elementKey"`
	EventType  string    `json:"eventType"`
	ObjectID   string    `json:"objectId"`
	ObjectType string    `json:"objectType"`
}

// NotificationID identifies one stored notification (one callback delivery).
type NotificationID int64

// Notification statuses.
const (
	StatusPending   = "pending"   // waiting for its next try
	StatusDelivered = "delivered" // the callback answered 2xx
	StatusFailed    = "failed"    // every retry failed; kept for redelivery
)

// ValidStatus reports whether s is a notification status.
func ValidStatus(s string) bool {
	return s == StatusPending || s == StatusDelivered || s == StatusFailed
}

// Claimed is a notification a delivery worker has claimed for one try.
type Claimed struct {
	ID         NotificationID
	EventID    string
	InstanceID int64
	Failures   int // failed tries since it was last (re)queued
	Events     []Event
	Raw        json.RawMessage
}

// Outcome is the result of one delivery try, for the store to record.
type Outcome struct {
	At         time.Time
	Duration   time.Duration
	HTTPStatus int    // 0 when no response came
	Error      string // why the try failed; empty on success
	Delivered  bool
	Failed     bool      // no retry is left: the notification is marked failed
	NextTry    time.Time // when neither Delivered nor Failed
}

// Notification is a stored notification as the API shows it.
type Notification struct {
	ID               NotificationID `json:"notificationId"`
	EventID          string         `json:"eventId"`
	InstanceID       int64          `json:"instanceId"`
	Status           string         `json:"status"`
	Attempts         int            `json:"attempts"`
	NextAttemptDate  *time.Time     `json:"nextAttemptDate,omitempty"`
	LastStatus       *int           `json:"lastStatus,omitempty"`
	LastError        string         `json:"lastError,omitempty"`
	CreatedDate      time.Time      `json:"createdDate"`
	DeliveredDate    *time.Time     `json:"deliveredDate,omitempty"`
	Events           []Event        `json:"events"`
	DeliveryAttempts []Attempt      `json:"deliveryAttempts"`
}

// Attempt is one recorded delivery try.
type Attempt struct {
	Date       time.Time `json:"date"`
	Status     int       `json:"status,omitempty"` // the callback's HTTP status
	Error      string    `json:"error,omitempty"`
	DurationMs int64     `json:"durationMs"`
}

// Filter selects one page of an instance's notifications, newest first.
type Filter struct {
	Status    string         // empty: any
	EventType string         // empty: any; else notifications carrying at least one such event
	PageSize  int            // 1..500
	Before    NotificationID // 0: from the newest; else only older than this
}

// ObjectInstance is the objectType of the events connectord sends about an
// instance itself rather than a provider object.
const ObjectInstance = "instance"

// InstanceInvalid is the notification an instance sends, once, when it stops
// being valid (Keap refused its refresh token): one UPDATED event whose
// objectType is "instance" and objectId the instance id, so consumers that
// parse the usual shape need nothing new, and raw saying why.
func InstanceInvalid(elementKey string, instanceID int64, reason string, at time.Time) ([]Event, json.RawMessage, error) {
	id := strconv.FormatInt(instanceID, 10)
	raw, err := json.Marshal(map[string]any{"instanceId": instanceID, "valid": false, "invalidReason": reason, "date": at.UTC()})
	if err != nil {
		return nil, nil, err
	}
	return []Event{{Date: at.UTC(), ElementKey: elementKey, EventType: Updated, ObjectID: id, ObjectType: ObjectInstance}}, raw, nil
}

// QuotaExhausted is the notification an instance gets, once a day, when
// Keap's daily quota it draws on (quota, as internal/quota names it) is
// spent: its calls are refused with 429 until resetsAt.
func QuotaExhausted(elementKey string, instanceID int64, quota string, perDay int, resetsAt, at time.Time) ([]Event, json.RawMessage, error) {
	id := strconv.FormatInt(instanceID, 10)
	raw, err := json.Marshal(map[string]any{"instanceId": instanceID, "quotaExhausted": map[string]any{
		"quota": quota, "perDay": perDay, "resetsAt": resetsAt.UTC(),
	}, "date": at.UTC()})
	if err != nil {
		return nil, nil, err
	}
	return []Event{{Date: at.UTC(), ElementKey: elementKey, EventType: Updated, ObjectID: id, ObjectType: ObjectInstance}}, raw, nil
}

// InstanceConnected is the notification an instance sends when the hosted
// connect flow created it (one CREATED event) or reconnected it (one UPDATED
// event), in the shape of InstanceInvalid: objectType "instance", objectId the
// instance id, and raw saying what happened.
func InstanceConnected(elementKey string, instanceID int64, reconnected bool, at time.Time) ([]Event, json.RawMessage, error) {
	kind, what := Created, "created"
	if reconnected {
		kind, what = Updated, "reconnected"
	}
	raw, err := json.Marshal(map[string]any{"instanceId": instanceID, "valid": true, "connect": what, "date": at.UTC()})
	if err != nil {
		return nil, nil, err
	}
	return []Event{{Date: at.UTC(), ElementKey: elementKey, EventType: kind, ObjectID: strconv.FormatInt(instanceID, 10), ObjectType: ObjectInstance}}, raw, nil
}
