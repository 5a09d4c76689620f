-- Token refresh scheduling. due_at is when the refresher should next look at an
-- instance; only valid OAuth instances have one. refresh_failures counts
-- transient failures in a row, for backoff.
ALTER TABLE instance_credentials
    ADD COLUMN due_at                timestamptz,
    ADD COLUMN refresh_failures      integer NOT NULL DEFAULT 0,
    ADD COLUMN last_refresh_error    text,
    ADD COLUMN last_refresh_error_at timestamptz;

CREATE INDEX instance_credentials_due ON instance_credentials (due_at) WHERE due_at IS NOT NULL;

-- OAuth instances that exist already are looked at as soon as the refresher starts.
UPDATE instance_credentials c SET due_at = now()
FROM instances i WHERE i.id = c.instance_id AND i.valid AND i.auth_type = 'oauth2';
