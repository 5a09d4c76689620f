package hubs

import (
	"strconv"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
)

// writeNulls makes a write's body say only what Keap's document allows of
// nulls (the resource's Nullable data, derived from it). On a create (drop)
// a null member means "absent" and is removed; on an update or upsert a null
// member Keap's document does not allow is refused with a 400 naming it, since
// dropping it would silently keep the value the caller meant to clear. A null
// element of an array is never meaningful and is refused either way. It
// reports whether it changed doc.
func writeNulls(doc any, res elements.Resource, method string, drop bool) (bool, error) {
	changed := false
	var walk func(v any, path string) error
	walk = func(v any, path string) error {
		switch x := v.(type) {
		case map[string]any:
			for name, member := range x {
				p := joinPath(path, name)
				if member == nil {
					switch {
					case res.NullableIn(method, p):
					case drop:
						delete(x, name)
						changed = true
					default:
						return apperr.Errorf(apperr.Invalid, "field %s is null, which Keap does not accept on this call (its document does not mark it nullable): leave it out to keep the value, or give a value", strconv.Quote(p))
					}
					continue
				}
				if err := walk(member, p); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range x {
				if e == nil {
					return apperr.Errorf(apperr.Invalid, "field %s has a null element (%s): leave it out", strconv.Quote(path), strconv.Quote(joinPath(path, strconv.Itoa(i))))
				}
				if err := walk(e, path); err != nil { // array elements share their array's path
					return err
				}
			}
		}
		return nil
	}
	return changed, walk(doc, "")
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
