// Package quota owns Keap's quotas as connectord spends them: one quota per
// thing Keap counts calls by (an OAuth client id; a service account key or
// personal access token), shared by every replica through PostgreSQL, and
// handed out fairly to the instances that draw on it.
//
// A replica holds a lease on a slice of each quota's per-second budget: a
// whole number of calls it may send in each wall-clock second. The slices of
// all live replicas never add up to more than the budget (a replica raises its
// slice only out of what is free, under the quota row's lock, and only from
// the next second on; it lowers its slice at once), so no second sends Keap
// more than the quota allows, whatever the replicas do. Inside a replica,
// waiting calls are served by stride scheduling: interactive calls before
// background work four to one, and within each class every instance in turn,
// weighted so an instance active on several replicas is not counted twice.
//
// It must not know about PostgreSQL or send anything to Keap: the store keeps
// the shared rows (Ledger); the upstream package sends the calls and hands
// back Keap's status and headers, which are all of HTTP it reads. It never
// holds a credential: an API key's quota is named by its hash.
package quota

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is what Keap counts a quota's calls by.
type Kind string

// The kinds of quota.
const (
	OAuthClient Kind = "oauthClient" // an OAuth app's client id, over all its tenants
	APIKey      Kind = "apiKey"      // a service account key, personal access token or legacy key
)

// Key names one quota. For an API key, ID is the hex SHA-256 of the key, so
// neither rows nor answers hold the key.
type Key struct {
	Kind Kind
	ID   string
}

// ClientKey is the quota of OAuth client id.
func ClientKey(clientID string) Key { return Key{Kind: OAuthClient, ID: clientID} }

// APIKeyKey is the quota of a service account key, PAT or legacy key.
func APIKeyKey(secret string) Key {
	sum := sha256.Sum256([]byte(secret))
	return Key{Kind: APIKey, ID: hex.EncodeToString(sum[:])}
}

// String is the quota's name in rows and answers: "oauthClient:<client id>"
// or "apiKey:<sha-256 hex>".
func (k Key) String() string { return string(k.Kind) + ":" + k.ID }

// Describe names the quota for a person reading an error message.
func (k Key) Describe() string {
	if k.Kind == OAuthClient {
		return fmt.Sprintf("Keap's quota of OAuth client %s", k.ID)
	}
	return fmt.Sprintf("Keap's quota of the API key with SHA-256 %s…", k.ID[:12])
}

// Class orders calls of the same quota: interactive before background.
type Class int

// The classes of call.
const (
	Interactive Class = iota // a caller waits for the answer (/hubs, /proxy)
	Background               // polling, hook checks: nobody waits
)

// Limits are one kind's limits, as Keap states them.
type Limits struct {
	PerSecond int // the spike limit
	PerMinute int
	PerDay    int
}

// rate is how many calls a second the limits allow all day long: the spike
// limit, or the minute's limit spread over its seconds if that is lower.
func (l Limits) rate() int {
	r := l.PerSecond
	if m := l.PerMinute / 60; m < r {
		r = m
	}
	return max(r, 1)
}

// Keap's published limits ("Quotas" in Keap's API reference).
var (
	KeapClientLimits = Limits{PerSecond: 25, PerMinute: 1500, PerDay: 150_000}
	KeapKeyLimits    = Limits{PerSecond: 10, PerMinute: 240, PerDay: 30_000}
)

// ParseLimits reads CONNECTORD_KEAP_QUOTAS: semicolon-separated kinds, each
// "client:" or "key:" and comma-separated second=N, minute=N, day=N, for
// example "client:second=25,minute=1500,day=150000;key:second=10". What is not
// named keeps Keap's figure.
func ParseLimits(v string) (client, key Limits, err error) {
	client, key = KeapClientLimits, KeapKeyLimits
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, figures, ok := strings.Cut(part, ":")
		var l *Limits
		switch strings.TrimSpace(kind) {
		case "client":
			l = &client
		case "key":
			l = &key
		}
		if !ok || l == nil {
			return client, key, fmt.Errorf("%q does not start with client: or key:", part)
		}
		for _, f := range strings.Split(figures, ",") {
			name, num, ok := strings.Cut(strings.TrimSpace(f), "=")
			n, err := strconv.Atoi(strings.TrimSpace(num))
			if !ok || err != nil || n < 1 {
				return client, key, fmt.Errorf("%q is not second=N, minute=N or day=N with N a whole number of at least 1", f)
			}
			switch strings.TrimSpace(name) {
			case "second":
				l.PerSecond = n
			case "minute":
				l.PerMinute = n
			case "day":
				l.PerDay = n
			default:
				return client, key, fmt.Errorf("%q: %q is not second, minute or day", f, name)
			}
		}
	}
	return client, key, nil
}

// Figures are one quota's current figures, as every replica together spent it.
type Figures struct {
	Key             Key
	Limits          Limits
	Rate            int       // calls a second the replicas share
	MinuteUsed      int       // calls sent in the current minute (UTC)
	DayUsed         int       // calls sent today (UTC), or what Keap said, if more
	Waiting         int       // calls waiting for a turn, on every replica
	PausedUntil     time.Time // Keap asked every caller of the quota to wait until then
	DayResetsAt     time.Time // the next UTC midnight
	Replicas        int       // live replicas holding a lease on it
	Grant           int       // this replica's calls a second
	InstanceMinute  int       // the instance's calls this minute, on every replica
	InstanceDay     int       // the instance's calls today
	InstanceWaiting int       // the instance's calls waiting, on every replica
	OrgMinute       int       // the organization's instances' calls this minute
	OrgDay          int       // and today
	OrgWaiting      int       // and waiting
}

// MinuteRemaining is what is left of the minute's limit.
func (f Figures) MinuteRemaining() int { return max(f.Limits.PerMinute-f.MinuteUsed, 0) }

// DayRemaining is what is left of the day's limit.
func (f Figures) DayRemaining() int { return max(f.Limits.PerDay-f.DayUsed, 0) }
