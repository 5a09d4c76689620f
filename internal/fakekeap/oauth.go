package fakekeap

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// codeTTL is how long an authorization code can be exchanged.
const codeTTL = 10 * time.Minute

type authCode struct {
	clientID, redirectURI string
	expires               time.Time
}

type accessToken struct {
	clientID string
	expires  time.Time
}

type refreshToken struct {
	clientID string
	expires  time.Time
	rotated  bool // replaced by a newer token: presenting it again is the lost race
	revoked  bool // the user revoked access
}

// RegisterClient registers a Keap developer app and the redirect URIs it
// may send users back to. The authorize page redirects only to a registered
// URI, compared exactly, as Keap does.
func (s *Server) RegisterClient(clientID, clientSecret string, redirectURIs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[clientID] = clientSecret
	s.redirects[clientID] = append(s.redirects[clientID], redirectURIs...)
}

// AddRedirectURI registers one more redirect URI of a registered client.
func (s *Server) AddRedirectURI(clientID, redirectURI string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirects[clientID] = append(s.redirects[clientID], redirectURI)
}

// AddServiceAccountKey accepts key (KeapAK-…) via X-Keap-API-Key or Bearer on REST and XML-RPC.
func (s *Server) AddServiceAccountKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saks[key] = true
}

// AddLegacyKey accepts key as the legacy encrypted key of application app (such as "ab123").
func (s *Server) AddLegacyKey(app, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	app = strings.ToLower(app)
	if s.legacy[app] == nil {
		s.legacy[app] = map[string]bool{}
	}
	s.legacy[app][key] = true
}

// IssueCode returns the code the authorize page would issue, so tests can skip the browser.
func (s *Server) IssueCode(clientID, redirectURI string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[clientID]; !ok {
		return "", fmt.Errorf("fakekeap: unknown client_id %q: call RegisterClient first", clientID)
	}
	code := randomToken()
	s.codes[code] = authCode{clientID: clientID, redirectURI: redirectURI, expires: s.opts.Now().Add(codeTTL)}
	return code, nil
}

// RevokeRefreshTokens invalidates every refresh token of clientID, as when the user revokes access.
// Access tokens already issued keep working until they expire.
func (s *Server) RevokeRefreshTokens(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rt := range s.refresh {
		if rt.clientID == clientID {
			rt.revoked = true
		}
	}
}

// ExpireAccessTokens makes every access token issued so far expired.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for tok, at := range s.access {
		at.expires = now
		s.access[tok] = at
	}
}

// RefreshTokenValid reports whether the token endpoint would currently accept token.
func (s *Server) RefreshTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	return ok && !rt.rotated && !rt.revoked && s.opts.Now().Before(rt.expires)
}

// handleAuthorize is Keap's authorize page. A browser (Accept: text/html)
// gets a consent page whose Allow and Deny buttons post back here; other
// clients (curl, tests) are approved at once unless the query has deny=1.
// AutoApprove approves browsers at once too. POST is the consent page's answer.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "Bad Request: the consent form could not be read", http.StatusBadRequest)
			return
		}
		q = r.PostForm
	}
	clientID, redirect := q.Get("client_id"), q.Get("redirect_uri")
	s.mu.Lock()
	_, known := s.clients[clientID]
	registered := slices.Contains(s.redirects[clientID], redirect)
	s.mu.Unlock()
	target, err := url.Parse(redirect)
	var problem string
	switch {
	case clientID == "":
		problem = "missing client_id: pass the client id of your Keap developer app"
	case !known:
		problem = fmt.Sprintf("unknown client_id %q: no Keap developer app has this client id", clientID)
	case redirect == "":
		problem = "missing redirect_uri: pass the callback URL the code should be sent to"
	case err != nil || !target.IsAbs():
		problem = "redirect_uri must be an absolute URL"
	case !registered:
		problem = fmt.Sprintf("redirect_uri %q is not registered for this client: register it with your Keap developer app", redirect)
	case q.Get("response_type") != "code":
		problem = `response_type must be "code", the only value Keap supports`
	case q.Get("scope") != "" && q.Get("scope") != "full":
		problem = `scope must be "full", the only value Keap supports`
	}
	if problem != "" {
		http.Error(w, "Bad Request: "+problem, http.StatusBadRequest)
		return
	}

	reply := url.Values{}
	if state := q.Get("state"); state != "" {
		reply.Set("state", state)
	}
	decision := q.Get("decision")
	if decision == "deny" || r.Method == http.MethodGet && q.Get("deny") == "1" {
		reply.Set("error", "access_denied")
		redirectWith(w, r, target, reply)
		return
	}
	browser := strings.Contains(r.Header.Get("Accept"), "text/html")
	if r.Method == http.MethodGet && !s.opts.AutoApprove && q.Get("approve") != "1" && browser {
		writeConsentPage(w, q)
		return
	}
	if r.Method == http.MethodPost && decision != "allow" {
		http.Error(w, `Bad Request: decision must be "allow" or "deny"`, http.StatusBadRequest)
		return
	}
	code, err := s.IssueCode(clientID, redirect)
	if err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	reply.Set("code", code)
	reply.Set("scope", tokenScope)
	redirectWith(w, r, target, reply)
}

func redirectWith(w http.ResponseWriter, r *http.Request, target *url.URL, add url.Values) {
	q := target.Query()
	for k, v := range add {
		q[k] = v
	}
	u := *target
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// consentPage is the fake's authorize page: what a person sees at Keap.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Keap sandbox: allow access</title></head>
<body>
<main>
<h1>Allow access to {{.App}}.infusionsoft.com?</h1>
<p>The application <strong>{{.ClientID}}</strong> asks for full access to this sandbox Keap account.
This is connectord's fake Keap: no real account is involved.</p>
<form method="post" action="">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit" name="decision" value="allow" autofocus>Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</main>
</body></html>
`))

func writeConsentPage(w http.ResponseWriter, q url.Values) {
	type field struct{ Name, Value string }
	var fields []field
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state"} {
		if q.Has(k) {
			fields = append(fields, field{k, q.Get(k)})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_ = consentPage.Execute(w, map[string]any{"App": AppName, "ClientID": q.Get("client_id"), "Fields": fields})
}

// tokenError is an OAuth error answer of the token endpoint.
type tokenError struct {
	status      int
	code, about string
}

func (e *tokenError) Error() string { return e.code + ": " + e.about }

var (
	errInvalidClient       = &tokenError{http.StatusUnauthorized, "invalid_client", "Invalid client credentials"}
	errInvalidCode         = &tokenError{http.StatusBadRequest, "invalid_grant", "Invalid authorization code"}
	errInvalidRefreshToken = &tokenError{http.StatusBadRequest, "invalid_grant", "Invalid Refresh Token"}
	errMissingGrant        = &tokenError{http.StatusBadRequest, "invalid_request", "response_type or grant_type is required"}
)

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	resp, err := s.grant(w, r)
	var te *tokenError
	switch {
	case errors.As(err, &te):
		writeJSON(w, te.status, map[string]string{"error": te.code, "error_description": te.about})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
	default:
		writeJSON(w, http.StatusOK, resp)
	}
}

// grant runs one token request: client authentication, then the code or refresh grant.
func (s *Server) grant(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, errMissingGrant
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("malformed form body: %w", err)
	}
	form := r.PostForm
	grantType := form.Get("grant_type")
	if grantType == "" {
		return nil, errMissingGrant
	}
	if grantType != "authorization_code" && grantType != "refresh_token" {
		return nil, &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"}
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = form.Get("client_id"), form.Get("client_secret")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	want, known := s.clients[clientID]
	if !known || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return nil, errInvalidClient
	}
	now := s.opts.Now()
	if grantType == "authorization_code" {
		code, ok := s.codes[form.Get("code")]
		if !ok {
			return nil, errInvalidCode
		}
		delete(s.codes, form.Get("code")) // single use, even when the rest is wrong
		if code.clientID != clientID || code.redirectURI != form.Get("redirect_uri") || !now.Before(code.expires) {
			return nil, errInvalidCode
		}
		s.stats.CodeExchanges++
		return s.issueTokensLocked(clientID, now), nil
	}

	rt, ok := s.refresh[form.Get("refresh_token")]
	switch {
	case ok && rt.clientID == clientID && rt.rotated:
		s.stats.RefreshTokenReuse++
		return nil, errInvalidRefreshToken
	case !ok || rt.clientID != clientID || rt.revoked || !now.Before(rt.expires):
		s.stats.InvalidRefreshAttempts++
		return nil, errInvalidRefreshToken
	}
	rt.rotated = true
	s.stats.Refreshes++
	return s.issueTokensLocked(clientID, now), nil
}

func (s *Server) issueTokensLocked(clientID string, now time.Time) map[string]any {
	at, rt := randomToken(), randomToken()
	s.access[at] = accessToken{clientID: clientID, expires: now.Add(s.opts.AccessTokenTTL)}
	s.refresh[rt] = &refreshToken{clientID: clientID, expires: now.Add(s.opts.RefreshTokenTTL)}
	return map[string]any{
		"access_token":  at,
		"token_type":    "bearer",
		"expires_in":    int64(s.opts.AccessTokenTTL / time.Second),
		"refresh_token": rt,
		"scope":         tokenScope,
	}
}

// authenticate checks an API request's credential: an X-Keap-API-Key or a
// Bearer service account key or access token, and with legacyOK a legacy key
// in X-Keap-API-Key. expired tells an expired access token from a bad one.
func (s *Server) authenticate(r *http.Request, legacyOK bool) (ok, expired bool) {
	key := r.Header.Get("X-Keap-API-Key")
	bearer := ""
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		bearer = strings.TrimSpace(h[7:])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if key != "" && (s.saks[key] || legacyOK && s.legacyKeyLocked("", key)) {
		return true, false
	}
	if bearer == "" {
		return false, false
	}
	if s.saks[bearer] {
		return true, false
	}
	at, found := s.access[bearer]
	if !found {
		return false, false
	}
	if !s.opts.Now().Before(at.expires) {
		return false, true
	}
	return true, false
}

// legacyKeyLocked reports whether key is a legacy key of app, or of any app when app is "".
func (s *Server) legacyKeyLocked(app, key string) bool {
	if app != "" {
		return s.legacy[strings.ToLower(app)][key]
	}
	for _, keys := range s.legacy {
		if keys[key] {
			return true
		}
	}
	return false
}
