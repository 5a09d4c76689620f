package console

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/audit"
)

// auditPageSize is how many entries one audit page shows.
const auditPageSize = 50

type auditData struct {
	Actions []string // the filter's choices
	Action  string   // the chosen one, "" for all
	Entries []audit.Entry
	Next    int64 // the cursor of the next (older) page, 0 on the last
	Paged   bool  // this is not the first page
}

// auditPage lists the organization's audit log, newest first, as GET
// /audit-logs does: filtered by action, paged with the before cursor. Entries
// hold no secrets (only configuration keys, never values), so the page shows
// them as they are.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := audit.Filter{Limit: auditPageSize, Action: q.Get("action")}
	if f.Action != "" && !slices.Contains(audit.Actions, f.Action) {
		c.serviceError(w, r, apperr.Errorf(apperr.Invalid, "%q is not an action the audit log records", f.Action))
		return
	}
	if v := q.Get("before"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			c.serviceError(w, r, apperr.Errorf(apperr.Invalid, "%q is not a page of the audit log", v))
			return
		}
		f.Before = id
	}
	list, next, err := c.opt.Audit.AuditLog(r.Context(), c.principal(r).OrganizationID, f)
	if err != nil {
		c.serviceError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Data: auditData{
		Actions: audit.Actions, Action: f.Action, Entries: list, Next: next, Paged: f.Before != 0,
	}})
}
