package httpapi

import (
	"bytes"
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/events"
)

// hookReceiver takes Keap's REST hook requests (events.Receiver).
type hookReceiver interface {
	Hook(ctx context.Context, secret string) (events.HookTarget, error)
	Deliver(ctx context.Context, t events.HookTarget, body []byte) (int, error)
}

// hookReceipt answers Keap.
type hookReceipt struct {
	Received int `json:"received"` // events stored from the delivery
}

// receiveKeapHook answers POST /events/keap/{secret}: Keap's verification
// handshake (X-Hook-Secret echoed) and its deliveries, acknowledged only once
// stored. The route is open to anyone, so the secret is checked before the
// body is read: a caller without one is answered 404 at once and what it
// sends is not kept. The path carries the secret, so the request log shows
// the route pattern instead (see logRequests).
func receiveKeapHook(rcv hookReceiver) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook, err := rcv.Hook(r.Context(), chi.URLParam(r, "secret"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if hs := r.Header.Get("X-Hook-Secret"); hs != "" {
			w.Header().Set("X-Hook-Secret", hs)
			// Keap's handshake has no delivery in it; should one come along,
			// it is stored like any other, and anything else is ignored.
			n := 0
			if len(bytes.TrimSpace(body)) > 0 {
				if n, err = rcv.Deliver(r.Context(), hook, body); err != nil && apperr.CodeOf(err) != apperr.Invalid {
					w.Header().Del("X-Hook-Secret")
					writeError(w, r, err)
					return
				}
			}
			writeJSON(w, http.StatusOK, hookReceipt{Received: n})
			return
		}
		n, err := rcv.Deliver(r.Context(), hook, body)
		if err != nil {
			writeError(w, r, err)
			return
		}
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
