package hubs

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/tenants"
)

// Lookup resources in the element definitions: Keap's country list and the
// regions of one country.
const (
	lookupCountries = "lookups/countries"
	lookupProvinces = "lookups/provinces"
)

// Locale is one country or region Keap accepts: its code and its name.
type Locale struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// localeCache keeps Keap's locale lists. They are the same for every account
// of one Keap, so entries are keyed by Keap's REST base and shared by every
// instance that calls it; concurrent misses make one call.
type localeCache struct {
	ttl    time.Duration
	now    func() time.Time
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]localeEntry
}

type localeEntry struct {
	codes   map[string]string
	fetched time.Time
}

func newLocaleCache(ttl time.Duration, now func() time.Time) *localeCache {
	return &localeCache{ttl: ttl, now: now, entries: map[string]localeEntry{}}
}

// get returns the list at key, calling fetch when it is missing or stale.
// Failures are not kept.
func (lc *localeCache) get(key string, fetch func() (map[string]string, error)) (map[string]string, error) {
	lc.mu.Lock()
	e, ok := lc.entries[key]
	lc.mu.Unlock()
	if ok && lc.now().Sub(e.fetched) < lc.ttl {
		return e.codes, nil
	}
	v, err, _ := lc.flight.Do(key, func() (any, error) {
		codes, err := fetch()
		if err != nil {
			return nil, err
		}
		lc.mu.Lock()
		lc.entries[key] = localeEntry{codes: codes, fetched: lc.now()}
		lc.mu.Unlock()
		return codes, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]string), nil
}

// Countries lists the country codes Keap accepts (ISO 3166-1 alpha-3), by code.
func (s *Service) Countries(ctx context.Context, p tenants.Principal, hub string) ([]Locale, error) {
	c, err := s.lookup(ctx, p, hub)
	if err != nil {
		return nil, err
	}
	codes, err := s.countries(ctx, c)
	if err != nil {
		return nil, err
	}
	return sorted(codes), nil
}

// Provinces lists the region codes Keap accepts for a country (ISO 3166-2), by code.
func (s *Service) Provinces(ctx context.Context, p tenants.Principal, hub, country string) ([]Locale, error) {
	c, err := s.lookup(ctx, p, hub)
	if err != nil {
		return nil, err
	}
	codes, err := s.countries(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, ok := codes[country]; !ok {
		return nil, apperr.Errorf(apperr.NotFound, "Keap knows no country %q: use an ISO 3166-1 alpha-3 code (e.g. USA) from GET /hubs/%s/lookups/countries", country, hub)
	}
	regions, err := s.provinces(ctx, c, country)
	if err != nil {
		return nil, err
	}
	return sorted(regions), nil
}

// lookup resolves the instance for a lookup call.
func (s *Service) lookup(ctx context.Context, p tenants.Principal, hub string) (*call, error) {
	inst, el, target, err := s.resolve(ctx, p, hub)
	if err != nil {
		return nil, err
	}
	if _, ok := el.Resource(lookupCountries); !ok {
		return nil, apperr.Errorf(apperr.NotFound, "%s (hub %s) has no resource %s; it serves %s", el.Key, el.Hub, lookupCountries, strings.Join(served(el), ", "))
	}
	return s.locator(&call{inst: inst, el: el, target: target}), nil
}

// locator returns c prepared for locale calls, or nil when its element
// defines no locale lookups (then nothing can be checked).
func (s *Service) locator(c *call) *call {
	res, ok := c.el.Resource(lookupCountries)
	if !ok {
		return nil
	}
	return &call{inst: c.inst, el: c.el, target: c.target, res: res, path: res.Path,
		req: Request{Hub: c.el.Hub, Resource: lookupCountries, Method: "GET"}}
}

func (s *Service) countries(ctx context.Context, c *call) (map[string]string, error) {
	return s.locales.get(c.target.RESTBase+c.res.Path, func() (map[string]string, error) {
		return s.fetchCodes(ctx, c, c.res.Path, c.res.ListKey)
	})
}

func (s *Service) provinces(ctx context.Context, c *call, country string) (map[string]string, error) {
	res, ok := c.el.Resource(lookupProvinces)
	if !ok {
		return map[string]string{}, nil
	}
	open, end := strings.Index(res.Path, "{"), strings.Index(res.Path, "}")
	path := res.Path[:open] + url.PathEscape(country) + res.Path[end+1:]
	return s.locales.get(c.target.RESTBase+path, func() (map[string]string, error) {
		return s.fetchCodes(ctx, c, path, res.ListKey)
	})
}

// fetchCodes reads one of Keap's {"<key>": {"<code>": "<name>"}} lists. The
// call outlives a cancelled caller, since others may be waiting for it.
func (s *Service) fetchCodes(ctx context.Context, c *call, path, key string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_, data, err := s.send(ctx, c, "GET", path, nil, nil)
	if err != nil {
		return nil, err
	}
	var env map[string]map[string]string
	if err := json.Unmarshal(data, &env); err != nil || env[key] == nil {
		return nil, apperr.Errorf(apperr.ProviderDown, "Keap's answer to GET %s lacks the object %q of codes", path, key)
	}
	return env[key], nil
}

func sorted(codes map[string]string) []Locale {
	out := make([]Locale, 0, len(codes))
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		out = append(out, Locale{Code: code, Name: codes[code]})
	}
	return out
}

// checkAddresses checks the country and region codes of the addresses in a
// write's body against Keap's lists before Keap sees them: a country must be
// an ISO 3166-1 alpha-3 code Keap lists, a region needs a country and must be
// one of its regions when Keap lists any.
func (s *Service) checkAddresses(ctx context.Context, c *call, doc any) error {
	obj, ok := doc.(map[string]any)
	if !ok || len(c.res.AddressFields) == 0 {
		return nil
	}
	lc := s.locator(c)
	if lc == nil {
		return nil
	}
	for _, f := range c.res.AddressFields {
		switch x := obj[f].(type) {
		case map[string]any:
			if err := s.checkAddress(ctx, lc, f, x); err != nil {
				return err
			}
		case []any:
			for i, a := range x {
				if m, ok := a.(map[string]any); ok {
					if err := s.checkAddress(ctx, lc, fmt.Sprintf("%s[%d]", f, i), m); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func (s *Service) checkAddress(ctx context.Context, c *call, label string, a map[string]any) error {
	hub := c.el.Hub
	text := func(key string) (string, error) {
		switch v := a[key].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		}
		return "", apperr.Errorf(apperr.Invalid, "%s.%s must be text", label, key)
	}
	country, err := text("country_code")
	if err != nil {
		return err
	}
	region, err := text("region")
	if err != nil {
		return err
	}
	if country == "" {
		if region != "" {
			return apperr.Errorf(apperr.Invalid, "%s.region %q needs %s.country_code: Keap takes a region only with its country, an ISO 3166-1 alpha-3 code (e.g. USA) from GET /hubs/%s/lookups/countries", label, region, label, hub)
		}
		return nil
	}
	countries, err := s.countries(ctx, c)
	if err != nil {
		return err
	}
	if _, ok := countries[country]; !ok {
		return apperr.Errorf(apperr.Invalid, "%s.country_code %q is not a country code Keap accepts: use an ISO 3166-1 alpha-3 code (e.g. USA, CAN, GBR) from GET /hubs/%s/lookups/countries", label, country, hub)
	}
	if region == "" {
		return nil
	}
	regions, err := s.provinces(ctx, c, country)
	if err != nil {
		return err
	}
	if _, ok := regions[region]; len(regions) > 0 && !ok {
		return apperr.Errorf(apperr.Invalid, "%s.region %q is not a region of %s: use an ISO 3166-2 code (e.g. US-AZ) from GET /hubs/%s/lookups/countries/%s/provinces", label, region, country, hub, country)
	}
	return nil
}
