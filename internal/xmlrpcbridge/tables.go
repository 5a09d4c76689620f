package xmlrpcbridge

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
)

//go:embed tables/*.json settings.json
var tableFiles embed.FS

// table is one of Keap's XML-RPC tables, as read from tables/{Name}.json.
type table struct {
	Name  string   `json:"table"`
	About string   `json:"about"`
	Ops   []string `json:"ops"` // query, load, add, update, delete, count
	view
	// Views are the REST resources a table spans (ContactAction: notes and
	// tasks) or the sides it is listed from (ContactGroupAssign). A table
	// without views is its own one view.
	Views []view `json:"views"`
}

// view is one REST v2 resource a table is read and written through.
type view struct {
	By    string `json:"by"`    // the XML-RPC field that selects this view
	Value string `json:"value"` // the value of By that selects it; empty: any, put in the path as {value}
	Path  string `json:"path"`  // the collection, under /crm/rest/v2
	Item  string `json:"item"`  // one record; default Path/{id}; other {Field} come from the record
	// Create is where records are made; default Path. {Field} come from the new values.
	Create  string `json:"create"`
	ListKey string `json:"listKey"`
	// FieldsParam are the members list and get may be asked for with
	// ?fields= (the others come anyway); empty: the view sends no fields.
	FieldsParam  []string            `json:"fieldsParam"`
	DefaultOrder string              `json:"defaultOrder"` // order_by when the caller names none
	Orders       map[string]string   `json:"orders"`       // XML-RPC field -> v2 order_by field
	Defaults     map[string]any      `json:"createDefaults"`
	Copies       map[string]string   `json:"createCopies"` // member -> the member it takes its value from when not given
	RequestItems map[string][]string `json:"requestItems"` // array member -> the item members a request carries
	Fields       map[string]*field   `json:"fields"`
	// Custom says where the view's custom fields are: Keap's XML-RPC named
	// them _FieldName; REST v2 keeps them by id in Member, named in Model's
	// custom_fields (field_name). Nil: the view has none.
	Custom *custom `json:"custom"`
}

// custom is where a view's custom fields are described and kept.
type custom struct {
	Model  string `json:"model"`
	Member string `json:"member"`
}

// field maps one XML-RPC field onto a v2 member.
type field struct {
	Path     string `json:"path"`     // where it is read, e.g. email_addresses[field=EMAIL1].email
	Write    string `json:"write"`    // where it is written, when not Path
	Type     string `json:"type"`     // string (default), id, int, double, cents, flag, date, idlist, paid, param
	ReadOnly bool   `json:"readOnly"` // Keap's XML-RPC refused writes too
	Filter   string `json:"filter"`   // the v2 filter that compares it; empty: not filterable
	Wildcard bool   `json:"wildcard"` // the filter takes a trailing * (Keap's trailing %)
	Null     string `json:"null"`     // what the filter takes for "no value" (Keap's ~null~); empty: none
	InPath   bool   `json:"inPath"`   // used in the item path only, not sent in bodies
}

func (f *field) writePath() string {
	if f.Write != "" {
		return f.Write
	}
	return f.Path
}

var opNames = []string{"query", "load", "add", "update", "delete", "count"}

// loadTables reads every table file.
func loadTables(fsys fs.FS) (map[string]*table, error) {
	files, err := fs.Glob(fsys, "tables/*.json")
	if err != nil {
		return nil, err
	}
	out := map[string]*table{}
	for _, name := range files {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		t := &table{}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(t); err != nil {
			return nil, fmt.Errorf("xmlrpcbridge: %s: %w", name, err)
		}
		if want := strings.TrimSuffix(path.Base(name), ".json"); t.Name != want {
			return nil, fmt.Errorf("xmlrpcbridge: %s names table %q", name, t.Name)
		}
		if len(t.Views) == 0 {
			t.Views = []view{t.view}
		}
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("xmlrpcbridge: %s: %w", name, err)
		}
		out[t.Name] = t
	}
	return out, nil
}

var (
	segment     = regexp.MustCompile(`^[a-z_0-9]+(\[[a-z_]+=[A-Za-z0-9_]+\])?$`)
	placeholder = regexp.MustCompile(`\{([A-Za-z]+)\}`)
)

var fieldTypes = []string{"", "string", "id", "int", "double", "flag", "date", "idlist", "paid", "param", "cents"}

func (t *table) check() error {
	for _, op := range t.Ops {
		if !slices.Contains(opNames, op) {
			return fmt.Errorf("unknown op %q", op)
		}
	}
	for i := range t.Views {
		v := &t.Views[i]
		if v.Path == "" || v.ListKey == "" {
			return fmt.Errorf("view %d needs path and listKey", i)
		}
		if v.Item == "" {
			v.Item = v.Path + "/{id}"
		}
		if v.Create == "" {
			v.Create = v.Path
		}
		if v.Fields["Id"] == nil && slices.Contains(t.Ops, "load") {
			return fmt.Errorf("view %d has no Id field but the table is loaded by id", i)
		}
		for name, f := range v.Fields {
			if !slices.Contains(fieldTypes, f.Type) {
				return fmt.Errorf("field %s: unknown type %q", name, f.Type)
			}
			if f.Type == "param" {
				continue
			}
			for _, p := range []string{f.Path, f.Write} {
				for _, s := range strings.Split(p, ".") {
					if p != "" && !segment.MatchString(s) {
						return fmt.Errorf("field %s: bad path %q", name, p)
					}
				}
			}
		}
		for xml := range v.Orders {
			if v.Fields[xml] == nil {
				return fmt.Errorf("order by %s: no such field", xml)
			}
		}
	}
	return nil
}

// fieldNames lists a view's fields, sorted, for messages.
func (v *view) fieldNames(pred func(*field) bool) string {
	var names []string
	for n, f := range v.Fields {
		if pred == nil || pred(f) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// A path step is a member name, optionally picking the array entry whose
// member Key equals Value: email_addresses[field=EMAIL1].
type step struct{ name, key, value string }

func steps(p string) []step {
	var out []step
	for _, s := range strings.Split(p, ".") {
		st := step{name: s}
		if i := strings.IndexByte(s, '['); i >= 0 {
			st.name = s[:i]
			kv := strings.SplitN(s[i+1:len(s)-1], "=", 2)
			st.key, st.value = kv[0], kv[1]
		}
		out = append(out, st)
	}
	return out
}

// get reads the value at p in a decoded JSON record, or nil.
func get(rec map[string]any, p string) any {
	var cur any = rec
	for _, st := range steps(p) {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[st.name]
		if st.key != "" {
			cur = pick(cur, st.key, st.value)
		}
	}
	return cur
}

func pick(list any, key, value string) map[string]any {
	items, _ := list.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && fmt.Sprint(m[key]) == value {
			return m
		}
	}
	return nil
}

// set writes v at p in rec, making the objects and array entries on the way;
// a nil v on an array entry's member removes that entry when nothing else
// of it is left but its key.
func set(rec map[string]any, p string, v any) {
	sts := steps(p)
	cur := rec
	for i, st := range sts {
		last := i == len(sts)-1
		if st.key == "" {
			if last {
				cur[st.name] = v
				return
			}
			next, ok := cur[st.name].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[st.name] = next
			}
			cur = next
			continue
		}
		items, _ := cur[st.name].([]any)
		entry := pick(items, st.key, st.value)
		if entry == nil {
			entry = map[string]any{st.key: st.value}
			items = append(items, entry)
		}
		if last {
			return // a path never ends on an entry
		}
		if v == nil && i == len(sts)-2 {
			delete(entry, sts[i+1].name)
			if len(entry) == 1 {
				items = slices.DeleteFunc(items, func(x any) bool { m, _ := x.(map[string]any); return m != nil && fmt.Sprint(m[st.key]) == st.value })
			}
			cur[st.name] = items
			return
		}
		cur[st.name] = items
		cur = entry
	}
}

// top is the top-level member a path writes.
func top(p string) string { return steps(p)[0].name }

// fill replaces {name} in a path template with values from vals.
func fill(tmpl string, vals func(string) (string, bool)) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := vals(name)
		if !ok {
			missing = append(missing, name)
		}
		return escapeSegment(v)
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("needs %s", strings.Join(missing, ", "))
	}
	return out, nil
}
