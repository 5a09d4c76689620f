package instances

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
)

// Event mechanisms (event.vendor.type).
const (
	EventsWebhook = "webhook"
	EventsPolling = "polling"
)

// EventMode is how inst receives events: its event.vendor.type, else the
// element's default.
func EventMode(el *elements.Element, inst *Instance) string { return eventMode(el, inst.Config) }

func eventMode(el *elements.Element, public map[string]*string) string {
	if v := value(el, public, KeyEventVendorType); v != "" {
		return v
	}
	return el.Events.Default
}

// EventObjects lists the resources inst's event.objects names (default
// contacts), in order, without blanks or repeats.
func EventObjects(el *elements.Element, inst *Instance) []string {
	return eventObjects(el, inst.Config)
}

func eventObjects(el *elements.Element, public map[string]*string) []string {
	var out []string
	for _, o := range strings.Split(value(el, public, KeyEventObjects), ",") {
		if o = strings.TrimSpace(o); o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// PollResource is one resource an instance polls, with the record fields the
// poller reads: the element data's, or event.poller.configuration's.
type PollResource struct {
	Object       string            // the event.objects entry: the events' objectType
	Resource     elements.Resource // the Keap list that is polled
	IDField      string
	CreatedField string // empty: every change is UPDATED
	UpdatedField string
}

// PollResources resolves the resources inst polls from its event.objects, the
// element data and event.poller.configuration. An error is apperr.Invalid and
// says which entry is wrong.
func PollResources(el *elements.Element, inst *Instance) ([]PollResource, error) {
	return pollResources(el, inst.Config)
}

// pollerEntry is one resource of event.poller.configuration, as Open
// Connectors has it. The date formats are accepted and not needed: Keap's
// dates are ISO 8601.
type pollerEntry struct {
	URL                string `json:"url"`
	IDField            string `json:"idField"`
	DatesConfiguration struct {
		UpdatedDateField  string `json:"updatedDateField"`
		UpdatedDateFormat string `json:"updatedDateFormat"`
		CreatedDateField  string `json:"createdDateField"`
		CreatedDateFormat string `json:"createdDateFormat"`
	} `json:"datesConfiguration"`
}

func pollResources(el *elements.Element, public map[string]*string) ([]PollResource, error) {
	entries := map[string]pollerEntry{}
	if raw := value(el, public, KeyPollerConfig); raw != "" {
		var byName map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &byName); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "%s must be a JSON object keyed by resource", KeyPollerConfig)
		}
		for _, name := range sortedKeys(byName) {
			if r, ok := el.Resource(name); !ok || !r.Pollable() {
				return nil, apperr.Errorf(apperr.Invalid, "%s: %s is not a resource element %s can poll (%s)", KeyPollerConfig, name, el.Key, pollableList(el))
			}
			var e pollerEntry
			dec := json.NewDecoder(bytes.NewReader(byName[name]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				why := ""
				if msg := strings.TrimPrefix(err.Error(), "json: "); strings.HasPrefix(msg, "unknown field") {
					why = msg + "; "
				}
				return nil, apperr.Errorf(apperr.Invalid, "%s.%s: %sit takes an object with url, idField and datesConfiguration{updatedDateField, createdDateField}, all strings", KeyPollerConfig, name, why)
			}
			entries[name] = e
		}
	}
	var out []PollResource
	for _, name := range eventObjects(el, public) {
		r, ok := el.Resource(name)
		if !ok || !r.Pollable() {
			return nil, apperr.Errorf(apperr.Invalid, "%s: element %s cannot poll %s; it can poll %s", KeyEventObjects, el.Key, name, pollableList(el))
		}
		e := entries[name]
		if e.URL != "" {
			if r, ok = resourceAt(el, e.URL); !ok || !r.Pollable() {
				return nil, apperr.Errorf(apperr.Invalid, "%s.%s.url %q is not a resource element %s can poll: use /hubs/%s/<resource> with one of %s", KeyPollerConfig, name, e.URL, el.Key, el.Hub, pollableList(el))
			}
		}
		pr := PollResource{Object: name, Resource: r, IDField: r.IDField, CreatedField: r.Events.CreatedDateField, UpdatedField: r.Events.UpdatedDateField}
		pr.IDField = cmpOr(e.IDField, pr.IDField, "id")
		pr.CreatedField = cmpOr(e.DatesConfiguration.CreatedDateField, pr.CreatedField)
		pr.UpdatedField = cmpOr(e.DatesConfiguration.UpdatedDateField, pr.UpdatedField)
		out = append(out, pr)
	}
	return out, nil
}

// resourceAt finds the resource a poller url names: a hub path such as
// /hubs/crm/contacts, or the resource's Keap path such as /contacts. A query
// (Open Connectors' urls carry a where clause) is ignored: connectord asks
// Keap for the changes itself.
func resourceAt(el *elements.Element, raw string) (elements.Resource, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return elements.Resource{}, false
	}
	p := strings.TrimRight(u.Path, "/")
	if name, ok := strings.CutPrefix(p, "/hubs/"+el.Hub+"/"); ok {
		return el.Resource(name)
	}
	for _, r := range el.Resources {
		if r.Path == p {
			return r, true
		}
	}
	return elements.Resource{}, false
}

func pollableList(el *elements.Element) string {
	var names []string
	for _, r := range el.Resources {
		if r.Pollable() {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkEventObjects refuses event.objects entries that cannot produce events
// by mode, and a polling configuration the poller could not follow.
func checkEventObjects(el *elements.Element, public map[string]*string, mode string, p *problems) {
	objects := eventObjects(el, public)
	if len(objects) == 0 {
		p.add("%s names no resource: give a comma-separated list such as contacts", KeyEventObjects)
		return
	}
	if mode == EventsPolling {
		if _, err := pollResources(el, public); err != nil {
			e, _ := apperr.As(err)
			p.add("%s", e.Message)
		}
		return
	}
	var cannot, can []string
	for _, r := range el.Resources {
		if r.Events != nil && r.Events.HookObject != "" {
			can = append(can, r.Name)
		}
	}
	for _, o := range objects {
		if !slices.Contains(can, o) {
			cannot = append(cannot, o)
		}
	}
	if len(cannot) > 0 {
		p.add("%s: element %s has no Keap REST hooks for %s; it can hook %s", KeyEventObjects, el.Key, strings.Join(cannot, ", "), strings.Join(can, ", "))
	}
}

// checkEventsAuth refuses events for a legacy API key sent to an
// application's legacy endpoint: it reaches only Keap's XML-RPC API there,
// and both ways of getting events (REST hooks, polling the REST lists) need
// the REST API. (Which resources produce events is checkEventObjects' part.)
func checkEventsAuth(el *elements.Element, st settings, authType string, p *problems) {
	if UsesLegacyEndpoint(el, authType, st.secrets[KeyAPIKey]) {
		p.add("with CONNECTORD_INFUSIONSOFT_LEGACY_XMLRPC_URL set, a legacy API key reaches only Keap's XML-RPC API, so it can neither register Keap REST hooks nor poll: use a service account key or OAuth for events, or have the operator unset it so the key goes to Keap's API host")
	}
}
