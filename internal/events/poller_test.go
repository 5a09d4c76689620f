package events

import (
	"fmt"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
)

func contactsResource() instances.PollResource {
	return instances.PollResource{Object: "contacts", IDField: "id", CreatedField: "date_created", UpdatedField: "last_updated",
		Resource: elements.Resource{Name: "contacts", ListKey: "contacts", Events: &elements.ResourceEvents{UpdatedDateField: "last_updated"}}}
}

func TestAdvance_TiesAtTheCursorAreNeitherSkippedNorRepeated(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	rec := func(id string, created, updated time.Time) record {
		return record{id: id, created: created, hasCreated: true, updated: updated, raw: []byte(`{"id":` + id + `}`)}
	}
	from := t0
	cur := PollCursor{Resource: "contacts", At: ms(5), IDs: []string{"1"}}
	// Keap's since is inclusive: the page repeats contact 1 at the cursor, and
	// contact 2 shares its millisecond but was on the next page last time.
	next, evs, objects := advance(cur, page{records: []record{
		rec("1", ms(5), ms(5)), rec("2", ms(5), ms(5)), rec("3", ms(-100), ms(7)), rec("4", ms(7), ms(7)),
	}}, from, nil, "infusionsoftrest", "contacts")
	got := fmt.Sprintln(evs[0].ObjectID, evs[0].EventType, evs[1].ObjectID, evs[1].EventType, evs[2].ObjectID, evs[2].EventType)
	if len(evs) != 3 || got != "2 CREATED 3 UPDATED 4 CREATED\n" || len(objects) != 3 {
		t.Fatalf("events %v (%s)", evs, got)
	}
	if !next.At.Equal(ms(7)) || fmt.Sprint(next.IDs) != "[3 4]" {
		t.Fatalf("cursor after the page: %v %v, want %v [3 4]", next.At, next.IDs, ms(7))
	}
	// The next page starts at the new cursor: 3 and 4 are not repeated, 5
	// (same millisecond, beyond the page boundary) is reported.
	next, evs, _ = advance(next, page{records: []record{rec("3", ms(-100), ms(7)), rec("4", ms(7), ms(7)), rec("5", ms(7), ms(7))}}, from, nil, "infusionsoftrest", "contacts")
	if len(evs) != 1 || evs[0].ObjectID != "5" || fmt.Sprint(next.IDs) != "[3 4 5]" {
		t.Fatalf("second page: %v, cursor ids %v", evs, next.IDs)
	}
	// A page of nothing new leaves the cursor alone.
	again, evs, _ := advance(next, page{records: []record{rec("5", ms(7), ms(7))}}, from, nil, "infusionsoftrest", "contacts")
	if len(evs) != 0 || !again.At.Equal(next.At) || len(again.IDs) != 3 {
		t.Fatalf("nothing new: %v %+v", evs, again)
	}
}

// A sweep that starts at a cursor shared by records created in its very
// millisecond reports a change to one of them as UPDATED: it was reported
// CREATED by the sweep before. One created in that millisecond that the last
// sweep did not see is still CREATED.
func TestAdvance_ChangeToARecordCreatedAtTheSweepStartIsUpdated(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	rec := func(id string, created, updated time.Time) record {
		return record{id: id, created: created, hasCreated: true, updated: updated, raw: []byte(`{"id":` + id + `}`)}
	}
	cur := PollCursor{Resource: "contacts", At: ms(5), IDs: []string{"1", "2"}}
	_, evs, _ := advance(cur, page{records: []record{rec("2", ms(5), ms(9)), rec("3", ms(5), ms(9)), rec("4", ms(1), ms(9))}},
		cur.At, map[string]bool{"1": true, "2": true}, "infusionsoftrest", "contacts")
	got := fmt.Sprint(len(evs))
	for _, e := range evs {
		got += " " + e.ObjectID + " " + e.EventType
	}
	if got != "3 2 UPDATED 3 CREATED 4 UPDATED" {
		t.Fatalf("events: %s", got)
	}
}

func TestParsePage_ReadsKeapDates(t *testing.T) {
	body := []byte(`{"contacts":[{"id":7,"date_created":"2026-11-01T12:00:00.123Z","last_updated":"2026-11-01T13:00:00.000+0000"}],"count":1,"next":"x"}`)
	pg, err := parsePage(body, contactsResource())
	if err != nil || len(pg.records) != 1 {
		t.Fatalf("%+v %v", pg, err)
	}
	r := pg.records[0]
	if r.id != "7" || !r.hasCreated || r.created.Format(time.RFC3339Nano) != "2026-11-01T12:00:00.123Z" || r.updated.Hour() != 13 {
		t.Fatalf("record %+v", r)
	}
	for _, bad := range []string{`{"contacts":[{"id":7}]}`, `{"contacts":[{"last_updated":"2026-11-01T13:00:00Z"}]}`, `[]`, `{"contacts":{}}`} {
		if _, err := parsePage([]byte(bad), contactsResource()); err == nil {
			t.Errorf("%s: want an error naming what is missing", bad)
		}
	}
}

// FuzzParsePage: whatever Keap answers, parsing returns records or an error,
// never a panic, and every record has an id.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte(`{"contacts":[{"id":7,"date_created":"2026-11-01T12:00:00.123Z","last_updated":"2026-11-01T13:00:00.000+0000"}]}`))
	f.Add([]byte(`{"contacts":[{"id":"x","last_updated":"2026-11-01T13:00:00"}],"next":null}`))
	f.Add([]byte(`{"contacts":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		pg, err := parsePage(body, contactsResource())
		if err != nil {
			return
		}
		for _, r := range pg.records {
			if r.id == "" || r.updated.IsZero() && r.updated.Location() == nil {
				t.Fatalf("record without id or date: %+v", r)
			}
		}
	})
}
