// Package events owns provider events: receiving Keap REST hook deliveries
// (with their verification handshake), polling Keap for changes, normalising both
// into Open Connectors events, and delivering them to each instance's callback
// URL, signed and retried.
//
// So far it holds the callback policy (which destinations deliveries may reach,
// checked at configuration and at connect time), the notification signature,
// the event and notification types, and Delivery, the workers that post stored
// notifications to callbacks with retries (the store's EnqueueEvents is how
// events get in), and the Poller, which asks Keap what changed since each
// instance's cursor and stores each page's events with the cursor after it;
// receiving hooks comes with the rest of the events issue.
// It must not call Keap for anything but events, must not import the store
// (Delivery and Poller take small store interfaces), and never deliver to a
// callback URL the policy has not checked.
package events
