// Package events will own provider events: receiving Keap REST hook deliveries
// (with their verification handshake), polling Keap for changes, normalising both
// into Open Connectors events, and delivering them to each instance's callback
// URL, signed and retried.
//
// It is empty until the events issue; it must not call Keap for anything but
// events, and never deliver to a callback URL it has not checked.
package events
