package tenants

import (
	"fmt"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
)

// Credentials are the parts of an Open Connectors Authorization header.
type Credentials struct {
	User, Organization, Element string
}

// ParseAuthorization parses `User <secret>, Organization <secret>[, Element <token>]`
// strictly: each part once, names spelled exactly, one value without spaces each,
// parts separated by commas. A colon after a part's name (`Element: <token>`, as
// the Cloud Elements Python SDK writes it, or `Element:<token>`) is accepted:
// no secret connectord issues contains a colon, so the form is unambiguous.
// Errors say which part is wrong.
func ParseAuthorization(h string) (Credentials, error) {
	var c Credentials
	if strings.TrimSpace(h) == "" {
		return c, apperr.Errorf(apperr.Unauthorized, "missing Authorization header: send 'User <user secret>, Organization <organization secret>'")
	}
	seen := map[string]bool{}
	for i, part := range strings.Split(h, ",") {
		fields := strings.Fields(part)
		fields = colonForm(fields)
		if len(fields) != 2 {
			return Credentials{}, apperr.Errorf(apperr.Unauthorized, "malformed Authorization header: part %d must be '<User|Organization|Element> <value>', separated by commas", i+1)
		}
		name, value := fields[0], fields[1]
		if seen[name] {
			return Credentials{}, apperr.Errorf(apperr.Unauthorized, "malformed Authorization header: %s appears more than once", name)
		}
		seen[name] = true
		switch name {
		case "User":
			c.User = value
		case "Organization":
			c.Organization = value
		case "Element":
			c.Element = value
		default:
			return Credentials{}, apperr.Errorf(apperr.Unauthorized, "malformed Authorization header: unknown part %s; the parts are User, Organization and Element", quoteName(name))
		}
	}
	if c.User == "" {
		return Credentials{}, apperr.Errorf(apperr.Unauthorized, "malformed Authorization header: the User part is missing")
	}
	return c, nil
}

// colonForm turns the fields of `Name: value` and `Name:value` into those of
// `Name value`, for the three part names only.
func colonForm(fields []string) []string {
	if len(fields) == 0 {
		return fields
	}
	name, value, found := strings.Cut(fields[0], ":")
	if !found || !partName(name) {
		return fields
	}
	if value == "" {
		return append([]string{name}, fields[1:]...)
	}
	return append([]string{name, value}, fields[1:]...)
}

func partName(s string) bool {
	return s == "User" || s == "Organization" || s == "Element"
}

// quoteName shows a part name without echoing anything that looks like a secret.
func quoteName(s string) string {
	if len(s) > 20 {
		return fmt.Sprintf("%q…", s[:12])
	}
	return fmt.Sprintf("%q", s)
}
