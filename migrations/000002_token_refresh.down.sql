DROP INDEX instance_credentials_due;
ALTER TABLE instance_credentials
    DROP COLUMN due_at,
    DROP COLUMN refresh_failures,
    DROP COLUMN last_refresh_error,
    DROP COLUMN last_refresh_error_at;
