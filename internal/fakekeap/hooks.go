package fakekeap

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// Hook is a REST hook subscription as Keap reports it.
type Hook struct {
	Key      string `json:"key"`
	EventKey string `json:"eventKey"`
	HookURL  string `json:"hookUrl"`
	Status   string `json:"status"` // Unverified, Verified or Inactive
}

type hook struct {
	Hook
	secret string // the last X-Hook-Secret sent, for delayedVerify
}

const (
	hookUnverified = "Unverified"
	hookVerified   = "Verified"
	hookInactive   = "Inactive"
)

// maxObjectsPerDelivery is how many object keys Keap puts in one delivery.
const maxObjectsPerDelivery = 1000

var eventKeys = []string{
	"appointment.add", "appointment.delete", "appointment.edit",
	"company.add", "company.delete", "company.edit",
	"contact.add", "contact.delete", "contact.edit", "contact.redact",
	"contactGroup.add", "contactGroup.applied", "contactGroup.delete", "contactGroup.edit", "contactGroup.removed",
	"invoice.add", "invoice.delete", "invoice.edit", "invoice.payment.add", "invoice.payment.delete", "invoice.payment.edit",
	"leadsource.add", "leadsource.delete", "leadsource.edit",
	"note.add", "note.delete", "note.edit",
	"opportunity.add", "opportunity.delete", "opportunity.edit", "opportunity.stage_move",
	"order.add", "order.delete", "order.edit",
	"product.add", "product.delete", "product.edit",
	"subscription.add", "subscription.delete", "subscription.edit",
	"task.add", "task.delete", "task.edit",
}

// resourcePaths names the REST collection of an object type, for apiUrl.
var resourcePaths = map[string]string{"company": "companies", "contactGroup": "tags", "opportunity": "opportunities"}

// Hooks returns the hook subscriptions, by key.
func (s *Server) Hooks() []Hook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Hook, 0, len(s.hooks))
	for _, h := range s.hooks {
		out = append(out, h.Hook)
	}
	slices.SortFunc(out, func(a, b Hook) int {
		return cmp.Or(cmp.Compare(len(a.Key), len(b.Key)), strings.Compare(a.Key, b.Key))
	})
	return out
}

// SetHookStatus changes a hook's status as Keap would on its own (Inactive
// after failed deliveries), for tests; it reports whether the hook exists.
func (s *Server) SetHookStatus(key, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooks[key]
	if h == nil {
		return false
	}
	h.Status = status
	return true
}

// hostOf is a hook URL's host, for logs: the path may carry a secret.
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

func (s *Server) handleEventKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, eventKeys)
}

func (s *Server) handleListHooks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Hooks())
}

func decodeHookRequest(w http.ResponseWriter, r *http.Request) (Hook, bool) {
	var req Hook
	if !readJSON(w, r, &req) {
		return Hook{}, false
	}
	if !slices.Contains(eventKeys, req.EventKey) {
		writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Invalid eventKey %q: see GET /hooks/event_keys", req.EventKey))
		return Hook{}, false
	}
	if u, err := url.Parse(req.HookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		writeMessage(w, http.StatusBadRequest, fmt.Sprintf("Invalid hookUrl %q: use an absolute http(s) URL", req.HookURL))
		return Hook{}, false
	}
	return req, true
}

// handleCreateHook subscribes and, as Keap does, runs the immediate verification handshake before answering.
func (s *Server) handleCreateHook(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeHookRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	key := strconv.FormatInt(s.nextIDLocked("hook"), 10)
	s.hooks[key] = &hook{Hook: Hook{Key: key, EventKey: req.EventKey, HookURL: req.HookURL, Status: hookUnverified}}
	s.mu.Unlock()
	h, _ := s.verify(r.Context(), key)
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) lookupHook(w http.ResponseWriter, r *http.Request) (Hook, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooks[chi.URLParam(r, "key")]
	if h == nil {
		writeMessage(w, http.StatusNotFound, "Hook with key "+chi.URLParam(r, "key")+" not found")
		return Hook{}, false
	}
	return h.Hook, true
}

func (s *Server) handleGetHook(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.lookupHook(w, r); ok {
		writeJSON(w, http.StatusOK, h)
	}
}

// handleUpdateHook changes a subscription; a new hookUrl is verified again.
func (s *Server) handleUpdateHook(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeHookRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	h := s.hooks[chi.URLParam(r, "key")]
	if h == nil {
		s.mu.Unlock()
		writeMessage(w, http.StatusNotFound, "Hook with key "+chi.URLParam(r, "key")+" not found")
		return
	}
	moved := h.HookURL != req.HookURL
	h.EventKey, h.HookURL = req.EventKey, req.HookURL
	out := h.Hook
	s.mu.Unlock()
	if moved {
		out, _ = s.verify(r.Context(), out.Key)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteHook(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.lookupHook(w, r); ok {
		s.mu.Lock()
		delete(s.hooks, h.Key)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) handleVerifyHook(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.lookupHook(w, r); ok {
		h, _ = s.verify(r.Context(), h.Key)
		writeJSON(w, http.StatusOK, h)
	}
}

// handleDelayedVerifyHook verifies a hook whose receiver sends back, out of
// band, the X-Hook-Secret the last handshake carried.
func (s *Server) handleDelayedVerifyHook(w http.ResponseWriter, r *http.Request) {
	secret := r.Header.Get("X-Hook-Secret")
	if secret == "" {
		writeMessage(w, http.StatusBadRequest, "Missing X-Hook-Secret header: send the secret the verification request carried")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooks[chi.URLParam(r, "key")]
	if h == nil {
		writeMessage(w, http.StatusNotFound, "Hook with key "+chi.URLParam(r, "key")+" not found")
		return
	}
	if h.secret != "" && h.secret == secret {
		h.Status = hookVerified
	}
	writeJSON(w, http.StatusOK, h.Hook)
}

// verify runs the handshake for hook key: POST to its hookUrl with a fresh
// X-Hook-Secret, Verified only on a 200 echoing that header and value.
func (s *Server) verify(ctx context.Context, key string) (Hook, bool) {
	secret := randomToken()
	s.mu.Lock()
	h := s.hooks[key]
	if h == nil {
		s.mu.Unlock()
		return Hook{}, false
	}
	h.secret = secret
	target := h.HookURL
	s.mu.Unlock()

	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err == nil {
		req.Header.Set("X-Hook-Secret", secret)
		var resp *http.Response
		if resp, err = s.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
			_ = resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK && resp.Header.Get("X-Hook-Secret") == secret
		}
	}
	s.log.Debug().Str("hook", key).Str("host", hostOf(target)).Bool("verified", ok).Msg("fakekeap: hook verification")

	s.mu.Lock()
	defer s.mu.Unlock()
	h = s.hooks[key]
	if h == nil {
		return Hook{}, false
	}
	if h.HookURL == target {
		h.Status = map[bool]string{true: hookVerified, false: hookUnverified}[ok]
	}
	return h.Hook, true
}

// notify delivers a change made through the API to the hooks listening for it.
func (s *Server) notify(eventKey string, ids ...int64) {
	_ = s.DeliverHook(eventKey, ids)
}

// DeliverHook sends eventKey for ids to every Verified hook of that event,
// asynchronously, in batches of up to 1000 objects; Close waits for them.
// Unlike Keap it sends at once and does not retry; a 410 makes the hook Inactive.
func (s *Server) DeliverHook(eventKey string, ids []int64) error {
	if !slices.Contains(eventKeys, eventKey) {
		return fmt.Errorf("fakekeap: unknown event key %q", eventKey)
	}
	objectType, _, _ := strings.Cut(eventKey, ".")
	collection := cmp.Or(resourcePaths[objectType], objectType+"s")

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("fakekeap: server closed")
	}
	base := cmp.Or(s.baseURL, "https://api.infusionsoft.com")
	stamp := formatTime(s.stamp())
	var targets []Hook
	for _, h := range s.hooks {
		if h.EventKey == eventKey && h.Status == hookVerified {
			targets = append(targets, h.Hook)
		}
	}
	var bodies [][]byte
	for chunk := range slices.Chunk(ids, maxObjectsPerDelivery) {
		keys := make([]map[string]any, 0, len(chunk))
		for _, id := range chunk {
			keys = append(keys, map[string]any{"id": id, "apiUrl": fmt.Sprintf("%s/crm/rest/v1/%s/%d", base, collection, id), "timestamp": stamp})
		}
		body, err := json.Marshal(map[string]any{"event_key": eventKey, "object_type": objectType, "object_keys": keys})
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("fakekeap: encode delivery: %w", err)
		}
		bodies = append(bodies, body)
	}
	s.pending.Add(len(targets) * len(bodies))
	s.stats.HookDeliveries += len(targets) * len(bodies)
	s.mu.Unlock()

	for _, h := range targets {
		for _, body := range bodies {
			go s.deliver(h, body)
		}
	}
	return nil
}

func (s *Server) deliver(h Hook, body []byte) {
	defer s.pending.Done()
	req, err := http.NewRequest(http.MethodPost, h.HookURL, bytes.NewReader(body))
	if err != nil {
		s.log.Warn().Str("hook", h.Key).Msg("fakekeap: hook delivery could not be built")
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Warn().Str("hook", h.Key).Str("host", hostOf(h.HookURL)).Msg("fakekeap: hook delivery failed")
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
	s.log.Debug().Str("hook", h.Key).Int("status", resp.StatusCode).Msg("fakekeap: hook delivered")
	if resp.StatusCode == http.StatusGone {
		s.mu.Lock()
		if cur := s.hooks[h.Key]; cur != nil && cur.HookURL == h.HookURL {
			cur.Status = hookInactive
		}
		s.mu.Unlock()
	}
}
