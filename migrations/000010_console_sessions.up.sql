-- Console sessions: a person signed in to /console. Only the SHA-256 hash of
-- the session token (the cookie's value) is stored; the token itself exists
-- only in the browser. Sessions end at expires_at, or when signed out.
CREATE TABLE console_sessions (
    token_hash      bytea       PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
