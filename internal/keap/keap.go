// Package keap is connectord's client for Keap's own APIs beyond OAuth: the
// REST v1 API and XML-RPC (through api.infusionsoft.com or an application's legacy
// endpoint). It knows Keap's credential kinds and error shapes.
//
// It must not store credentials or log them; callers hand them in per call.
package keap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
)

// ServiceAccountKeyPrefix marks a Keap service account key.
const ServiceAccountKeyPrefix = "KeapAK-"

// IsServiceAccountKey reports whether key is a service account key rather than a
// legacy encrypted key.
func IsServiceAccountKey(key string) bool { return strings.HasPrefix(key, ServiceAccountKeyPrefix) }

var appNamePattern = regexp.MustCompile(`^[a-z]{2}[0-9]{3}$`)

// ValidAppName reports whether name looks like a Keap application name: two
// letters and three digits, as the Keap glossary describes it.
func ValidAppName(name string) bool { return appNamePattern.MatchString(name) }

// Client calls Keap.
type Client struct {
	HTTP *http.Client
}

// VerifyAPIKey makes one cheap REST call (GET /account/profile) with the
// key as X-Keap-API-Key and reports whether Keap accepted it: a service
// account key, a PAT, or a legacy key (which Keap takes the same way since 2024).
func (c *Client) VerifyAPIKey(ctx context.Context, restBase, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(restBase, "/")+"/account/profile", nil)
	if err != nil {
		return fmt.Errorf("keap: %w", err)
	}
	req.Header.Set("X-Keap-API-Key", key)
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return TransportError("checking the API key", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		what := "service account key"
		if !IsServiceAccountKey(key) {
			what = "legacy API key"
		}
		return &apperr.Error{Code: apperr.ProviderRefused, Message: "Keap refused the " + what + " (infusionsoft.api.key)", ProviderMessage: ErrorMessage(body)}
	default:
		return &apperr.Error{Code: apperr.ProviderDown, Message: fmt.Sprintf("Keap answered %d while checking the API key; try again later", resp.StatusCode), ProviderMessage: ErrorMessage(body)}
	}
}

// VerifyLegacyKey makes one cheap XML-RPC call (DataService.getAppSetting) to the
// application's legacy endpoint with the key as first parameter.
func (c *Client) VerifyLegacyKey(ctx context.Context, legacyURL, key string) error {
	body, err := EncodeCall("DataService.getAppSetting", key, "Contact", "optiontypes")
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, legacyURL, strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("keap: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return TransportError("checking the legacy API key", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound {
		return &apperr.Error{Code: apperr.ProviderRefused, Message: "Keap has no application by that name (infusionsoft.app.name)", ProviderMessage: ErrorMessage(data)}
	}
	if resp.StatusCode >= 300 {
		return &apperr.Error{Code: apperr.ProviderDown, Message: fmt.Sprintf("Keap answered %d while checking the legacy API key; try again later", resp.StatusCode), ProviderMessage: ErrorMessage(data)}
	}
	if _, err := DecodeResponse(data); err != nil {
		var f *Fault
		if errors.As(err, &f) {
			return &apperr.Error{Code: apperr.ProviderRefused, Message: "Keap refused the legacy API key (infusionsoft.api.key) for this application", ProviderMessage: f.String}
		}
		return &apperr.Error{Code: apperr.ProviderDown, Message: "Keap's answer to the legacy API key check could not be read", Err: err}
	}
	return nil
}

// TransportError classifies a failure to get any answer from Keap: a time-out
// (504), Keap unreachable (502), or the call cancelled because its caller
// hung up.
func TransportError(doing string, err error) error {
	if errors.Is(err, context.Canceled) {
		return &apperr.Error{Code: apperr.Canceled, Message: "the caller hung up while " + doing, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &apperr.Error{Code: apperr.ProviderTimeout, Message: "Keap did not answer in time while " + doing, Err: err}
	}
	return &apperr.Error{Code: apperr.ProviderDown, Message: "Keap could not be reached while " + doing, Err: err}
}
