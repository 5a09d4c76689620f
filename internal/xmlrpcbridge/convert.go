package xmlrpcbridge

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// v2Time is how REST v2 writes times.
const v2Time = "2006-01-02T15:04:05.000Z07:00"

// xmlDate layouts a caller may send for a date: XML-RPC's dateTime.iso8601
// (which the decoder leaves as text) and the strings Keap's XML-RPC took.
var xmlDate = []string{"20060102T15:04:05", "20060102T15:04:05Z07:00", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02 15:04:05", "2006-01-02"}

// toXML turns a v2 member into the XML-RPC value Keap's XML-RPC answered for
// the field; ok is false when the record has no value there (Keap's XML-RPC
// left such fields out of its structs).
func toXML(f *field, v any) (any, bool) {
	if v == nil {
		return nil, false
	}
	switch f.Type {
	case "id", "int":
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseInt(x, 10, 64)
			return n, err == nil
		case float64:
			return int64(x), true
		}
	case "double":
		switch x := v.(type) {
		case float64:
			return x, true
		case string:
			n, err := strconv.ParseFloat(x, 64)
			return n, err == nil
		}
	case "cents":
		if x, ok := v.(float64); ok {
			return x / 100, true
		}
	case "flag":
		if b, ok := v.(bool); ok {
			return map[bool]int64{true: 1}[b], true
		}
	case "paid":
		s, _ := v.(string)
		return map[bool]int64{true: 1}[s == "PAID"], true
	case "date":
		s, _ := v.(string)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), true
			}
		}
	case "idlist":
		items, _ := v.([]any)
		ids := make([]string, 0, len(items))
		for _, it := range items {
			ids = append(ids, fmt.Sprint(it))
		}
		return strings.Join(ids, ","), len(ids) > 0
	default:
		switch x := v.(type) {
		case string:
			return x, x != ""
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(x), true
		}
	}
	return nil, false
}

// fromXML turns a value an XML-RPC caller gave for a field into the v2 member
// value; nil clears.
func fromXML(table, name string, f *field, v any) (any, error) {
	bad := func(want string) error {
		return fault("InvalidParameter", "%s.%s takes %s, not %v", table, name, want, v)
	}
	s, isString := v.(string)
	if isString && s == "" {
		if f.Type == "" || f.Type == "string" {
			if strings.Contains(f.writePath(), "[") {
				return nil, nil // an empty email, phone or address part removes it
			}
			return "", nil
		}
		return nil, nil
	}
	switch f.Type {
	case "id", "int":
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case string:
			var err error
			if n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64); err != nil {
				return nil, bad("a whole number")
			}
		default:
			return nil, bad("a whole number")
		}
		if f.Type == "id" {
			return strconv.FormatInt(n, 10), nil
		}
		return n, nil
	case "double":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		case string:
			if n, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsInf(n, 0) && !math.IsNaN(n) {
				return n, nil
			}
		}
		return nil, bad("a number")
	case "cents":
		d, err := fromXML(table, name, &field{Type: "double"}, v)
		if err != nil {
			return nil, err
		}
		return int64(math.Round(d.(float64) * 100)), nil
	case "flag":
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		}
		return nil, bad("1 or 0")
	case "date":
		t, err := parseDate(v)
		if err != nil {
			return nil, bad("a date (dateTime.iso8601 or yyyy-MM-dd)")
		}
		return t.Format(v2Time), nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return map[bool]string{true: "1", false: "0"}[x], nil
	}
	return nil, bad("text")
}

func parseDate(v any) (time.Time, error) {
	s, _ := v.(string)
	for _, layout := range xmlDate {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %v", v)
}

// text renders a query value or id as v2 takes it in a filter or a path.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func escapeSegment(s string) string { return url.PathEscape(s) }
