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
// parts separated by commas. Errors say which part is wrong.
func ParseAuthorization(h string) (Credentials, error) {
	var c Credentials
	if strings.TrimSpace(h) == "" {
		return c, apperr.Errorf(apperr.Unauthorized, "missing Authorization header: send 'User <user secret>, Organization <organization secret>'")
	}
	seen := map[string]bool{}
	for i, part := range strings.Split(h, ",") {
		fields := strings.Fields(part)
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

// quoteName shows a part name without echoing anything that looks like a secret.
func quoteName(s string) string {
	if len(s) > 20 {
		return fmt.Sprintf("%q…", s[:12])
	}
	return fmt.Sprintf("%q", s)
}
