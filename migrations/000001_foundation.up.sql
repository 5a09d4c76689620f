-- Tenants: an organization and its users. Secrets are stored as SHA-256 hashes only.
CREATE TABLE organizations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (name <> ''),
    secret_hash bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           text        NOT NULL CHECK (email <> ''),
    secret_hash     bytea       NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_organization_email ON users (organization_id, lower(email));

-- Instances: one authenticated connection to one Keap account. configuration holds
-- only non-secret values; every secret value lives encrypted in instance_credentials.
CREATE TABLE instances (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by      bigint      REFERENCES users (id) ON DELETE SET NULL,
    element_key     text        NOT NULL,
    name            text        NOT NULL CHECK (name <> ''),
    auth_type       text        NOT NULL CHECK (auth_type IN ('oauth2', 'apikey')),
    token_hash      bytea       NOT NULL UNIQUE,
    tags            text[]      NOT NULL DEFAULT '{}',
    disabled        boolean     NOT NULL DEFAULT false,
    valid           boolean     NOT NULL DEFAULT true,
    invalid_reason  text,
    configuration   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_organization ON instances (organization_id, id);
CREATE INDEX instances_tags ON instances USING gin (tags);

-- Credentials: the instance's secret configuration (client secret, API key,
-- signature key) and its OAuth tokens, sealed together with AES-256-GCM.
-- key_id names the key that sealed them so keys can be rotated. The expiry and
-- last refresh time are not secret and stay in clear so the refresher can find
-- what falls due.
CREATE TABLE instance_credentials (
    instance_id      bigint      PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    key_id           text        NOT NULL,
    ciphertext       bytea       NOT NULL,
    token_expires_at timestamptz,
    refreshed_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_credentials_expiry ON instance_credentials (token_expires_at) WHERE token_expires_at IS NOT NULL;
