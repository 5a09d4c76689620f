package instances

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/keap"
)

// problems collects everything wrong with a request so that one 400 names it all.
type problems struct {
	missing []string
	other   []string
}

func (p *problems) add(format string, args ...any) {
	p.other = append(p.other, fmt.Sprintf(format, args...))
}

func (p *problems) err() error {
	var parts []string
	if len(p.missing) > 0 {
		parts = append(parts, "missing required configuration: "+strings.Join(p.missing, ", "))
	}
	parts = append(parts, p.other...)
	if len(parts) == 0 {
		return nil
	}
	return apperr.Errorf(apperr.Invalid, "%s", strings.Join(parts, "; "))
}

// parseConfig turns the caller's configuration object into string values (nil for
// JSON null), checking every entry against the element's definition.
func parseConfig(el *elements.Element, raw map[string]json.RawMessage, p *problems) map[string]*string {
	out := make(map[string]*string, len(raw))
	var unknown, readOnly []string
	for _, key := range sortedKeys(raw) {
		f, ok := el.Field(key)
		switch {
		case !ok:
			unknown = append(unknown, key)
			continue
		case f.ReadOnly:
			readOnly = append(readOnly, key)
			continue
		}
		v, err := scalar(raw[key], f.Type == "json")
		if err != nil {
			p.add("configuration %s: %v", key, err)
			continue
		}
		if v != nil {
			norm, err := checkValue(f, *v)
			if err != nil {
				p.add("configuration %s: %v", key, err)
				continue
			}
			v = &norm
		}
		out[key] = v
	}
	if len(unknown) > 0 {
		p.add("unknown configuration entries: %s (GET /elements/%s lists the entries this element accepts)", strings.Join(unknown, ", "), el.Key)
	}
	if len(readOnly) > 0 {
		p.add("configuration entries set by connectord cannot be given: %s", strings.Join(readOnly, ", "))
	}
	return out
}

// scalar reads a JSON value as configuration text: strings as they are, numbers
// and booleans as written, null as nil; objects only where the entry holds JSON.
func scalar(raw json.RawMessage, allowObject bool) (*string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("not a valid JSON string")
		}
		return &s, nil
	case '{', '[':
		if !allowObject {
			return nil, fmt.Errorf("must be a string, number or boolean, not an object or array")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("not valid JSON")
		}
		s := buf.String()
		return &s, nil
	default:
		s := string(raw)
		return &s, nil
	}
}

// checkValue validates and normalises one value by the entry's type.
func checkValue(f elements.ConfigField, v string) (string, error) {
	switch f.Type {
	case "url":
		if v == "" {
			return v, nil
		}
		if !IsHTTPURL(v) {
			return "", fmt.Errorf("%q is not an absolute http or https URL", v)
		}
	case "number":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not a whole number", v)
		}
		if f.Min != nil && n < *f.Min || f.Max != nil && n > *f.Max {
			return "", fmt.Errorf("%d is out of range%s", n, rangeText(f))
		}
		return strconv.FormatInt(n, 10), nil
	case "boolean":
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return "", fmt.Errorf("%q is not true or false", v)
		}
		return strconv.FormatBool(b), nil
	case "enum":
		if !slices.Contains(f.Values, v) {
			return "", fmt.Errorf("%q is not one of %s", v, strings.Join(f.Values, ", "))
		}
	case "appname":
		l := strings.ToLower(strings.TrimSpace(v))
		if !keap.ValidAppName(l) {
			return "", fmt.Errorf("%q is not a Keap application name: expected two letters and three digits, like ab123 (the part before .infusionsoft.com when you are logged in)", v)
		}
		return l, nil
	case "json":
		var obj map[string]any
		if err := json.Unmarshal([]byte(v), &obj); err != nil {
			return "", fmt.Errorf("must be a JSON object")
		}
	}
	return v, nil
}

func rangeText(f elements.ConfigField) string {
	switch {
	case f.Min != nil && f.Max != nil:
		return fmt.Sprintf(" (%d to %d)", *f.Min, *f.Max)
	case f.Min != nil:
		return fmt.Sprintf(" (at least %d)", *f.Min)
	case f.Max != nil:
		return fmt.Sprintf(" (at most %d)", *f.Max)
	}
	return ""
}

// IsHTTPURL reports whether s is an absolute http or https URL with a host.
func IsHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// settings are an instance's configuration as the caller set it: public values
// and secret ones apart.
type settings struct {
	public  map[string]*string
	secrets map[string]string
}

// split sorts parsed values into public and secret by the element's definition.
// A nil value removes the entry.
func split(el *elements.Element, values map[string]*string, into settings) settings {
	for k, v := range values {
		f, _ := el.Field(k)
		if f.Secret {
			if v == nil || *v == "" {
				delete(into.secrets, k)
			} else {
				into.secrets[k] = *v
			}
			continue
		}
		if v == nil {
			delete(into.public, k)
		} else {
			into.public[k] = v
		}
	}
	return into
}

// value is the effective value of a non-secret entry: what was set, else the default.
func value(el *elements.Element, public map[string]*string, key string) string {
	if v, ok := public[key]; ok && v != nil {
		return *v
	}
	if f, ok := el.Field(key); ok && f.Default != nil {
		return *f.Default
	}
	return ""
}

// checkSettings checks the combination of entries an instance ends up with and
// returns its authentication type.
func checkSettings(el *elements.Element, st settings, hasCode bool, needCode bool, p *problems) string {
	authType := value(el, st.public, KeyAuthType)
	if _, given := st.public[KeyAuthType]; !given && st.secrets[KeyAPIKey] != "" {
		authType = AuthAPIKey // an API key with no type given means the caller wants an API-key instance
	}
	if !el.SupportsAuth(authType) {
		p.add("element %s does not support authentication type %s", el.Key, authType)
		return authType
	}
	if authType == AuthOAuth2 && needCode && !hasCode {
		p.missing = append(p.missing, "providerData.code")
	}
	for _, f := range el.Configuration {
		if !slices.Contains(f.RequiredFor, authType) {
			continue
		}
		if f.Secret && st.secrets[f.Key] == "" || !f.Secret && value(el, st.public, f.Key) == "" {
			p.missing = append(p.missing, f.Key)
		}
	}
	if authType == AuthAPIKey {
		if key := st.secrets[KeyAPIKey]; key != "" && !keap.IsServiceAccountKey(key) && value(el, st.public, KeyAppName) == "" {
			p.missing = append(p.missing, KeyAppName+" (required with a legacy API key; service account keys start with "+keap.ServiceAccountKeyPrefix+")")
		}
		for _, k := range []string{KeyClientID, KeyCallbackURL} {
			if _, ok := st.public[k]; ok {
				p.add("%s is for OAuth instances; this instance uses an API key", k)
			}
		}
	}
	if value(el, st.public, KeyEventsEnabled) == "true" {
		vt := value(el, st.public, KeyEventVendorType)
		if vt == "" {
			vt = el.Events.Default
		}
		if !slices.Contains(el.Events.Methods, vt) {
			p.add("element %s receives events by %s, not %s (event.vendor.type)", el.Key, strings.Join(el.Events.Methods, " or "), vt)
		} else {
			checkEventObjects(el, st.public, vt, p)
		}
		if value(el, st.public, KeyEventCallback) == "" {
			p.add("event.notification.callback.url is required when event.notification.enabled is true")
		}
		checkEventsAuth(el, st, authType, p)
	}
	return authType
}
