-- Events and their delivery to callback URLs. A notification is one callback
-- delivery (at most event.notification.batch.size events) with a stable event_id
-- that every redelivery repeats, so consumers can deduplicate. raw is the
-- provider delivery or poll result the events came from, sent along as "raw".
CREATE TABLE notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text        NOT NULL UNIQUE,
    instance_id     bigint      NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0, -- every try, ever
    failures        integer     NOT NULL DEFAULT 0, -- failed tries since the last (re)queue, for backoff
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    raw             jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
-- Workers claim from this index alone: pending rows by due time.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_instance ON notifications (instance_id, id DESC);

-- One normalised event, carried by exactly one notification.
CREATE TABLE events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint      NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    instance_id     bigint      NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    event_type      text        NOT NULL CHECK (event_type IN ('CREATED', 'UPDATED', 'DELETED')),
    object_type     text        NOT NULL,
    object_id       text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    element_key     text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_notification ON events (notification_id, id);
CREATE INDEX events_instance ON events (instance_id);

-- Every delivery try: the HTTP status, or the error when there was none.
CREATE TABLE notification_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint      NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempted_at    timestamptz NOT NULL,
    http_status     integer,
    error           text,
    duration_ms     integer     NOT NULL
);
CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id, id);
