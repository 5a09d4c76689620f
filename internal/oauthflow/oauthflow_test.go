package oauthflow

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/connectord/connectord/internal/apperr"
)

func TestAuthorizeURL_SeedOrderAndEscaping(t *testing.T) {
	t.Parallel()
	p := &Provider{AuthURL: "https://signin.infusionsoft.com/app/oauth/authorize"}
	got := p.AuthorizeURL("insert_infusionsoft_api_key", "https://mycoolapp.com/auth", "full", "infusionsoftecommerce")
	want := "https://signin.infusionsoft.com/app/oauth/authorize?response_type=code&client_id=insert_infusionsoft_api_key&redirect_uri=https%3A%2F%2Fmycoolapp.com%2Fauth&scope=full&state=infusionsoftecommerce"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := p.AuthorizeURL("id", "http://x/cb?a=1&b=2", "full", ""); got != "https://signin.infusionsoft.com/app/oauth/authorize?response_type=code&client_id=id&redirect_uri=http%3A%2F%2Fx%2Fcb%3Fa%3D1%26b%3D2&scope=full" {
		t.Fatalf("callback query not escaped or empty state not omitted: %s", got)
	}
}

func TestExchange_ErrorsAreClassified(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   apperr.Code
		msg    string
	}{
		{"refused", 400, `{"error":"invalid_grant","error_description":"Invalid authorization code"}`, apperr.ProviderRefused, "Invalid authorization code"},
		{"bad client", 401, `{"error":"invalid_client","error_description":"Invalid client credentials"}`, apperr.ProviderRefused, "Invalid client credentials"},
		{"down", 503, `<html>Service Unavailable</html>`, apperr.ProviderDown, "<html>Service Unavailable</html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			p := &Provider{TokenURL: srv.URL, Client: srv.Client()}
			_, err := p.Exchange(context.Background(), "id", "secret", "http://cb", "code")
			e, ok := apperr.As(err)
			if !ok || e.Code != tt.want || e.ProviderMessage != tt.msg {
				t.Fatalf("got %#v", err)
			}
		})
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p := &Provider{TokenURL: srv.URL}
	if _, err := p.Exchange(context.Background(), "id", "secret", "http://cb", "code"); apperr.CodeOf(err) != apperr.ProviderDown {
		t.Fatalf("unreachable token endpoint: want provider_down, got %v", err)
	}
}

func TestToken_AppName(t *testing.T) {
	t.Parallel()
	if got := (Token{Scope: "full|ab123.infusionsoft.com"}).AppName(); got != "ab123" {
		t.Fatalf("got %q", got)
	}
	if got := (Token{Scope: "full"}).AppName(); got != "" {
		t.Fatalf("got %q", got)
	}
}
