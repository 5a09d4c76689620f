package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/connectord/connectord/internal/quota"
	"github.com/connectord/connectord/internal/tenants"
)

// quotaViewer reads the Keap quotas an instance draws on (upstream.QuotaView).
type quotaViewer interface {
	InstanceQuota(ctx context.Context, p tenants.Principal, id int64) ([]quota.Figures, error)
}

type quotaWindow struct {
	Limit     int        `json:"limit"`
	Used      int        `json:"used"`
	Remaining int        `json:"remaining"`
	ResetsAt  *time.Time `json:"resetsAt,omitempty"`
}

type quotaShare struct {
	MinuteUsed int     `json:"minuteUsed"`
	DayUsed    int     `json:"dayUsed"`
	Waiting    int     `json:"waiting"`
	ShareOfDay float64 `json:"shareOfDay"` // of the quota's calls today
}

type quotaBody struct {
	Quota         string      `json:"quota"`
	Kind          string      `json:"kind"`
	PerSecond     int         `json:"perSecond"`
	RatePerSecond int         `json:"ratePerSecond"`
	Minute        quotaWindow `json:"minute"`
	Day           quotaWindow `json:"day"`
	Waiting       int         `json:"waiting"`
	PausedUntil   *time.Time  `json:"pausedUntil,omitempty"`
	Replicas      int         `json:"replicas"`
	Instance      quotaShare  `json:"instance"`
	Organization  quotaShare  `json:"organization"`
}

func instanceQuota(svc quotaViewer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := instanceID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		figs, err := svc.InstanceQuota(r.Context(), principal(r), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := struct {
			InstanceID int64       `json:"instanceId"`
			Quotas     []quotaBody `json:"quotas"`
		}{InstanceID: id, Quotas: make([]quotaBody, 0, len(figs))}
		for _, f := range figs {
			share := func(n int) float64 {
				if f.DayUsed == 0 {
					return 0
				}
				return float64(n) / float64(f.DayUsed)
			}
			b := quotaBody{
				Quota: f.Key.String(), Kind: string(f.Key.Kind), PerSecond: f.Limits.PerSecond, RatePerSecond: f.Rate,
				Minute:       quotaWindow{Limit: f.Limits.PerMinute, Used: f.MinuteUsed, Remaining: f.MinuteRemaining()},
				Day:          quotaWindow{Limit: f.Limits.PerDay, Used: f.DayUsed, Remaining: f.DayRemaining(), ResetsAt: &f.DayResetsAt},
				Waiting:      f.Waiting,
				Replicas:     f.Replicas,
				Instance:     quotaShare{MinuteUsed: f.InstanceMinute, DayUsed: f.InstanceDay, Waiting: f.InstanceWaiting, ShareOfDay: share(f.InstanceDay)},
				Organization: quotaShare{MinuteUsed: f.OrgMinute, DayUsed: f.OrgDay, Waiting: f.OrgWaiting, ShareOfDay: share(f.OrgDay)},
			}
			if !f.PausedUntil.IsZero() {
				b.PausedUntil = &f.PausedUntil
			}
			out.Quotas = append(out.Quotas, b)
		}
		writeJSON(w, http.StatusOK, out)
	})
}
