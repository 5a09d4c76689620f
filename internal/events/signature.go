package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// SignatureHeader is Open Connectors' header for signed notifications, so
// verifiers written for it work unchanged.
const SignatureHeader = "Elements-Webhook-Signature"

// Signature is the SignatureHeader value for body under key:
// "sha256=" + base64(HMAC-SHA256(body, key)), over the exact bytes sent.
func Signature(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
