// Package events owns provider events: receiving Keap REST hook deliveries
// (with their verification handshake), polling Keap for changes, normalising both
// into Open Connectors events, and delivering them to each instance's callback
// URL, signed and retried.
//
// So far it holds the callback policy (which destinations deliveries may reach,
// checked at configuration and at connect time) and the notification signature;
// receiving, polling and delivery come with the events issue. It must not call
// Keap for anything but events, and never deliver to a callback URL the policy
// has not checked.
package events
