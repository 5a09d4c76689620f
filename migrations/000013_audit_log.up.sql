-- The audit log: who changed what, written in the same transaction as the
-- change (or, for a change that failed and rolled back, in one of its own).
-- Entries are never updated or deleted through the API; connectord prunes
-- those older than CONNECTORD_AUDIT_RETENTION.
CREATE TABLE audit_log (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    organization_id bigint      REFERENCES organizations (id) ON DELETE CASCADE, -- NULL: an operator action on no organization
    user_id         bigint,                 -- NULL for the operator; no FK: the entry outlives the user
    actor           text        NOT NULL,   -- 'user <id>' or 'operator'
    action          text        NOT NULL CHECK (action <> ''),
    target_type     text        NOT NULL DEFAULT '',
    target_id       bigint,                 -- no FK: the entry outlives what it names
    request_id      text        NOT NULL DEFAULT '',
    trace_id        text        NOT NULL DEFAULT '',
    source_ip       text        NOT NULL DEFAULT '',
    outcome         text        NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    detail          jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_org ON audit_log (organization_id, id DESC);
CREATE INDEX audit_log_at ON audit_log (at);

-- The W3C traceparent of the request that queued a notification, sent on to
-- the callback so a trace follows an event from Keap to the consumer.
ALTER TABLE notifications ADD COLUMN traceparent text;
