package xmlrpcbridge

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/connectord/connectord/internal/keap"
)

// maxLimit is the most rows one DataService.query returns, as at Keap.
const maxLimit = 1000

func (c *rcall) table(name, op string) (*table, error) {
	t, ok := c.b.tables[name]
	if !ok {
		return nil, fault("InvalidParameter", "Invalid table name: %s (the bridge serves %s)", name, strings.Join(slices.Sorted(maps.Keys(c.b.tables)), ", "))
	}
	if !slices.Contains(t.Ops, op) {
		return nil, fault("InvalidParameter", "the bridge does not %s the %s table: REST v2 has no equivalent (it can %s it). %s", op, name, strings.Join(t.Ops, ", "), t.About)
	}
	return t, nil
}

// viewFor picks the view the values name, and the value its path takes.
func (t *table) viewFor(values map[string]any) (*view, string, error) {
	if len(t.Views) == 1 && t.Views[0].By == "" {
		return &t.Views[0], "", nil
	}
	var names []string
	for i := range t.Views {
		v := &t.Views[i]
		given, ok := values[v.By]
		switch {
		case ok && v.Value == "":
			return v, text(given), nil
		case ok && strings.EqualFold(text(given), v.Value):
			return v, "", nil
		}
		if v.Value != "" {
			names = append(names, v.By+" "+v.Value)
		} else {
			names = append(names, v.By)
		}
	}
	return nil, "", fault("InvalidParameter", "a %s call must name %s: REST v2 keeps it apart by these", t.Name, strings.Join(names, " or "))
}

// queryArgs are a DataService.query's.
type queryArgs struct {
	table       string
	limit, page int64
	query       map[string]any
	fields      []any
	orderBy     string
	ascending   bool
}

// listQuery is the v2 list request a query becomes.
type listQuery struct {
	view   *view
	path   string
	params url.Values
	param  any // the selector's value, for "param" fields
}

func (c *rcall) prepare(t *table, query map[string]any, fields []any) (*listQuery, error) {
	v, pathValue, err := t.viewFor(query)
	if err != nil {
		return nil, err
	}
	if v, err = c.withCustom(v, keys(query), names(fields)); err != nil {
		return nil, err
	}
	lq := &listQuery{view: v, params: url.Values{}}
	lq.path = strings.ReplaceAll(v.Path, "{value}", escapeSegment(pathValue))
	if v.By != "" {
		lq.param = query[v.By]
	}
	for _, n := range fields {
		name, _ := n.(string)
		if v.Fields[name] == nil {
			return nil, fault("NoFieldFound", "No field found: %s.%v (the bridge maps %s)", t.Name, n, v.fieldNames(nil))
		}
	}
	var filters []string
	for _, name := range slices.Sorted(maps.Keys(query)) {
		if name == v.By {
			continue
		}
		f := v.Fields[name]
		if f == nil {
			return nil, fault("NoFieldFound", "No field found: %s.%s (the bridge maps %s)", t.Name, name, v.fieldNames(nil))
		}
		cond, err := condition(t.Name, name, f, query[name], v)
		if err != nil {
			return nil, err
		}
		filters = append(filters, cond)
	}
	if len(filters) > 0 {
		lq.params.Set("filter", strings.Join(filters, ";"))
	}
	if f := members(v, fields); len(f) > 0 {
		lq.params.Set("fields", strings.Join(f, ","))
	}
	return lq, nil
}

// condition is one v2 filter term for query[name] = want.
func condition(table, name string, f *field, want any, v *view) (string, error) {
	filterable := func(f *field) bool { return f.Filter != "" }
	if f.Filter == "" {
		return "", fault("InvalidParameter", "%s.%s cannot be queried: REST v2 has no filter for it; query %s on %s", table, name, table, v.fieldNames(filterable))
	}
	switch want.(type) {
	case map[string]any, []any, nil:
		return "", fault("InvalidParameter", "%s.%s: a query value is text, a number or a date, not %s", table, name, kind(want))
	}
	s := text(want)
	switch {
	case s == "~null~":
		if f.Null == "" {
			return "", fault("InvalidParameter", "%s.%s: REST v2 cannot look for an empty value (~null~) there; ~null~ works on %s", table, name,
				v.fieldNames(func(f *field) bool { return f.Null != "" }))
		}
		return f.Filter + "==" + f.Null, nil
	case strings.ContainsAny(s, ";*"):
		return "", fault("InvalidParameter", "%s.%s: the bridge cannot pass a value with ; or * to REST v2's filter", table, name)
	case strings.Contains(s, "%"):
		if !f.Wildcard || strings.Count(s, "%") > 1 || !strings.HasSuffix(s, "%") {
			return "", fault("InvalidParameter", "%s.%s: REST v2 matches only a trailing %% (starts with), on %s", table, name,
				v.fieldNames(func(f *field) bool { return f.Wildcard }))
		}
		return f.Filter + "==" + strings.TrimSuffix(s, "%") + "*", nil
	}
	switch f.Type {
	case "flag", "paid":
		b, err := fromXML(table, name, &field{Type: "flag"}, want)
		if err != nil {
			return "", err
		}
		s = strconv.FormatBool(b.(bool))
	case "date":
		d, err := fromXML(table, name, f, want)
		if err != nil {
			return "", err
		}
		s = d.(string)
	}
	return f.Filter + "==" + s, nil
}

// members are the top-level v2 members the fields are read from that the
// view asks for with ?fields=.
func members(v *view, fields []any) []string {
	set := map[string]bool{}
	for _, n := range fields {
		name, _ := n.(string)
		if f := v.Fields[name]; f != nil && f.Path != "" && slices.Contains(v.FieldsParam, top(f.Path)) {
			set[top(f.Path)] = true
		}
	}
	if len(set) > 0 && slices.Contains(v.FieldsParam, "id") {
		set["id"] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// row is one record as Keap's XML-RPC answered it: the asked fields that have a value.
func row(v *view, rec map[string]any, fields []any, param any) map[string]any {
	out := map[string]any{}
	for _, n := range fields {
		name, _ := n.(string)
		f := v.Fields[name]
		if f.Type == "param" {
			if x, err := fromXML("", name, &field{Type: "int"}, param); err == nil {
				out[name] = x
			} else if param != nil {
				out[name] = param
			}
			continue
		}
		if x, ok := toXML(f, get(rec, f.Path)); ok {
			out[name] = x
		}
	}
	return out
}

func (c *rcall) query(a queryArgs) (any, error) {
	t, err := c.table(a.table, "query")
	if err != nil {
		return nil, err
	}
	if a.limit < 1 || a.limit > maxLimit || a.page < 0 {
		return nil, fault("InvalidParameter", "limit must be between 1 and %d and page 0 or more (got limit %d, page %d)", maxLimit, a.limit, a.page)
	}
	lq, err := c.prepare(t, a.query, a.fields)
	if err != nil {
		return nil, err
	}
	v := lq.view
	switch {
	case a.orderBy != "":
		by, ok := v.Orders[a.orderBy]
		if !ok {
			if v.Fields[a.orderBy] == nil {
				return nil, fault("NoFieldFound", "No field found: %s.%s", t.Name, a.orderBy)
			}
			can := strings.Join(slices.Sorted(maps.Keys(v.Orders)), ", ")
			if can == "" {
				can = "nothing: leave the order out"
			}
			return nil, fault("InvalidParameter", "REST v2 cannot order %s by %s; order by %s", t.Name, a.orderBy, can)
		}
		lq.params.Set("order_by", by+" "+map[bool]string{true: "asc", false: "desc"}[a.ascending])
	case v.DefaultOrder != "":
		lq.params.Set("order_by", v.DefaultOrder)
	}
	// REST v2 pages by token: page n of the query is the n+1th page of
	// a.limit records, reached by following n tokens, or fewer when the
	// token of a page on the way is remembered from an earlier call.
	lq.params.Set("page_size", strconv.FormatInt(a.limit, 10))
	query := lq.path + "?" + lq.params.Encode()
	p, token := c.b.pages.nearest(c.target.InstanceID, query, a.page)
	if a.page-p > maxWalk {
		return nil, fault("InvalidParameter", "page %d of %d records needs %d REST v2 calls (v2 pages by token, not by number); the bridge follows at most %d: page through in order, or ask for more records per page (limit up to %d)",
			a.page, a.limit, a.page-p+1, maxWalk, maxLimit)
	}
	for ; ; p++ {
		if token != "" {
			lq.params.Set("page_token", token)
		}
		resp, err := c.rest(http.MethodGet, lq.path, lq.params, nil)
		var re *restError
		if token != "" && errors.As(err, &re) && re.status == http.StatusBadRequest && p > 0 {
			// A remembered token Keap no longer takes: walk from the start.
			c.b.pages.forget(c.target.InstanceID, query, p)
			p, token = -1, ""
			lq.params.Del("page_token")
			continue
		}
		if err != nil {
			return nil, translate(err, c.selectorMissing(t, lq))
		}
		next, _ := resp["next_page_token"].(string)
		items := list(resp, v.ListKey)
		if next != "" && len(items) > 0 {
			c.b.pages.put(c.target.InstanceID, query, p+1, next)
		}
		if p == a.page {
			out := []any{}
			for _, it := range items {
				out = append(out, row(v, it, a.fields, lq.param))
			}
			return out, nil
		}
		if next == "" || len(items) == 0 {
			return []any{}, nil
		}
		token = next
	}
}

// selectorMissing is the fault for a 404 on a list whose path names a record.
func (c *rcall) selectorMissing(t *table, lq *listQuery) *keap.Fault {
	if lq.param == nil {
		return nil
	}
	return fault("RecordNotFound", "Record was not found: %s %s", lq.view.By, text(lq.param))
}

func list(resp map[string]any, key string) []map[string]any {
	items, _ := resp[key].([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (c *rcall) count(table string, query map[string]any) (any, error) {
	t, err := c.table(table, "count")
	if err != nil {
		return nil, err
	}
	lq, err := c.prepare(t, query, nil)
	if err != nil {
		return nil, err
	}
	// REST v2 answers no total: count is the sum of full pages' lengths.
	lq.params.Set("page_size", strconv.Itoa(maxLimit))
	var n int64
	for {
		resp, err := c.rest(http.MethodGet, lq.path, lq.params, nil)
		if err != nil {
			return nil, translate(err, c.selectorMissing(t, lq))
		}
		items := list(resp, lq.view.ListKey)
		n += int64(len(items))
		token, _ := resp["next_page_token"].(string)
		if token == "" || len(items) == 0 {
			return n, nil
		}
		lq.params.Set("page_token", token)
	}
}

// find reads one record by id, trying the table's views in order; the view
// it was found in comes back too.
func (c *rcall) find(t *table, id int64, fields []any) (*view, map[string]any, error) {
	for i := range t.Views {
		v := &t.Views[i]
		if v.Fields["Id"] == nil {
			continue
		}
		v, err := c.withCustom(v, names(fields))
		if err != nil {
			return nil, nil, err
		}
		params := url.Values{}
		if f := members(v, fields); len(f) > 0 {
			params.Set("fields", strings.Join(f, ","))
		}
		if placeholder.FindAllString(v.Item, -1)[0] == "{id}" && len(placeholder.FindAllString(v.Item, -1)) == 1 {
			p := strings.ReplaceAll(v.Item, "{id}", strconv.FormatInt(id, 10))
			rec, err := c.rest(http.MethodGet, p, params, nil)
			var re *restError
			if errors.As(err, &re) && re.status == http.StatusNotFound {
				continue
			}
			if err != nil {
				return nil, nil, translate(err, nil)
			}
			return v, rec, nil
		}
		// The item path needs more than the id: find the record through the
		// list's id filter.
		params.Set("filter", v.Fields["Id"].Filter+"=="+strconv.FormatInt(id, 10))
		params.Set("page_size", "1")
		resp, err := c.rest(http.MethodGet, v.Path, params, nil)
		if err != nil {
			return nil, nil, translate(err, nil)
		}
		if items := list(resp, v.ListKey); len(items) > 0 {
			return v, items[0], nil
		}
	}
	return nil, nil, recordNotFound(t.Name, id)
}

func (c *rcall) load(table string, id int64, fields []any) (any, error) {
	t, err := c.table(table, "load")
	if err != nil {
		return nil, err
	}
	for _, n := range fields {
		name, _ := n.(string)
		if !strings.HasPrefix(name, "_") && !slices.ContainsFunc(t.Views, func(v view) bool { return v.Fields[name] != nil }) {
			return nil, fault("NoFieldFound", "No field found: %s.%v (the bridge maps %s)", t.Name, n, t.Views[0].fieldNames(nil))
		}
	}
	v, rec, err := c.find(t, id, fields)
	if err != nil {
		return nil, err
	}
	for _, n := range fields {
		if v.Fields[n.(string)] == nil {
			return nil, fault("NoFieldFound", "No field found: %s.%v for a %s %s (the bridge maps %s)", t.Name, n, v.By, v.Value, v.fieldNames(nil))
		}
	}
	return row(v, rec, fields, v.Value), nil
}

// body turns the values a caller gave into v2 members on rec; it returns the
// top-level members written and the values the paths take.
func body(t *table, v *view, values map[string]any, rec map[string]any) ([]string, error) {
	tops := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		f := v.Fields[name]
		switch {
		case f == nil:
			return nil, fault("NoFieldFound", "No field found: %s.%s (the bridge maps %s)", t.Name, name, v.fieldNames(nil))
		case f.Type == "param" || f.InPath:
			continue
		case f.ReadOnly:
			return nil, fault("InvalidParameter", "Field %s.%s is read-only", t.Name, name)
		}
		x, err := fromXML(t.Name, name, f, values[name])
		if err != nil {
			return nil, err
		}
		set(rec, f.writePath(), x)
		tops[top(f.writePath())] = true
	}
	return slices.Sorted(maps.Keys(tops)), nil
}

// trim keeps, of the array members a request carries, only the item members
// a request takes (a read record has more).
func trim(v *view, rec map[string]any, tops []string) map[string]any {
	out := map[string]any{}
	for _, m := range tops {
		keep, ok := v.RequestItems[m]
		items, isList := rec[m].([]any)
		if !ok || !isList {
			out[m] = rec[m]
			continue
		}
		list := []any{}
		for _, it := range items {
			src, _ := it.(map[string]any)
			dst := map[string]any{}
			for _, k := range keep {
				if x, ok := src[k]; ok && x != nil {
					dst[k] = x
				}
			}
			list = append(list, dst)
		}
		out[m] = list
	}
	return out
}

func (c *rcall) add(table string, values map[string]any, dupCheck string) (any, error) {
	t, err := c.table(table, "add")
	if err != nil {
		return nil, err
	}
	v := &t.Views[0]
	if len(t.Views) > 1 {
		if v, _, err = t.viewFor(values); err != nil {
			return nil, err
		}
	}
	if v, err = c.withCustom(v, keys(values)); err != nil {
		return nil, err
	}
	rec := map[string]any{}
	if _, err := body(t, v, values, rec); err != nil {
		return nil, err
	}
	for k, d := range v.Defaults {
		if _, ok := rec[k]; !ok {
			rec[k] = d
		}
	}
	for k, from := range v.Copies {
		if _, ok := rec[k]; !ok && rec[from] != nil {
			rec[k] = rec[from]
		}
	}
	p, err := fill(v.Create, func(name string) (string, bool) {
		x, ok := values[name]
		return text(x), ok
	})
	if err != nil {
		return nil, fault("InvalidParameter", "adding to %s %s", t.Name, err.Error())
	}
	var params url.Values
	if dupCheck != "" {
		params = url.Values{"duplicate_option": {dupCheck}}
	}
	resp, err := c.rest(http.MethodPost, p, params, trim(v, rec, slices.Sorted(maps.Keys(rec))))
	if err != nil {
		return nil, translate(err, nil)
	}
	id, ok := toXML(&field{Type: "id"}, resp["id"])
	if !ok {
		return nil, fault("UnexpectedError", "Keap's answer to the new %s has no id", t.Name)
	}
	return id, nil
}

// update changes record id; it reads the record first when a written member
// is an array (a PATCH replaces the whole array) or its path needs more than the id.
func (c *rcall) update(table string, id int64, values map[string]any) (any, error) {
	t, err := c.table(table, "update")
	if err != nil {
		return nil, err
	}
	v := &t.Views[0]
	var rec map[string]any
	needsRead := len(t.Views) > 1 || len(placeholder.FindAllString(v.Item, -1)) > 1
	for name := range values {
		if f := v.Fields[name]; f != nil && strings.Contains(f.writePath(), "[") || strings.HasPrefix(name, "_") {
			needsRead = true // custom fields are entries of a list too
		}
	}
	if needsRead {
		if v, rec, err = c.find(t, id, nil); err != nil {
			return nil, err
		}
	}
	if v, err = c.withCustom(v, keys(values)); err != nil {
		return nil, err
	}
	next := map[string]any{}
	for k, x := range rec {
		next[k] = x
	}
	tops, err := body(t, v, values, next)
	if err != nil {
		return nil, err
	}
	if len(tops) == 0 {
		if rec == nil {
			if _, _, err := c.find(t, id, nil); err != nil {
				return nil, err
			}
		}
		return id, nil
	}
	p, err := fill(v.Item, func(name string) (string, bool) {
		if name == "id" {
			return strconv.FormatInt(id, 10), true
		}
		f := v.Fields[name]
		if f == nil {
			return "", false
		}
		x, ok := toXML(f, get(rec, f.Path))
		return text(x), ok
	})
	if err != nil {
		return nil, fault("InvalidParameter", "updating %s %s", t.Name, err.Error())
	}
	params := url.Values{"update_mask": tops}
	if _, err := c.rest(http.MethodPatch, p, params, trim(v, next, tops)); err != nil {
		return nil, translate(err, recordNotFound(t.Name, id))
	}
	return id, nil
}

func (c *rcall) delete(table string, id int64) (any, error) {
	t, err := c.table(table, "delete")
	if err != nil {
		return nil, err
	}
	v := &t.Views[0]
	var rec map[string]any
	if len(t.Views) > 1 || len(placeholder.FindAllString(v.Item, -1)) > 1 {
		if v, rec, err = c.find(t, id, nil); err != nil {
			return nil, err
		}
	}
	p, err := fill(v.Item, func(name string) (string, bool) {
		if name == "id" {
			return strconv.FormatInt(id, 10), true
		}
		f := v.Fields[name]
		if f == nil {
			return "", false
		}
		x, ok := toXML(f, get(rec, f.Path))
		return text(x), ok
	})
	if err != nil {
		return nil, fault("InvalidParameter", "deleting %s %s", t.Name, err.Error())
	}
	if _, err := c.rest(http.MethodDelete, p, nil, nil); err != nil {
		return nil, translate(err, recordNotFound(t.Name, id))
	}
	return true, nil
}
