// Package apperr owns connectord's one error type: an error carrying a code the
// HTTP layer maps to a status, a message written for the caller, and, when the
// provider said something, the provider's own words.
//
// It must not know about HTTP or PostgreSQL: those edges convert their errors into
// an *Error (or leave them as internal errors, which are never shown to callers).
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error; the HTTP layer maps each code to one status.
type Code string

// The codes connectord uses.
const (
	Invalid          Code = "invalid"           // the caller sent something wrong
	Unauthorized     Code = "unauthorized"      // missing or wrong credentials
	Forbidden        Code = "forbidden"         // authenticated but not allowed
	NotFound         Code = "not_found"         // no such thing (or not this tenant's)
	Conflict         Code = "conflict"          // the state does not allow it
	TooLarge         Code = "too_large"         // request body over the limit
	Unsupported      Code = "unsupported_media" // wrong Content-Type
	MethodNotAllowed Code = "method_not_allowed"
	ProviderRefused  Code = "provider_refused" // the provider said no to what the caller gave
	ProviderDown     Code = "provider_down"    // the provider could not be reached or failed
	ProviderTimeout  Code = "provider_timeout" // the provider did not answer in time
	Unavailable      Code = "unavailable"      // connectord cannot serve now (database down)
	Internal         Code = "internal"         // a bug or an unexpected failure; details are logged only
)

// ProviderThrottled: the provider's rate limit still refused after connectord's retries.
const ProviderThrottled Code = "provider_throttled"

// Gone: the thing existed and is no longer wanted (a Keap hook of an instance
// whose events are off); the caller should stop asking.
const Gone Code = "gone"

// NotImplemented: connectord does not serve this yet in this build or
// configuration; the message says what to do meanwhile.
const NotImplemented Code = "not_implemented"

// RequestTimeout: the caller did not send its request in time (a body
// half-sent, or sent too slowly).
const RequestTimeout Code = "request_timeout"

// Canceled: the caller hung up before its answer was ready, so the work
// done for it was cancelled. Nobody is left to read the answer; the request
// log shows 499, as nginx does.
const Canceled Code = "canceled"

// Error is an error meant for the caller of connectord's API.
type Error struct {
	Code            Code
	Message         string
	ProviderMessage string // what the provider answered, when it answered
	Err             error  // the underlying cause, never shown to the caller
	// RetryAfter, when positive, tells the caller when to try again (the
	// Retry-After header of a 429 connectord answers itself).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err, or Internal when err is not an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns err as an *Error when it is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
