package instances

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/keap"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/tenants"
)

// ElementRef names an element in a request body, by key or id.
type ElementRef struct {
	Key string `json:"key"`
	ID  int64  `json:"id"`
}

// ProviderData carries what the provider handed back to the callback.
type ProviderData struct {
	Code string `json:"code"`
}

// CreateRequest is the body of POST /instances and PUT /instances/{id}.
type CreateRequest struct {
	Element       *ElementRef                `json:"element"`
	ProviderData  *ProviderData              `json:"providerData"`
	Configuration map[string]json.RawMessage `json:"configuration"`
	Tags          []string                   `json:"tags"`
	Name          string                     `json:"name"`
}

func (r CreateRequest) code() string {
	if r.ProviderData == nil {
		return ""
	}
	return strings.TrimSpace(r.ProviderData.Code)
}

// Create provisions a new instance: it checks the request, exchanges the code or
// checks the API key with the provider, and saves the instance. The returned
// view carries the instance token, the only time it is shown.
func (s *Service) Create(ctx context.Context, p tenants.Principal, pathElement string, req CreateRequest) (*View, error) {
	el, inst, err := s.prepare(ctx, p, pathElement, req, true)
	if err != nil {
		return nil, err
	}
	if err := s.connect(ctx, el, inst, req.code()); err != nil {
		return nil, err
	}
	token := secrets.NewToken()
	inst.TokenHash = secrets.Hash(token)
	if err := s.store.CreateInstance(ctx, inst); err != nil {
		return nil, fmt.Errorf("create instance: %w", err)
	}
	s.hooks.Changed(inst.ID)
	v := s.render(el, inst)
	v.Token = token
	return v, nil
}

// Check validates a CreateRequest as Create does, without the provider: the
// hosted connect flow checks a session's instance before the user authorizes,
// when there is no code yet.
func (s *Service) Check(ctx context.Context, p tenants.Principal, req CreateRequest) error {
	_, _, err := s.prepare(ctx, p, "", req, false)
	return err
}

// prepare checks a create request, naming every problem in one error, and
// returns the instance it describes, not yet connected. needCode says whether
// an OAuth instance must come with its code.
func (s *Service) prepare(ctx context.Context, p tenants.Principal, pathElement string, req CreateRequest, needCode bool) (*elements.Element, *Instance, error) {
	el, err := s.resolveElement(pathElement, req.Element)
	if err != nil {
		return nil, nil, err
	}
	var pr problems
	name := checkName(req.Name, &pr)
	tags := checkTags(req.Tags, &pr)
	st := split(el, parseConfig(el, req.Configuration, &pr), settings{public: map[string]*string{}, secrets: map[string]string{}})
	authType := checkSettings(el, st, req.code() != "", needCode, &pr)
	s.checkCallback(ctx, st.public, &pr)
	if err := pr.err(); err != nil {
		return nil, nil, err
	}
	delete(st.public, KeyAuthType) // kept in its own column
	if _, given := st.public[KeyXMLRPCMode]; !given {
		mode := value(el, st.public, KeyXMLRPCMode) // the element's default, stored: see XMLRPCMode
		st.public[KeyXMLRPCMode] = &mode
	}
	return el, &Instance{
		OrganizationID: p.OrganizationID, CreatedBy: p.UserID, ElementKey: el.Key, Name: name,
		AuthType: authType, Tags: tags, Valid: true, Config: st.public, Secrets: st.secrets,
	}, nil
}

// Replace re-provisions an instance in place (PUT): the body is a whole instance
// as for Create. With providerData.code it exchanges the code anew, which repairs
// an instance whose tokens were lost; without one an OAuth instance keeps its tokens.
func (s *Service) Replace(ctx context.Context, p tenants.Principal, id int64, req CreateRequest) (*View, error) {
	cur, el, err := s.load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if req.Element != nil && !refersTo(req.Element, el) {
		return nil, apperr.Errorf(apperr.Invalid, "instance %d is an instance of %s; its element cannot change (create a new instance instead)", id, el.Key)
	}
	var pr problems
	name := checkName(req.Name, &pr)
	tags := checkTags(req.Tags, &pr)
	st := split(el, parseConfig(el, req.Configuration, &pr), settings{public: map[string]*string{}, secrets: map[string]string{}})
	hasTokens := cur.AuthType == AuthOAuth2 && cur.Secrets[KeyRefreshToken] != ""
	authType := checkSettings(el, st, req.code() != "", !hasTokens, &pr)
	s.checkCallback(ctx, st.public, &pr)
	if err := pr.err(); err != nil {
		return nil, err
	}
	delete(st.public, KeyAuthType)
	fresh := &Instance{AuthType: authType, Config: st.public, Secrets: st.secrets}
	reconnected := authType != AuthOAuth2 || req.code() != ""
	if reconnected {
		if err := s.connect(ctx, el, fresh, req.code()); err != nil {
			return nil, err
		}
	}
	updated, err := s.store.UpdateInstance(ctx, p.OrganizationID, id, func(inst *Instance) error {
		previous := inst.Config
		// A replacement that does not name the XML-RPC mode keeps the one
		// the instance has (or has not: see XMLRPCMode).
		if v, ok := previous[KeyXMLRPCMode]; ok && fresh.Config[KeyXMLRPCMode] == nil {
			fresh.Config[KeyXMLRPCMode] = v
		}
		inst.Name, inst.Tags, inst.AuthType, inst.Config = name, tags, authType, fresh.Config
		tokens := map[string]string{}
		if reconnected {
			tokens, inst.TokenExpiresAt, inst.RefreshedAt = fresh.Secrets, fresh.TokenExpiresAt, fresh.RefreshedAt
			inst.Valid, inst.InvalidReason = true, ""
			inst.RefreshDueAt, inst.RefreshFailures, inst.LastRefreshError, inst.LastRefreshErrorAt = fresh.RefreshDueAt, 0, "", nil
		} else {
			// Keep the tokens as they are now, under the lock: a refresh may have
			// rotated them since this request read the instance.
			for _, k := range []string{KeyAccessToken, KeyRefreshToken} {
				if v, ok := inst.Secrets[k]; ok {
					tokens[k] = v
				}
			}
			// The application name came from the token; it stays with the tokens.
			if v, ok := previous[KeyAppName]; ok && fresh.Config[KeyAppName] == nil {
				fresh.Config[KeyAppName] = v
			}
		}
		for k, v := range fresh.Secrets {
			tokens[k] = v
		}
		inst.Secrets = tokens
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.hooks.Changed(id)
	return s.render(el, updated), nil
}

// connect obtains or checks the instance's credentials with the provider: the
// code exchange for OAuth, one cheap call for API keys.
func (s *Service) connect(ctx context.Context, el *elements.Element, inst *Instance, code string) error {
	switch inst.AuthType {
	case AuthOAuth2:
		tok, err := s.oauth(el).Exchange(ctx, value(el, inst.Config, KeyClientID), inst.Secrets[KeyClientSecret], value(el, inst.Config, KeyCallbackURL), code)
		if err != nil {
			return err
		}
		if tok.AccessToken == "" {
			return apperr.Errorf(apperr.ProviderDown, "the provider's token response had no access token")
		}
		now := s.now()
		inst.Secrets[KeyAccessToken] = tok.AccessToken
		if tok.RefreshToken != "" {
			inst.Secrets[KeyRefreshToken] = tok.RefreshToken
		}
		if !tok.Expiry.IsZero() {
			exp := tok.Expiry
			inst.TokenExpiresAt = &exp
		}
		inst.RefreshedAt = &now
		inst.RefreshDueAt = &now // the refresher computes the schedule at once
		if app := tok.AppName(); app != "" && keap.ValidAppName(app) {
			inst.Config[KeyAppName] = &app
		}
		return nil
	case AuthAPIKey:
		key := inst.Secrets[KeyAPIKey]
		if UsesLegacyEndpoint(el, inst.AuthType, key) {
			return s.keys.VerifyLegacyKey(ctx, el.Endpoints.LegacyURL(value(el, inst.Config, KeyAppName)), key)
		}
		// Service account keys, PATs and legacy keys alike: one cheap REST call
		// with the key as X-Keap-API-Key.
		return s.keys.VerifyAPIKey(ctx, el.Endpoints.RESTBase(), key)
	}
	return apperr.Errorf(apperr.Invalid, "unknown authentication type %s", inst.AuthType)
}

func (s *Service) resolveElement(pathElement string, ref *ElementRef) (*elements.Element, error) {
	if pathElement != "" {
		el, ok := s.catalog.Lookup(pathElement)
		if !ok {
			return nil, apperr.Errorf(apperr.NotFound, "no element %q; the elements are %s", pathElement, strings.Join(s.catalog.Keys(), ", "))
		}
		if ref != nil && !refersTo(ref, el) {
			return nil, apperr.Errorf(apperr.Invalid, "the body's element does not match %s in the path", el.Key)
		}
		return el, nil
	}
	if ref == nil || ref.Key == "" && ref.ID == 0 {
		return nil, apperr.Errorf(apperr.Invalid, "missing required field: element.key (one of %s)", strings.Join(s.catalog.Keys(), ", "))
	}
	keyOrID := ref.Key
	if keyOrID == "" {
		keyOrID = fmt.Sprint(ref.ID)
	}
	el, ok := s.catalog.Lookup(keyOrID)
	if !ok || ref.Key != "" && ref.ID != 0 && el.ID != ref.ID {
		return nil, apperr.Errorf(apperr.Invalid, "element %q does not exist; the elements are %s", keyOrID, strings.Join(s.catalog.Keys(), ", "))
	}
	return el, nil
}

func refersTo(ref *ElementRef, el *elements.Element) bool {
	return (ref.Key == "" || ref.Key == el.Key) && (ref.ID == 0 || ref.ID == el.ID)
}

func (s *Service) elementOf(inst *Instance) (*elements.Element, error) {
	el, ok := s.catalog.Lookup(inst.ElementKey)
	if !ok {
		return nil, fmt.Errorf("instance %d has element %q which this build does not know", inst.ID, inst.ElementKey)
	}
	return el, nil
}

func checkName(name string, p *problems) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		p.add("missing required field: name")
	case len(name) > 200:
		p.add("name is longer than 200 characters")
	}
	return name
}

func checkTags(tags []string, p *problems) []string {
	out := []string{}
	if len(tags) > 50 {
		p.add("at most 50 tags, got %d", len(tags))
		return out
	}
	for _, t := range tags {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			p.add("tags must not be empty strings")
		case len(t) > 100:
			p.add("tag %q… is longer than 100 characters", t[:20])
		case !slices.Contains(out, t):
			out = append(out, t)
		}
	}
	return out
}

// OAuthApp is the Keap developer app an OAuth instance authenticates with.
type OAuthApp struct {
	ClientID, ClientSecret, CallbackURL string
}

// Reconnect repairs an OAuth instance with a new authorization code: it
// exchanges the code with app's credentials and saves the new tokens and app on
// the same instance, which keeps its id, configuration and instance token and
// becomes valid again. It is PUT with providerData.code, for the hosted flow.
func (s *Service) Reconnect(ctx context.Context, p tenants.Principal, id int64, app OAuthApp, code string) (*View, error) {
	cur, el, err := s.load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if cur.AuthType != AuthOAuth2 {
		return nil, apperr.Errorf(apperr.Invalid, "instance %d authenticates with an API key; only OAuth instances are reconnected through Keap's authorization", id)
	}
	fresh := &Instance{
		AuthType: AuthOAuth2,
		Config:   map[string]*string{KeyClientID: &app.ClientID, KeyCallbackURL: &app.CallbackURL},
		Secrets:  map[string]string{KeyClientSecret: app.ClientSecret},
	}
	if err := s.connect(ctx, el, fresh, code); err != nil {
		return nil, err
	}
	updated, err := s.store.UpdateInstance(ctx, p.OrganizationID, id, func(inst *Instance) error {
		if inst.AuthType != AuthOAuth2 {
			return apperr.Errorf(apperr.Conflict, "instance %d changed to API-key authentication meanwhile", id)
		}
		for k, v := range fresh.Config {
			inst.Config[k] = v
		}
		for k, v := range fresh.Secrets {
			inst.Secrets[k] = v
		}
		inst.TokenExpiresAt, inst.RefreshedAt = fresh.TokenExpiresAt, fresh.RefreshedAt
		inst.Valid, inst.InvalidReason = true, ""
		inst.RefreshDueAt, inst.RefreshFailures, inst.LastRefreshError, inst.LastRefreshErrorAt = fresh.RefreshDueAt, 0, "", nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.hooks.Changed(id)
	return s.render(el, updated), nil
}
