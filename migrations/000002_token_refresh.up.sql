-- Token refresh scheduling. due_at is when the refresher should next look at an
-- OAuth instance (NULL: as soon as possible, to compute its schedule);
-- refresh_failures counts transient failures in a row, for backoff.
ALTER TABLE instance_credentials
    ADD COLUMN due_at                timestamptz,
    ADD COLUMN refresh_failures      integer NOT NULL DEFAULT 0,
    ADD COLUMN last_refresh_error    text,
    ADD COLUMN last_refresh_error_at timestamptz;

CREATE INDEX instance_credentials_due ON instance_credentials (due_at NULLS FIRST);
