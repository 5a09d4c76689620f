package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
)

// eventLog is what the event handlers need: an instance's notifications and
// their redelivery, within the caller's organization.
type eventLog interface {
	Notifications(ctx context.Context, orgID, instanceID int64, f events.Filter) ([]events.Notification, events.NotificationID, error)
	Redeliver(ctx context.Context, orgID, instanceID int64, eventID string) error
	RedeliverFailed(ctx context.Context, orgID, instanceID int64) (int64, error)
	PollStatuses(ctx context.Context, orgID, instanceID int64) ([]events.PollStatus, error)
}

// listPollCursors answers GET /instances/{id}/events/polling: the instance's
// polling cursors, how far each has reported, when it polls next and why it
// last failed.
func listPollCursors(log eventLog) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		list, err := log.PollStatuses(r.Context(), principal(r).OrganizationID, id)
		return events.PollState{Cursors: list}, err
	})
}

// listEvents answers GET /instances/{id}/events: notifications newest first,
// paged with pageSize and nextPage (the previous page's Elements-Next-Page-Token).
func listEvents(log eventLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := instanceID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		f, err := eventFilter(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := log.Notifications(r.Context(), principal(r).OrganizationID, id, f)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if next != 0 {
			w.Header().Set(NextPageHeader, strconv.FormatInt(int64(next), 10))
		}
		writeJSON(w, http.StatusOK, list)
	})
}

func eventFilter(r *http.Request) (events.Filter, error) {
	q := query(r)
	f := events.Filter{Status: q.Get("status"), EventType: q.Get("eventType"), PageSize: 50}
	if f.Status != "" && !events.ValidStatus(f.Status) {
		return f, apperr.Errorf(apperr.Invalid, "status %q is not pending, delivered or failed", f.Status)
	}
	if f.EventType != "" && !events.ValidEventType(f.EventType) {
		return f, apperr.Errorf(apperr.Invalid, "eventType %q is not CREATED, UPDATED or DELETED", f.EventType)
	}
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, apperr.Errorf(apperr.Invalid, "pageSize %q is not a whole number from 1 to 500", v)
		}
		f.PageSize = n
	}
	if v := q.Get("nextPage"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, apperr.Errorf(apperr.Invalid, "nextPage %q is not a cursor: pass the Elements-Next-Page-Token of the previous page unchanged", v)
		}
		f.Before = events.NotificationID(n)
	}
	return f, nil
}

// redeliverResult answers the redeliver calls.
type redeliverResult struct {
	Redelivered int64 `json:"redelivered"`
}

func redeliverEvent(log eventLog) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		if err := log.Redeliver(r.Context(), principal(r).OrganizationID, id, chi.URLParam(r, "eventId")); err != nil {
			return nil, err
		}
		return redeliverResult{Redelivered: 1}, nil
	})
}

func redeliverEvents(log eventLog) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		if s := query(r).Get("status"); s != events.StatusFailed {
			return nil, apperr.Errorf(apperr.Invalid, "bulk redelivery needs status=failed (got %q); redeliver other notifications one by one", s)
		}
		n, err := log.RedeliverFailed(r.Context(), principal(r).OrganizationID, id)
		if err != nil {
			return nil, err
		}
		return redeliverResult{Redelivered: n}, nil
	})
}
