// Package elements owns the catalog of connectors ("elements", in Open Connectors'
// words): which elements exist, their hubs, authentication types, endpoints,
// configuration entries and resources. Every element is data, an embedded JSON
// file under definitions/, so a new element or resource is a file, not code.
//
// It must not call providers or touch the database.
package elements

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

//go:embed definitions
var definitions embed.FS

// Endpoints are where a provider's APIs live. The operator's configuration
// replaces the defaults in the provider file.
type Endpoints struct {
	AuthorizationURL string `json:"authorizationUrl"`
	TokenURL         string `json:"tokenUrl"`
	APIURL           string `json:"apiUrl"`
	RESTPath         string `json:"restPath"`
	XMLRPCPath       string `json:"xmlrpcPath"`
	// LegacyXMLRPCURL is an application's own legacy XML-RPC endpoint, with
	// {app} where the application name goes. Empty (the default) means none:
	// every credential, legacy keys included, goes to APIURL as Keap takes them
	// since 2024 (X-Keap-API-Key). Only an operator who sets it explicitly
	// gets the old way, where a legacy key travels as the call's first
	// parameter and reaches XML-RPC only.
	LegacyXMLRPCURL string `json:"legacyXmlrpcUrl"`
}

// HasLegacyURL reports whether the operator configured a legacy XML-RPC endpoint.
func (e Endpoints) HasLegacyURL() bool { return e.LegacyXMLRPCURL != "" }

// RESTBase is the REST API base URL, e.g. https://api.infusionsoft.com/crm/rest/v1.
func (e Endpoints) RESTBase() string { return strings.TrimRight(e.APIURL, "/") + e.RESTPath }

// XMLRPCURL is the XML-RPC URL for OAuth and service account key calls.
func (e Endpoints) XMLRPCURL() string { return strings.TrimRight(e.APIURL, "/") + e.XMLRPCPath }

// LegacyURL is the legacy XML-RPC URL of an application, or "" when none is configured.
func (e Endpoints) LegacyURL(app string) string {
	return strings.ReplaceAll(e.LegacyXMLRPCURL, "{app}", app)
}

// ConfigField describes one configuration entry of an instance.
type ConfigField struct {
	Key         string   `json:"key"`
	Name        string   `json:"name"`
	Type        string   `json:"type"` // string, url, number, boolean, enum, json, appname
	Values      []string `json:"values,omitempty"`
	Default     *string  `json:"default,omitempty"`
	RequiredFor []string `json:"requiredFor,omitempty"` // authentication types that require it
	Secret      bool     `json:"secret,omitempty"`
	ReadOnly    bool     `json:"readOnly,omitempty"` // set by connectord, never by the caller
	Min         *int64   `json:"min,omitempty"`
	Max         *int64   `json:"max,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Resource describes how a hub resource maps onto the provider's REST API.
type Resource struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	IDField string `json:"idField,omitempty"`
	ListKey string `json:"listKey,omitempty"`
	// Methods are allowed on the collection (PUT there is the upsert), and
	// ItemMethods on one record, /{id}.
	Methods     []string `json:"methods"`
	ItemMethods []string `json:"itemMethods,omitempty"`
	// A child resource lives under one record of Parent, at /{id}/{Segment};
	// its Path holds one {placeholder} for the parent's id.
	Parent  string `json:"parent,omitempty"`
	Segment string `json:"segment,omitempty"`
	// Filters map CEQL fields onto the provider's list parameters, compared
	// with =; ParamTypes give a parameter's type when it is not a string
	// (integer or boolean).
	Filters     map[string]string     `json:"filters,omitempty"`
	ParamTypes  map[string]string     `json:"paramTypes,omitempty"`
	DateFilters map[string]DateFilter `json:"dateFilters,omitempty"`
	OrderBy     map[string]string     `json:"orderBy,omitempty"`
	// OrderDirection is the provider's sort direction parameter; empty when
	// the provider offers none.
	OrderDirection string `json:"orderDirection,omitempty"`
	// MethodParams are query parameters a method on the collection passes
	// through to the provider under the same name, e.g. ids on DELETE of
	// contact tags.
	MethodParams map[string]map[string]Param `json:"methodParams,omitempty"`
	// AddressFields are the body members holding addresses (an object or an
	// array of them) whose country and region codes are checked before a write.
	AddressFields []string        `json:"addressFields,omitempty"`
	Upsert        *Upsert         `json:"upsert,omitempty"`
	Events        *ResourceEvents `json:"events,omitempty"`
}

// Param is a query parameter passed through to the provider.
type Param struct {
	Type     string `json:"type"` // string, integer, boolean or integerList (comma-separated)
	Required bool   `json:"required,omitempty"`
}

// DateFilter maps a CEQL date field onto the provider's lower and upper bound parameters.
type DateFilter struct {
	After  string `json:"after,omitempty"`
	Before string `json:"before,omitempty"`
}

// Upsert describes a create-or-update call.
type Upsert struct {
	Method           string   `json:"method"`
	Path             string   `json:"path"`
	DuplicateOption  string   `json:"duplicateOption"`
	DuplicateOptions []string `json:"duplicateOptions"`
}

// ResourceEvents describes how a resource produces events.
type ResourceEvents struct {
	HookObject       string            `json:"hookObject,omitempty"`
	EventKeys        map[string]string `json:"eventKeys,omitempty"`
	CreatedDateField string            `json:"createdDateField,omitempty"`
	UpdatedDateField string            `json:"updatedDateField,omitempty"`
	PollOrder        string            `json:"pollOrder,omitempty"`
	// PollSince is the list parameter that returns only records changed at or
	// after a time (Keap's since on last_updated). Without it a resource
	// cannot be polled: Keap offers no other way to ask what changed.
	PollSince string `json:"pollSince,omitempty"`
}

// Pollable reports whether the resource's changes can be polled: its list
// filters on the change time and sorts by it.
func (r Resource) Pollable() bool {
	e := r.Events
	return e != nil && e.PollSince != "" && e.PollOrder != "" && e.UpdatedDateField != "" && r.ListKey != "" && r.Parent == ""
}

// EventMethods says how an element receives events.
type EventMethods struct {
	Methods []string `json:"methods"`
	Default string   `json:"default"`
}

// Element is one connector.
type Element struct {
	ID                  int64         `json:"id"`
	Key                 string        `json:"key"`
	Name                string        `json:"name"`
	Description         string        `json:"description"`
	Image               string        `json:"image"`
	Hub                 string        `json:"hub"`
	Provider            string        `json:"provider"`
	AuthenticationTypes []string      `json:"authenticationTypes"`
	Endpoints           Endpoints     `json:"endpoints"`
	Events              EventMethods  `json:"events"`
	Configuration       []ConfigField `json:"configuration"`
	Resources           []Resource    `json:"resources"`
}

// Field returns the configuration entry named key.
func (e *Element) Field(key string) (ConfigField, bool) {
	i := slices.IndexFunc(e.Configuration, func(f ConfigField) bool { return f.Key == key })
	if i < 0 {
		return ConfigField{}, false
	}
	return e.Configuration[i], true
}

// Resource returns the resource named name.
func (e *Element) Resource(name string) (Resource, bool) {
	i := slices.IndexFunc(e.Resources, func(r Resource) bool { return r.Name == name })
	if i < 0 {
		return Resource{}, false
	}
	return e.Resources[i], true
}

// SupportsAuth reports whether the element accepts authentication type t.
func (e *Element) SupportsAuth(t string) bool { return slices.Contains(e.AuthenticationTypes, t) }

// Catalog is the set of elements connectord serves.
type Catalog struct {
	elements []*Element
	byKey    map[string]*Element
	byID     map[int64]*Element
}

type providerFile struct {
	Key                 string              `json:"key"`
	Name                string              `json:"name"`
	AuthenticationTypes []string            `json:"authenticationTypes"`
	Endpoints           Endpoints           `json:"endpoints"`
	Configuration       []ConfigField       `json:"configuration"`
	Resources           map[string]Resource `json:"resources"`
}

type elementFile struct {
	ID          int64        `json:"id"`
	Key         string       `json:"key"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Image       string       `json:"image"`
	Provider    string       `json:"provider"`
	Hub         string       `json:"hub"`
	Events      EventMethods `json:"events"`
	Resources   []string     `json:"resources"`
}

// Load reads the embedded definitions. override, keyed by provider, replaces the
// endpoints of that provider's elements (empty fields keep the defaults).
func Load(override map[string]Endpoints) (*Catalog, error) {
	return load(definitions, override)
}

func load(fsys fs.FS, override map[string]Endpoints) (*Catalog, error) {
	providers := map[string]*providerFile{}
	err := fs.WalkDir(fsys, "definitions/providers", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var pf providerFile
		if err := decodeFile(fsys, p, &pf); err != nil {
			return err
		}
		if pf.Key == "" || len(pf.AuthenticationTypes) == 0 {
			return fmt.Errorf("%s: key and authenticationTypes are required", p)
		}
		if o, ok := override[pf.Key]; ok {
			pf.Endpoints = mergeEndpoints(pf.Endpoints, o)
		}
		providers[pf.Key] = &pf
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("elements: %w", err)
	}
	c := &Catalog{byKey: map[string]*Element{}, byID: map[int64]*Element{}}
	err = fs.WalkDir(fsys, "definitions/elements", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var ef elementFile
		if err := decodeFile(fsys, p, &ef); err != nil {
			return err
		}
		if want := strings.TrimSuffix(path.Base(p), ".json"); ef.Key != want {
			return fmt.Errorf("%s: key %q must match the file name", p, ef.Key)
		}
		pf, ok := providers[ef.Provider]
		if !ok {
			return fmt.Errorf("%s: unknown provider %q", p, ef.Provider)
		}
		if ef.ID <= 0 || ef.Hub == "" || ef.Name == "" {
			return fmt.Errorf("%s: id, name and hub are required", p)
		}
		if c.byID[ef.ID] != nil || c.byKey[ef.Key] != nil {
			return fmt.Errorf("%s: duplicate element id %d or key %q", p, ef.ID, ef.Key)
		}
		el := &Element{
			ID: ef.ID, Key: ef.Key, Name: ef.Name, Description: ef.Description, Image: ef.Image,
			Hub: ef.Hub, Provider: ef.Provider, AuthenticationTypes: pf.AuthenticationTypes,
			Endpoints: pf.Endpoints, Events: ef.Events, Configuration: pf.Configuration,
		}
		for _, name := range ef.Resources {
			r, ok := pf.Resources[name]
			if !ok {
				return fmt.Errorf("%s: resource %q is not defined by provider %q", p, name, pf.Key)
			}
			r.Name = name
			if err := checkResource(r, pf.Resources); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			el.Resources = append(el.Resources, r)
		}
		c.elements = append(c.elements, el)
		c.byKey[el.Key] = el
		c.byID[el.ID] = el
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("elements: %w", err)
	}
	sort.Slice(c.elements, func(i, j int) bool { return c.elements[i].ID < c.elements[j].ID })
	return c, nil
}

// checkResource refuses a resource definition the hubs could not serve.
func checkResource(r Resource, all map[string]Resource) error {
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	for _, m := range slices.Concat(r.Methods, r.ItemMethods) {
		if !slices.Contains(methods, m) {
			return fmt.Errorf("resource %s: unknown method %q", r.Name, m)
		}
	}
	if slices.Contains(r.Methods, "PUT") && r.Upsert == nil {
		return fmt.Errorf("resource %s: PUT on the collection is an upsert and needs \"upsert\"", r.Name)
	}
	if r.Parent != "" {
		if _, ok := all[r.Parent]; !ok || r.Segment == "" || strings.Count(r.Path, "{") != 1 {
			return fmt.Errorf("resource %s: a child needs a known parent, a segment and one {placeholder} in its path", r.Name)
		}
	}
	for _, t := range r.ParamTypes {
		if !slices.Contains([]string{"string", "integer", "boolean"}, t) {
			return fmt.Errorf("resource %s: unknown parameter type %q", r.Name, t)
		}
	}
	for m, params := range r.MethodParams {
		for name, p := range params {
			if !slices.Contains(methods, m) || !slices.Contains([]string{"string", "integer", "boolean", "integerList"}, p.Type) {
				return fmt.Errorf("resource %s: method parameter %s %s has an unknown method or type", r.Name, m, name)
			}
		}
	}
	return nil
}

func decodeFile(fsys fs.FS, p string, v any) error {
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func mergeEndpoints(base, o Endpoints) Endpoints {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&base.AuthorizationURL, o.AuthorizationURL)
	set(&base.TokenURL, o.TokenURL)
	set(&base.APIURL, o.APIURL)
	set(&base.RESTPath, o.RESTPath)
	set(&base.XMLRPCPath, o.XMLRPCPath)
	set(&base.LegacyXMLRPCURL, o.LegacyXMLRPCURL)
	return base
}

// All returns every element, by id.
func (c *Catalog) All() []*Element { return c.elements }

// Lookup finds an element by key or numeric id.
func (c *Catalog) Lookup(keyOrID string) (*Element, bool) {
	if el, ok := c.byKey[keyOrID]; ok {
		return el, true
	}
	if id, err := strconv.ParseInt(keyOrID, 10, 64); err == nil {
		el, ok := c.byID[id]
		return el, ok
	}
	return nil, false
}

// Keys lists every element key, for error messages.
func (c *Catalog) Keys() []string {
	keys := make([]string, 0, len(c.elements))
	for _, el := range c.elements {
		keys = append(keys, el.Key)
	}
	return keys
}

// Summary is an element as embedded in an instance (the Open Connectors shape).
type Summary struct {
	ID                     int64  `json:"id"`
	Name                   string `json:"name"`
	Key                    string `json:"key"`
	Description            string `json:"description"`
	Image                  string `json:"image"`
	Active                 bool   `json:"active"`
	Deleted                bool   `json:"deleted"`
	TypeOauth              bool   `json:"typeOauth"`
	TrialAccount           bool   `json:"trialAccount"`
	Resources              []any  `json:"resources"`
	TransformationsEnabled bool   `json:"transformationsEnabled"`
	Authentication         struct {
		Type string `json:"type"`
	} `json:"authentication"`
	Hub        string `json:"hub"`
	Parameters []any  `json:"parameters"`
}

// Summary returns the element as an instance of authType shows it.
func (e *Element) Summary(authType string) Summary {
	s := Summary{
		ID: e.ID, Name: e.Name, Key: e.Key, Description: e.Description, Image: e.Image,
		Active: true, TypeOauth: authType == "oauth2", Resources: []any{}, Hub: e.Hub, Parameters: []any{},
	}
	s.Authentication.Type = authType
	return s
}
