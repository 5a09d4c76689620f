-- Polling: one cursor per instance and polled resource. cursor_at is the
-- newest change time already reported (Keap's last_updated, millisecond
-- precision); cursor_ids are the ids of the records reported whose change time
-- is exactly cursor_at, so a tie across a page boundary is neither skipped nor
-- repeated. sweep_from is cursor_at when the sweep under way began (NULL
-- between sweeps): a record created after it is CREATED, even after a restart
-- in the middle of the sweep. A replica polls an instance only while it holds
-- the lease on all the instance's rows (lease_owner, lease_until).
CREATE TABLE poll_cursors (
    instance_id    bigint      NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    resource       text        NOT NULL,
    cursor_at      timestamptz NOT NULL,
    cursor_ids     text[]      NOT NULL DEFAULT '{}',
    sweep_from     timestamptz,
    next_poll_at   timestamptz NOT NULL,
    lease_owner    text,
    lease_until    timestamptz,
    last_polled_at timestamptz,
    last_error     text,
    last_error_at  timestamptz,
    -- set when Keap refused the instance's credentials; polling resumes once
    -- the instance changes (updated_at later than this)
    stopped_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, resource)
);
CREATE INDEX poll_cursors_due ON poll_cursors (next_poll_at);
