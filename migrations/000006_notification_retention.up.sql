-- Delivered notifications are pruned after CONNECTORD_EVENTS_RETENTION; this
-- index finds the oldest of them without reading the rest.
CREATE INDEX notifications_delivered ON notifications (delivered_at) WHERE status = 'delivered';
