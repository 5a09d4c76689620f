package keap

import (
	"encoding/json"
	"strings"
)

// ErrorMessage extracts the human message from a Keap error body, whichever of
// Keap's shapes it has: the gateway's {"fault":{"faultstring"}}, REST v1's
// {"message"}, OAuth's {"error_description"}, or plain text.
func ErrorMessage(body []byte) string {
	var v struct {
		Message          string `json:"message"`
		ErrorDescription string `json:"error_description"`
		Error            any    `json:"error"`
		Fault            struct {
			FaultString string `json:"faultstring"`
		} `json:"fault"`
	}
	if json.Unmarshal(body, &v) == nil {
		switch {
		case v.Fault.FaultString != "":
			return v.Fault.FaultString
		case v.Message != "":
			return v.Message
		case v.ErrorDescription != "":
			return v.ErrorDescription
		}
		if s, ok := v.Error.(string); ok && s != "" {
			return s
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
