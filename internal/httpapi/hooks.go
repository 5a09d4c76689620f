package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
)

// hookReceiver takes Keap's REST hook requests (events.Receiver).
type hookReceiver interface {
	Handshake(ctx context.Context, secret string) error
	Deliver(ctx context.Context, secret string, body []byte) (int, error)
}

// hookReceipt answers Keap.
type hookReceipt struct {
	Received int `json:"received"` // events stored from the delivery
}

// receiveKeapHook answers POST /events/keap/{secret}: Keap's verification
// handshake (X-Hook-Secret echoed) and its deliveries, acknowledged only once
// stored. The path carries the hook's secret, so the request log shows the
// route pattern instead (see logRequests).
func receiveKeapHook(rcv hookReceiver, obs observer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := chi.URLParam(r, "secret")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, r, apperr.Errorf(apperr.TooLarge, "request body is larger than %d bytes", mbe.Limit))
				return
			}
			writeError(w, r, apperr.Errorf(apperr.Invalid, "request body could not be read"))
			return
		}
		if hs := r.Header.Get("X-Hook-Secret"); hs != "" {
			if err := rcv.Handshake(r.Context(), secret); err != nil {
				writeError(w, r, err)
				return
			}
			w.Header().Set("X-Hook-Secret", hs)
			// Keap's handshake has no delivery in it; should one come along,
			// it is stored like any other, and anything else is ignored.
			n := 0
			if len(bytes.TrimSpace(body)) > 0 {
				if n, err = rcv.Deliver(r.Context(), secret, body); err != nil && apperr.CodeOf(err) != apperr.Invalid {
					writeError(w, r, err)
					return
				}
			}
			writeJSON(w, http.StatusOK, hookReceipt{Received: n})
			return
		}
		n, err := rcv.Deliver(r.Context(), secret, body)
		if err != nil {
			outcome := "refused"
			if apperr.CodeOf(err) == apperr.Unavailable {
				outcome = "unavailable" // Keap retries
			}
			obs.HookDelivery(outcome, 0)
			writeError(w, r, err)
			return
		}
		obs.HookDelivery("stored", n)
		writeJSON(w, http.StatusOK, hookReceipt{Received: n})
	})
}

// hookStates shows an instance's Keap hooks (events.Hooks).
type hookStates interface {
	State(ctx context.Context, orgID, instanceID int64) (events.HookState, error)
}

func listEventHooks(hooks hookStates) http.Handler {
	return instanceHandler(func(r *http.Request, id int64) (any, error) {
		return hooks.State(r.Context(), principal(r).OrganizationID, id)
	})
}
