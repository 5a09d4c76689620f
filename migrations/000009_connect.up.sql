-- Keap developer apps an organization stores once per element, for the hosted
-- connect flow: the client id in clear, the client secret sealed like instance
-- credentials (key_id names the key, the ciphertext is bound to the row).
CREATE TABLE organization_oauth_apps (
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    element_key     text        NOT NULL,
    client_id       text        NOT NULL CHECK (client_id <> ''),
    key_id          text        NOT NULL,
    ciphertext      bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, element_key)
);

-- Connect sessions: one hosted connect flow an application opened for an end
-- user. The session token (in the connect URL), the browser binding (the
-- cookie the connect page sets) and the OAuth state are stored as SHA-256
-- hashes only. The configuration the instance will get (it may hold a secret
-- such as a signature key) is sealed until the session finishes; the new
-- instance's token is sealed too, kept only until the application reads it once
-- (or the session is deleted, 30 days after it expired).
CREATE TABLE connect_sessions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by      bigint      REFERENCES users (id) ON DELETE SET NULL,
    element_key     text        NOT NULL,
    instance_id     bigint      REFERENCES instances (id) ON DELETE SET NULL,
    reconnect       boolean     NOT NULL DEFAULT false,
    name            text        NOT NULL DEFAULT '',
    tags            text[]      NOT NULL DEFAULT '{}',
    redirect_url    text        NOT NULL,
    token_hash      bytea       NOT NULL UNIQUE,
    browser_hash    bytea,
    state_hash      bytea       UNIQUE,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'connecting', 'success', 'error')),
    error           text,
    error_message   text,
    key_id          text,
    ciphertext      bytea,
    token_key_id    text,
    token_ciphertext bytea,
    token_read_at   timestamptz,
    expires_at      timestamptz NOT NULL,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connect_sessions_organization ON connect_sessions (organization_id, id);
-- Expired sessions are deleted 30 days on, per organization.
CREATE INDEX connect_sessions_expiry ON connect_sessions (organization_id, expires_at);
