package instances

import (
	"strconv"
	"strings"
	"time"

	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/keap"
)

// Masked stands in for every secret value in responses.
const Masked = "********"

// View is an instance as the API shows it: the Open Connectors instance JSON.
type View struct {
	ID                    int64              `json:"id"`
	Name                  string             `json:"name"`
	Token                 string             `json:"token,omitempty"`
	Element               elements.Summary   `json:"element"`
	ProvisionInteractions []any              `json:"provisionInteractions"`
	Valid                 bool               `json:"valid"`
	InvalidReason         string             `json:"invalidReason,omitempty"`
	Disabled              bool               `json:"disabled"`
	MaxCacheSize          int                `json:"maxCacheSize"`
	CacheTimeToLive       int                `json:"cacheTimeToLive"`
	Configuration         map[string]*string `json:"configuration"`
	Tags                  []string           `json:"tags"`
	EventsEnabled         bool               `json:"eventsEnabled"`
	CachingEnabled        bool               `json:"cachingEnabled"`
	TraceLoggingEnabled   bool               `json:"traceLoggingEnabled"`
	AuthenticationType    string             `json:"authenticationType"`
	TokenExpiresDate      *time.Time         `json:"tokenExpiresDate,omitempty"`
	NextRefreshDate       *time.Time         `json:"nextRefreshDate,omitempty"`
	LastRefreshError      string             `json:"lastRefreshError,omitempty"`
	LastRefreshErrorDate  *time.Time         `json:"lastRefreshErrorDate,omitempty"`
	CreatedDate           time.Time          `json:"createdDate"`
	UpdatedDate           time.Time          `json:"updatedDate"`
}

// ConfigEntry is one configuration entry as GET /instances/{id}/configuration shows it.
type ConfigEntry struct {
	Key           string  `json:"key"`
	Name          string  `json:"name"`
	PropertyValue *string `json:"propertyValue"`
	Secret        bool    `json:"secret"`
	ReadOnly      bool    `json:"readOnly"`
	Description   string  `json:"description,omitempty"`
}

func (s *Service) render(el *elements.Element, inst *Instance) *View {
	cfg := map[string]*string{}
	for _, e := range s.entries(el, inst) {
		cfg[e.Key] = e.PropertyValue
	}
	tags := inst.Tags
	if tags == nil {
		tags = []string{}
	}
	return &View{
		ID: inst.ID, Name: inst.Name, Element: el.Summary(inst.AuthType),
		ProvisionInteractions: []any{}, Valid: inst.Valid, InvalidReason: inst.InvalidReason,
		Disabled: inst.Disabled, Configuration: cfg, Tags: tags,
		EventsEnabled:      value(el, inst.Config, KeyEventsEnabled) == "true",
		AuthenticationType: inst.AuthType, TokenExpiresDate: inst.TokenExpiresAt,
		NextRefreshDate: inst.RefreshDueAt, LastRefreshError: inst.LastRefreshError, LastRefreshErrorDate: inst.LastRefreshErrorAt,
		CreatedDate: inst.CreatedAt, UpdatedDate: inst.UpdatedAt,
	}
}

// entries lists the configuration entries that apply to the instance, with
// effective values: what was set, what connectord derives, or the default.
// Secrets appear only as Masked.
func (s *Service) entries(el *elements.Element, inst *Instance) []ConfigEntry {
	out := make([]ConfigEntry, 0, len(el.Configuration))
	for _, f := range el.Configuration {
		if !applies(f.Key, inst) {
			continue
		}
		e := ConfigEntry{Key: f.Key, Name: f.Name, Secret: f.Secret, ReadOnly: f.ReadOnly, Description: f.Description}
		switch {
		case f.Secret:
			if inst.Secrets[f.Key] != "" {
				e.PropertyValue = ptr(Masked)
			}
		default:
			if v := derived(el, inst, f.Key); v != "" {
				e.PropertyValue = ptr(v)
			} else if v := value(el, inst.Config, f.Key); v != "" {
				e.PropertyValue = ptr(v)
			}
		}
		out = append(out, e)
	}
	return out
}

// applies says whether an entry belongs to the instance's authentication type.
func applies(key string, inst *Instance) bool {
	if inst.AuthType == AuthAPIKey {
		return !strings.HasPrefix(key, "oauth.")
	}
	return key != KeyAPIKey
}

// derived returns the values connectord sets itself.
func derived(el *elements.Element, inst *Instance, key string) string {
	switch key {
	case KeyAuthType:
		return inst.AuthType
	case KeyScope:
		return "full"
	case KeyAuthorizeURL:
		return el.Endpoints.AuthorizationURL
	case KeyTokenURL:
		return el.Endpoints.TokenURL
	case KeyRefreshTime:
		if inst.RefreshedAt != nil {
			return strconv.FormatInt(inst.RefreshedAt.UnixMilli(), 10)
		}
	case KeyBaseURL:
		return BaseURL(el, inst)
	case KeyXMLRPCMode:
		return XMLRPCMode(inst)
	case KeyEventVendorType:
		if v := value(el, inst.Config, key); v != "" {
			return v
		}
		return el.Events.Default
	}
	return ""
}

// BaseURL is where the instance's provider calls go: the REST API, or for a
// legacy key when the operator configured legacy endpoints, the
// application's XML-RPC endpoint.
func BaseURL(el *elements.Element, inst *Instance) string {
	if UsesLegacyEndpoint(el, inst.AuthType, inst.Secrets[KeyAPIKey]) {
		return el.Endpoints.LegacyURL(value(el, inst.Config, KeyAppName))
	}
	return el.Endpoints.RESTBase()
}

// UsesLegacyEndpoint reports whether an instance's calls go the old way: a
// legacy key, sent as the first parameter of XML-RPC calls to the
// application's own endpoint, which happens only when the operator configured
// one (CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL). Otherwise a legacy key goes
// to Keap's API host as X-Keap-API-Key, for REST and XML-RPC alike, like a
// service account key.
func UsesLegacyEndpoint(el *elements.Element, authType, apiKey string) bool {
	return authType == AuthAPIKey && apiKey != "" && !keap.IsServiceAccountKey(apiKey) && el.Endpoints.HasLegacyURL()
}

func ptr(s string) *string { return &s }
