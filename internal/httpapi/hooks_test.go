package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/events"
	"github.com/connectord/connectord/internal/secrets"
)

// receiverStore is a store with one hook whose EnqueueEventsSplit fails while down.
type receiverStore struct {
	secretHash []byte
	mu         sync.Mutex
	down       bool
	disabled   bool // the instance's events are off
	stored     [][]events.Event
}

func (s *receiverStore) HookBySecret(_ context.Context, h []byte) (events.HookTarget, error) {
	if !secrets.Equal(h, s.secretHash) {
		return events.HookTarget{}, apperr.Errorf(apperr.NotFound, "not found")
	}
	s.mu.Lock()
	enabled := strconv.FormatBool(!s.disabled)
	s.mu.Unlock()
	return events.HookTarget{InstanceID: 7, ElementKey: "infusionsoftcrm", EventKey: "contact.edit",
		Config: map[string]*string{"event.notification.enabled": &enabled}}, nil
}

func (s *receiverStore) EnqueueEventsSplit(_ context.Context, _ int64, evs []events.Event, _ func(int, int) json.RawMessage) ([]events.NotificationID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errors.New("connect: connection refused")
	}
	s.stored = append(s.stored, evs)
	return []events.NotificationID{1}, nil
}

// The receiver acknowledges only what it stored: 503 while the store fails,
// so Keap retries, and the retry is stored once the store is back. Unknown
// secrets are 404, the handshake is echoed, and the secret is never logged.
func TestReceiveKeapHook_AcknowledgesOnlyStoredDeliveries(t *testing.T) {
	t.Parallel()
	catalog, err := elements.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := secrets.NewToken()
	st := &receiverStore{secretHash: secrets.Hash(secret), down: true}
	var logs bytes.Buffer
	var logMu sync.Mutex
	h := Routes(Deps{Log: zerolog.New(lockedWriter{&logs, &logMu}), Catalog: catalog,
		Receiver: events.NewReceiver(st, catalog, func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) })})
	post := func(path, body string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	delivery := `{"event_key":"contact.edit","object_type":"contact","object_keys":[{"id":42,"apiUrl":"https://api.infusionsoft.com/crm/rest/v1/contacts/42","timestamp":"2026-11-30T09:15:00.123Z"},{"id":"43"}]}`

	if w := post("/events/keap/"+secret, delivery); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("store down: %d %s, want 503", w.Code, w.Body)
	}
	st.mu.Lock()
	st.down = false
	st.mu.Unlock()
	w := post("/events/keap/"+secret, delivery)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"received":2`) {
		t.Fatalf("Keap's retry: %d %s", w.Code, w.Body)
	}
	want := []events.Event{
		{Date: time.Date(2026, 11, 30, 9, 15, 0, 123e6, time.UTC), ElementKey: "infusionsoftcrm", EventType: events.Updated, ObjectID: "42", ObjectType: "contacts"},
		{Date: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), ElementKey: "infusionsoftcrm", EventType: events.Updated, ObjectID: "43", ObjectType: "contacts"},
	}
	if len(st.stored) != 1 || len(st.stored[0]) != 2 || st.stored[0][0] != want[0] || st.stored[0][1] != want[1] {
		t.Fatalf("stored %+v, want %+v", st.stored, want)
	}

	if w := post("/events/keap/"+secret, "", "X-Hook-Secret", "handshake-value"); w.Code != 200 || w.Header().Get("X-Hook-Secret") != "handshake-value" {
		t.Errorf("handshake: %d %q", w.Code, w.Header().Get("X-Hook-Secret"))
	}
	// A handshake with a body that is no delivery is still a handshake.
	if w := post("/events/keap/"+secret, "{}", "X-Hook-Secret", "v2"); w.Code != 200 || w.Header().Get("X-Hook-Secret") != "v2" {
		t.Errorf("handshake with {}: %d %q %s", w.Code, w.Header().Get("X-Hook-Secret"), w.Body)
	}
	if len(st.stored) != 1 {
		t.Fatalf("handshakes stored events: %d batches", len(st.stored))
	}
	for _, wrong := range []string{"/events/keap/" + secret + "x", "/events/keap/x"} {
		if w := post(wrong, "", "X-Hook-Secret", "v"); w.Code != 404 || w.Header().Get("X-Hook-Secret") != "" {
			t.Errorf("handshake on a wrong path: %d %q", w.Code, w.Header().Get("X-Hook-Secret"))
		}
		if w := post(wrong, delivery); w.Code != 404 {
			t.Errorf("delivery on a wrong path: %d", w.Code)
		}
	}
	if w := post("/events/keap/"+secret, `{"object_keys":[{"id":1}]}`); w.Code != 400 || !strings.Contains(w.Body.String(), "event_key is missing") {
		t.Errorf("no event_key: %d %s", w.Code, w.Body)
	}
	if len(st.stored) != 1 {
		t.Errorf("refused requests stored events: %d batches", len(st.stored))
	}
	// Events turned off, and the hook not deleted at Keap yet: 410, which
	// makes Keap stop at once, and nothing stored.
	st.mu.Lock()
	st.disabled = true
	st.mu.Unlock()
	if w := post("/events/keap/"+secret, delivery); w.Code != http.StatusGone || !strings.Contains(w.Body.String(), "no longer receives contact.edit") {
		t.Errorf("delivery to an unwanted hook: %d %s, want 410", w.Code, w.Body)
	}
	if len(st.stored) != 1 {
		t.Errorf("a delivery to an unwanted hook was stored")
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(m, "/events/keap/"+secret, nil))
		if w.Code != http.StatusMethodNotAllowed || strings.Contains(w.Body.String(), secret) {
			t.Errorf("%s on the receiver: %d %s, want 405 without the secret", m, w.Code, w.Body)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the secret is in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"path":"/events/keap/{secret}","status":503`) {
		t.Errorf("the 503 is not logged by route pattern:\n%s", logs.String())
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
