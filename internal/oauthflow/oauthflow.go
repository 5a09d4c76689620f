// Package oauthflow owns the OAuth 2.0 authorization-code flow with a provider:
// building the authorize URL the user is sent to, exchanging the code the
// provider returns for tokens, and refreshing them.
//
// It must not store anything: callers persist the tokens it returns, and it never
// logs a token, code or client secret.
package oauthflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/connectord/connectord/internal/apperr"
)

// Provider is one OAuth provider's pair of endpoints.
type Provider struct {
	AuthURL  string
	TokenURL string
	Client   *http.Client // used for the token endpoint
}

// Token is what the provider granted.
type Token struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time // zero when the provider did not say
	Scope        string    // e.g. "full|ab123.infusionsoft.com"
}

// AppName returns the Keap application the token is for, taken from the scope
// ("full|ab123.infusionsoft.com" → "ab123"), or "".
func (t Token) AppName() string {
	_, host, ok := strings.Cut(t.Scope, "|")
	if !ok {
		return ""
	}
	app, _, _ := strings.Cut(host, ".")
	return app
}

// AuthorizeURL returns the URL that starts the authorization, with its
// parameters in the order Open Connectors shows them:
// response_type, client_id, redirect_uri, scope, state.
func (p *Provider) AuthorizeURL(clientID, redirectURI, scope, state string) string {
	var b strings.Builder
	b.WriteString(p.AuthURL)
	if strings.Contains(p.AuthURL, "?") {
		b.WriteByte('&')
	} else {
		b.WriteByte('?')
	}
	b.WriteString("response_type=code&client_id=")
	b.WriteString(url.QueryEscape(clientID))
	b.WriteString("&redirect_uri=")
	b.WriteString(url.QueryEscape(redirectURI))
	b.WriteString("&scope=")
	b.WriteString(url.QueryEscape(scope))
	if state != "" {
		b.WriteString("&state=")
		b.WriteString(url.QueryEscape(state))
	}
	return b.String()
}

func (p *Provider) config(clientID, clientSecret, redirectURI string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURI,
		Scopes:       []string{"full"},
		// Keap's token endpoint takes the client credentials in the form body for
		// the code exchange; naming the style avoids oauth2's probing retry.
		Endpoint: oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
}

// ctx hands oauth2 the client for the token endpoint, made never to follow
// a redirect: the code exchange and the refresh carry the client secret, the
// code or the refresh token, and a 307 would re-send them to wherever the
// Location points. A redirect is an answer like any other non-2xx.
func (p *Provider) ctx(ctx context.Context) context.Context {
	c := http.Client{}
	if p.Client != nil {
		c = *p.Client
	}
	c.CheckRedirect = refuseRedirect
	return context.WithValue(ctx, oauth2.HTTPClient, &c)
}

func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Exchange trades an authorization code for tokens.
func (p *Provider) Exchange(ctx context.Context, clientID, clientSecret, redirectURI, code string) (Token, error) {
	tok, err := p.config(clientID, clientSecret, redirectURI).Exchange(p.ctx(ctx), code)
	if err != nil {
		return Token{}, providerError("exchanging the authorization code", err)
	}
	return fromOAuth2(tok), nil
}

func fromOAuth2(tok *oauth2.Token) Token {
	t := Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	if s, ok := tok.Extra("scope").(string); ok {
		t.Scope = s
	}
	return t
}

// providerError turns a token endpoint failure into an error for the caller:
// a refusal (4xx) is the caller's to fix, anything else is the provider's trouble.
func providerError(doing string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorDescription
		if msg == "" {
			msg = re.ErrorCode
		}
		if msg == "" {
			msg = strings.TrimSpace(string(re.Body))
			if len(msg) > 300 {
				msg = msg[:300]
			}
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
			return &apperr.Error{Code: apperr.ProviderRefused, Message: "the provider refused " + doing, ProviderMessage: msg, Err: err}
		}
		return &apperr.Error{Code: apperr.ProviderDown, Message: "the provider failed while " + doing + "; try again later", ProviderMessage: msg, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &apperr.Error{Code: apperr.ProviderTimeout, Message: "the provider did not answer in time while " + doing, Err: err}
	}
	return &apperr.Error{Code: apperr.ProviderDown, Message: "the provider could not be reached while " + doing, Err: err}
}

// ErrRefreshRefused marks a refresh the provider refused for good (the refresh
// token is invalid, used, expired or revoked, or the client is no longer
// accepted): only a new authorization repairs it.
var ErrRefreshRefused = errors.New("oauthflow: the provider refused the refresh token")

// Refresh trades a refresh token for new tokens. Keap rotates refresh tokens:
// the answer carries a new one and the old one stops working, so the caller must
// persist the result before anything else uses it. A refusal wraps
// ErrRefreshRefused; anything else (time-outs, 5xx, 429) is transient.
func (p *Provider) Refresh(ctx context.Context, clientID, clientSecret, refreshToken string) (Token, error) {
	cfg := p.config(clientID, clientSecret, "")
	// Keap documents HTTP Basic client authentication for the refresh grant.
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	tok, err := cfg.TokenSource(p.ctx(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && (re.Response.StatusCode == http.StatusBadRequest || re.Response.StatusCode == http.StatusUnauthorized) {
			switch re.ErrorCode {
			case "invalid_grant", "invalid_request", "invalid_client", "unauthorized_client":
				return Token{}, fmt.Errorf("%w: %w", ErrRefreshRefused, providerError("refreshing the token", err))
			}
		}
		return Token{}, providerError("refreshing the token", err)
	}
	// When the answer has no refresh token, oauth2 keeps the one we sent: the
	// provider did not rotate it, so it is still the one to use.
	return fromOAuth2(tok), nil
}
