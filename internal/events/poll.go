package events

import (
	"encoding/json"
	"time"
)

// PollCursor is where polling of one resource of one instance stands.
type PollCursor struct {
	Resource string
	// At is the newest change time reported; IDs are the records reported
	// whose change time is exactly At. The next poll asks Keap for changes
	// from At on and skips those.
	At  time.Time
	IDs []string
	// SweepFrom is At when the sweep under way began, nil between sweeps: a
	// record created at or after it is reported CREATED.
	SweepFrom *time.Time
	Due       bool // the claim found it due; a claim leases an instance's other cursors too
}

// PollClaim is one instance leased to a poller, with its cursors.
type PollClaim struct {
	InstanceID int64
	Cursors    []PollCursor
}

// PollWant is what one instance should poll, as its configuration says now.
type PollWant struct {
	InstanceID int64
	Resources  []string
	Interval   time.Duration
}

// PollPage is the outcome of one page of a poll: its events and the cursor
// after it, stored in one transaction.
type PollPage struct {
	InstanceID int64
	Owner      string // the lease holder; a poller that lost its lease stores nothing
	Lease      time.Duration
	Cursor     PollCursor        // the cursor after this page, SweepFrom set
	Events     []Event           // in the order Keap listed them
	Objects    []json.RawMessage // the record each event came from, for raw
	ListKey    string            // raw is {"<ListKey>": [the records of the notification]}
}

// PollResult is how the poll of one cursor ended, recorded when the lease is
// handed back.
type PollResult struct {
	Resource  string
	NextPoll  time.Time
	SweepDone bool   // every change up to now was read: the next poll starts a new sweep
	Error     string // empty on success
	Stop      bool   // Keap refused the credentials: no more polls until the instance changes
}

// PollStatus is one of an instance's polling cursors, as
// GET /instances/{id}/events/polling shows it.
type PollStatus struct {
	Resource     string     `json:"resource"`
	At           time.Time  `json:"cursorDate"` // the newest change reported so far
	IDs          []string   `json:"-"`          // the ids reported at exactly At
	NextPoll     time.Time  `json:"nextPollDate"`
	LeaseOwner   string     `json:"-"` // the replica polling it now, if any
	LastPolledAt *time.Time `json:"lastPolledDate,omitempty"`
	LastError    string     `json:"lastError,omitempty"`
	// Stopped: Keap refused the credentials even after a token renewal;
	// polling resumes when the instance changes.
	Stopped bool `json:"stopped"`
}

// PollState is an instance's polling, as GET /instances/{id}/events/polling shows it.
type PollState struct {
	Cursors []PollStatus `json:"cursors"`
}
