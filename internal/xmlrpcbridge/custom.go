package xmlrpcbridge

import (
	"maps"
	"net/http"
	"slices"
	"strings"
)

// customTypes are the XML-RPC types of v2's custom field types; the others are text.
var customTypes = map[string]string{"DATE": "date", "DATE_TIME": "date", "WHOLE_NUMBER": "int", "YEAR": "int", "USER": "id",
	"DECIMAL_NUMBER": "double", "CURRENCY": "double", "PERCENT": "double"}

// withCustom returns v with the custom fields among names (those starting
// with _) added, read from the view's model: one REST call, made only when
// a call names a custom field. Names the model lacks stay unknown, for the
// caller's NoFieldFound.
func (c *rcall) withCustom(v *view, names ...[]string) (*view, error) {
	var wanted []string
	for _, list := range names {
		for _, n := range list {
			if strings.HasPrefix(n, "_") && v.Fields[n] == nil {
				wanted = append(wanted, n)
			}
		}
	}
	if len(wanted) == 0 || v.Custom == nil {
		return v, nil
	}
	model, err := c.rest(http.MethodGet, v.Custom.Model, nil, nil)
	if err != nil {
		return nil, translate(err, nil)
	}
	out := *v
	out.Fields = maps.Clone(v.Fields)
	for _, meta := range list(model, "custom_fields") {
		name, _ := meta["field_name"].(string)
		id := text(meta["id"])
		i := slices.IndexFunc(wanted, func(w string) bool { return strings.EqualFold(w[1:], name) })
		if name == "" || id == "" || i < 0 {
			continue
		}
		typ, _ := meta["field_type"].(string)
		f := &field{Path: v.Custom.Member + "[id=" + id + "].content", Type: customTypes[typ], Filter: name}
		// v2 filters text-like custom fields by == with a trailing *.
		f.Wildcard = f.Type == ""
		out.Fields[wanted[i]] = f
	}
	return &out, nil
}

func names(list []any) []string {
	out := make([]string, 0, len(list))
	for _, n := range list {
		s, _ := n.(string)
		out = append(out, s)
	}
	return out
}

func keys(m map[string]any) []string { return slices.Collect(maps.Keys(m)) }
