package hubs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/instances"
)

// list serves GET on a collection: one Keap page, filtered and ordered by
// Keap, unwrapped from its envelope.
func (s *Service) list(ctx context.Context, c *call) (*Result, error) {
	q := c.req.Query
	out := url.Values{}
	names, err := c.methodParams(out)
	if err != nil {
		return nil, err
	}
	listParams := []string{"where", "orderBy", "pageSize", "nextPage", "page", "returnTotalCount"}
	if err := onlyParams(q, "GET "+c.describe(), append(listParams, names...)...); err != nil {
		return nil, err
	}
	for _, name := range listParams {
		if len(q[name]) > 1 {
			return nil, apperr.Errorf(apperr.Invalid, "give %s once", name)
		}
	}
	if err := mapWhere(c.res, q.Get("where"), out); err != nil {
		return nil, err
	}
	if err := mapOrderBy(c.res, q.Get("orderBy"), out); err != nil {
		return nil, err
	}
	size, err := pageSize(q.Get("pageSize"), c.el, c.inst)
	if err != nil {
		return nil, err
	}
	key := cursorKey(c.describe(), c.req.ID, q.Get("where"), q.Get("orderBy"))
	offset := 0
	if v := q.Get("nextPage"); v != "" {
		if offset, err = decodeCursor(v, key); err != nil {
			return nil, err
		}
	}
	if v := q.Get("page"); v != "" {
		if q.Get("nextPage") != "" {
			return nil, apperr.Errorf(apperr.Invalid, "give page or nextPage, not both: they name different pages")
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageNumber {
			return nil, apperr.Errorf(apperr.Invalid, "page must be a whole number from 1 to %d, not %q", maxPageNumber, v)
		}
		offset = (n - 1) * size
	}
	wantTotal, err := returnTotalCount(q.Get("returnTotalCount"))
	if err != nil {
		return nil, err
	}
	out.Set("limit", strconv.Itoa(size))
	out.Set("offset", strconv.Itoa(offset))

	_, data, err := s.send(ctx, c, "GET", c.path, out, nil)
	if err != nil {
		return nil, err
	}
	// Keap's envelope is read where it lies, checked and its list re-encoded
	// in one pass (readPage), rather than decoded into maps and encoded again.
	page, err := readPage(data, c.res.ListKey, c.stripNulls())
	switch {
	case errors.Is(err, errLacksList):
		return nil, apperr.Errorf(apperr.ProviderDown, "Keap's answer to GET %s lacks its list %q", c.describe(), c.res.ListKey)
	case errors.Is(err, errNoList):
		return nil, apperr.Errorf(apperr.ProviderDown, "Keap's answer to GET %s has no list in %q", c.describe(), c.res.ListKey)
	case err != nil:
		return nil, apperr.Errorf(apperr.ProviderDown, "Keap's answer to GET %s is not a JSON object", c.describe())
	}
	n := page.n
	// Keap's next link is there even past the last page: decide from the
	// count of matches, or, without one, from a full page.
	more := n == size
	var count int
	if err := json.Unmarshal(page.count, &count); err == nil && page.count != nil {
		more = n > 0 && offset+n < count
	}
	r := &Result{Status: http.StatusOK, Body: page.body}
	if wantTotal && page.count != nil && count >= 0 {
		r.TotalCount = &count
	}
	if more {
		r.NextPage = encodeCursor(offset+n, key)
	}
	return r, nil
}

// maxPageNumber bounds Open Connectors' page parameter, so that the offset
// it makes stays an int Keap reads.
const maxPageNumber = 1_000_000

// returnTotalCount reads Open Connectors' returnTotalCount parameter.
func returnTotalCount(v string) (bool, error) {
	switch v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, apperr.Errorf(apperr.Invalid, "returnTotalCount must be true or false, not %q", v)
}

// pageSize reads the caller's pageSize, capped by the instance's pagination.max.
func pageSize(v string, el *elements.Element, inst *instances.Instance) (int, error) {
	limit, err := strconv.Atoi(instances.Value(el, inst, KeyPageMax))
	if err != nil || limit < 1 {
		limit = DefaultPageSize
	}
	if v == "" {
		return min(DefaultPageSize, limit), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, apperr.Errorf(apperr.Invalid, "pageSize must be a whole number from 1 to %d (this instance's pagination.max), not %q", limit, v)
	}
	return min(n, limit), nil
}

// The cursor is the Keap offset of the next page, tied to the query it pages
// through, so a cursor garbled, forged or reused with another where or orderBy
// is refused rather than silently paging something else.

func cursorKey(parts ...string) string { return strings.Join(parts, "\x00") }

func cursorCheck(offset int, key string) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(offset) + "\x00" + key))
	return hex.EncodeToString(sum[:6])
}

func encodeCursor(offset int, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.Itoa(offset) + "." + cursorCheck(offset, key)))
}

func decodeCursor(v, key string) (int, error) {
	bad := apperr.Errorf(apperr.Invalid, "nextPage is not a cursor of this query: pass the Elements-Next-Page-Token of the previous page unchanged, with the same where and orderBy")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < 2 || b[0] != 'o' {
		return 0, bad
	}
	num, check, ok := strings.Cut(string(b[1:]), ".")
	offset, err := strconv.Atoi(num)
	if !ok || err != nil || offset < 0 || strconv.Itoa(offset) != num || check != cursorCheck(offset, key) {
		return 0, bad
	}
	return offset, nil
}

// mapWhere turns a CEQL where clause into Keap's list parameters.
func mapWhere(res elements.Resource, where string, out url.Values) error {
	terms, err := ParseWhere(where)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "%s; %s", err.Error(), supported(res))
	}
	seen := map[string]string{} // Keap parameter -> the term that set it
	set := func(t Term, param, value string) error {
		if prev, dup := seen[param]; dup {
			return apperr.Errorf(apperr.Invalid, "where: %s and %s both set Keap's %s: give one", prev, t, param)
		}
		seen[param] = t.String()
		out.Set(param, value)
		return nil
	}
	for _, t := range terms {
		if param, ok := res.Filters[t.Field]; ok {
			if t.Op != "=" {
				return apperr.Errorf(apperr.Invalid, "where: operator %s is not supported on %s, only =; %s", t.Op, t.Field, supported(res))
			}
			v, err := filterValue(t, res.ParamTypes[param])
			if err != nil {
				return err
			}
			if err := set(t, param, v); err != nil {
				return err
			}
			continue
		}
		if df, ok := res.DateFilters[t.Field]; ok {
			param, shift := "", time.Duration(0)
			switch t.Op {
			case ">=":
				param = df.After
			case ">":
				param, shift = df.After, time.Millisecond
			case "<=":
				param = df.Before
			case "<":
				param, shift = df.Before, -time.Millisecond
			}
			if param == "" {
				return apperr.Errorf(apperr.Invalid, "where: operator %s is not supported on %s; %s", t.Op, t.Field, supported(res))
			}
			at, err := dateValue(t)
			if err != nil {
				return err
			}
			// Keap's bounds are inclusive and its times have millisecond
			// precision, so a strict bound is the next millisecond.
			if err := set(t, param, at.Add(shift).UTC().Format("2006-01-02T15:04:05.000Z")); err != nil {
				return err
			}
			continue
		}
		return apperr.Errorf(apperr.Invalid, "where: %s cannot filter on %s; %s", res.Name, t.Field, supported(res))
	}
	return nil
}

// supported says which where fields and operators a resource takes.
func supported(res elements.Resource) string {
	var parts []string
	for _, f := range slices.Sorted(maps.Keys(res.Filters)) {
		parts = append(parts, f+" =")
	}
	for _, f := range slices.Sorted(maps.Keys(res.DateFilters)) {
		var ops []string
		if res.DateFilters[f].After != "" {
			ops = append(ops, ">", ">=")
		}
		if res.DateFilters[f].Before != "" {
			ops = append(ops, "<", "<=")
		}
		parts = append(parts, f+" "+strings.Join(ops, " "))
	}
	if len(parts) == 0 {
		return "Keap cannot filter " + res.Name + ": leave out where"
	}
	return "supported for " + res.Name + ": " + strings.Join(parts, ", ") + " (terms joined by and)"
}

func filterValue(t Term, typ string) (string, error) {
	v := t.Value
	switch typ {
	case "integer":
		if _, err := strconv.ParseInt(v.Text, 10, 64); (v.Kind == NumberLit || v.Kind == StringLit) && err == nil {
			return v.Text, nil
		}
		return "", apperr.Errorf(apperr.Invalid, "where: %s takes a whole number, e.g. %s = 42", t.Field, t.Field)
	case "boolean":
		if v.Kind == BoolLit || v.Kind == StringLit && (v.Text == "true" || v.Text == "false") {
			return v.Text, nil
		}
		return "", apperr.Errorf(apperr.Invalid, "where: %s takes true or false", t.Field)
	}
	if v.Kind != StringLit {
		return "", apperr.Errorf(apperr.Invalid, "where: %s takes text in single quotes, e.g. %s = 'value'", t.Field, t.Field)
	}
	return v.Text, nil
}

func dateValue(t Term) (time.Time, error) {
	if t.Value.Kind == StringLit {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if at, err := time.Parse(layout, t.Value.Text); err == nil {
				return at, nil
			}
		}
	}
	return time.Time{}, apperr.Errorf(apperr.Invalid, "where: %s takes a date or date-time in single quotes, e.g. '2024-01-31' or '2024-01-31T12:00:00Z'", t.Field)
}

// mapOrderBy turns `field [asc|desc]` into Keap's order and direction.
func mapOrderBy(res elements.Resource, v string, out url.Values) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	fields := strings.Fields(v)
	hint := func() string {
		if len(res.OrderBy) == 0 {
			return "Keap cannot order " + res.Name
		}
		dir := ""
		if res.OrderDirection != "" {
			dir = " [asc|desc]"
		}
		return fmt.Sprintf("orderBy takes one of %s%s", strings.Join(slices.Sorted(maps.Keys(res.OrderBy)), ", "), dir)
	}
	if strings.Contains(v, ",") || len(fields) > 2 {
		return apperr.Errorf(apperr.Invalid, "orderBy: Keap orders by one field; %s", hint())
	}
	order, ok := res.OrderBy[fields[0]]
	if !ok {
		return apperr.Errorf(apperr.Invalid, "orderBy: %s cannot be ordered by %s; %s", res.Name, fields[0], hint())
	}
	out.Set("order", order)
	if len(fields) == 1 {
		return nil
	}
	dir := strings.ToLower(fields[1])
	switch {
	case dir != "asc" && dir != "desc":
		return apperr.Errorf(apperr.Invalid, "orderBy: the direction is asc or desc, not %s", fields[1])
	case res.OrderDirection == "":
		return apperr.Errorf(apperr.Invalid, "orderBy: Keap orders %s in its own direction; leave out %s", res.Name, fields[1])
	}
	out.Set(res.OrderDirection, map[string]string{"asc": "ASCENDING", "desc": "DESCENDING"}[dir])
	return nil
}
