-- Keap REST hooks connectord registered for instances in webhook mode. Each hook
-- has its own receiver secret, the last segment of its hookUrl
-- (CONNECTORD_PUBLIC_URL/events/keap/<secret>); only its SHA-256 is stored, so a
-- database dump does not let anyone post deliveries. A per-hook rather than
-- per-instance secret means a hook added later never needs the others' secrets,
-- which connectord no longer knows.
CREATE TABLE event_hooks (
    instance_id   bigint      NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    event_key     text        NOT NULL CHECK (event_key <> ''),
    secret_hash   bytea       NOT NULL UNIQUE,
    receiver_base text        NOT NULL, -- the CONNECTORD_PUBLIC_URL Keap's hook points at; '' until Keap accepted it
    hook_key      text,                 -- Keap's key; NULL until Keap accepted the hook
    status        text        NOT NULL DEFAULT 'Unregistered'
                  CHECK (status IN ('Unregistered', 'Unverified', 'Verified', 'Inactive')),
    checked_at    timestamptz,          -- when Keap last told connectord the hook's status
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, event_key)
);
CREATE INDEX event_hooks_hook_key ON event_hooks (hook_key);

-- When the hook reconciler should next look at an instance. seen_updated_at is
-- the instance's updated_at when it last did: an instance changed since (on any
-- replica) is due at once. due_at NULL: only a change makes it due. A claim
-- sets leased_until, so one reconciler at a time works on an instance and
-- replicas share the work; a crashed one's lease runs out.
CREATE TABLE event_hook_schedule (
    instance_id     bigint      PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    due_at          timestamptz,
    seen_updated_at timestamptz NOT NULL,
    leased_until    timestamptz,
    problem         text        -- why the configuration cannot be honoured, for the API
);
CREATE INDEX event_hook_schedule_due ON event_hook_schedule (due_at) WHERE due_at IS NOT NULL;
