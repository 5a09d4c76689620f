// Package events owns provider events: receiving Keap REST hook deliveries
// (with their verification handshake), polling Keap for changes, normalising both
// into Open Connectors events, and delivering them to each instance's callback
// URL, signed and retried.
//
// It holds the callback policy (which destinations deliveries may reach,
// checked at configuration and at connect time), the notification signature,
// the event and notification types, Delivery (the workers that post stored
// notifications to callbacks with retries), the Receiver (Keap's handshakes and
// deliveries, normalised and stored through the store's EnqueueEvents before
// they are acknowledged), Hooks (which registers, checks, re-verifies and
// deletes each instance's Keap REST hooks as its configuration asks) and the
// Poller (which asks Keap what changed since each instance's cursor and stores
// each page's events with the cursor after it).
// It must not call Keap for anything but events, and then only through
// upstream (KeapCaller); must not import the store (each part takes a small
// store interface); must never log or show a hook's receiver secret; and
// must never deliver to a callback URL the policy has not checked.
package events
