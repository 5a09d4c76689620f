package httpapi

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/audit"
	"github.com/connectord/connectord/internal/tenants"
)

// AuditLog is what the audit routes need (the store).
type AuditLog interface {
	RecordAudit(ctx context.Context, e audit.Entry) error
	AuditLog(ctx context.Context, orgID int64, f audit.Filter) ([]audit.Entry, int64, error)
}

// audited records what h changes in the audit log: it starts the request's
// audit record (who, from where, which action on which instance), which the
// store writes in the change's transaction; a request that fails with no
// change committed is recorded as failed, in a transaction of its own.
func audited(log AuditLog, action string, h http.Handler) http.Handler {
	return Audited(log, action, principal, h)
}

// Audited is audited for the console's forms, whose principal who(r) finds
// in the console's session rather than in the API's headers: the same
// record, so a change made in the console is recorded as the same change
// made through the API.
func Audited(log AuditLog, action string, who func(*http.Request) tenants.Principal, h http.Handler) http.Handler {
	if log == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := who(r)
		var target int64
		targetType := audit.TargetOf(action)
		if id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64); err == nil && id > 0 && targetType == audit.TargetInstance {
			target = id
		}
		ctx, rec := audit.Start(r.Context(), audit.Actor{
			OrganizationID: p.OrganizationID, UserID: p.UserID,
			RequestID: RequestID(r.Context()), TraceID: TraceID(r.Context()), SourceIP: SourceIP(r),
		}, action, targetType, target)
		k := chi.URLParam(r, "keyOrId")
		if k == "" {
			k = chi.URLParam(r, "key") // the console's element pages
		}
		if k != "" {
			audit.Describe(ctx, "", map[string]any{"element": k})
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		h.ServeHTTP(ww, r.WithContext(ctx))
		if ww.Status() < 400 {
			return
		}
		e, ok := rec.FailedEntry("answered " + strconv.Itoa(ww.Status()))
		if !ok {
			return
		}
		e.At = time.Now()
		if err := log.RecordAudit(ctx, e); err != nil {
			logger(r).Error().Err(err).Str("action", action).Msg("audit: could not record a failed action")
		}
	})
}

// SourceIP is the address the request came from, as audit entries name it.
// X-Forwarded-For is not read: any client can write it.
func SourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// auditPage is the largest page of GET /audit-logs.
const auditPage = 200

// listAuditLogs serves GET /audit-logs: the organization's entries, newest
// first, filtered by time range (from, to: RFC 3339), action and instance,
// paged with pageSize and nextPage (Elements-Next-Page-Token).
func listAuditLogs(log AuditLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := auditFilter(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := log.AuditLog(r.Context(), principal(r).OrganizationID, f)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if next != 0 {
			w.Header().Set(NextPageHeader, strconv.FormatInt(next, 10))
		}
		writeJSON(w, http.StatusOK, list)
	})
}

func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	f := audit.Filter{Limit: 50}
	for k, vs := range q {
		switch k {
		case "from", "to", "action", "instanceId", "pageSize", "nextPage":
		default:
			return f, apperr.Errorf(apperr.Invalid, "unknown query parameter %s for GET /audit-logs (it takes from, to, action, instanceId, pageSize, nextPage)", k)
		}
		if len(vs) > 1 {
			return f, apperr.Errorf(apperr.Invalid, "give %s once", k)
		}
	}
	for _, name := range []string{"from", "to"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, apperr.Errorf(apperr.Invalid, "%s %q is not an RFC 3339 time such as 2026-01-31T09:00:00Z", name, v)
		}
		if name == "from" {
			f.From = &t
		} else {
			f.To = &t
		}
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return f, apperr.Errorf(apperr.Invalid, "from must be before to")
	}
	f.Action = q.Get("action")
	if f.Action != "" && !slices.Contains(audit.Actions, f.Action) {
		return f, apperr.Errorf(apperr.Invalid, "action %q is not one the audit log records: %s", f.Action, strings.Join(audit.Actions, ", "))
	}
	if v := q.Get("instanceId"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			return f, apperr.Errorf(apperr.Invalid, "instanceId %q is not an instance id", v)
		}
		f.InstanceID = id
	}
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > auditPage {
			return f, apperr.Errorf(apperr.Invalid, "pageSize %q is not a whole number from 1 to %d", v, auditPage)
		}
		f.Limit = n
	}
	if v := q.Get("nextPage"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			return f, apperr.Errorf(apperr.Invalid, "nextPage %q is not a page token of GET /audit-logs", v)
		}
		f.Before = id
	}
	return f, nil
}
