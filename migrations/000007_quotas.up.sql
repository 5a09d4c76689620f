-- Keap's quotas, shared by every replica (internal/quota). One row per quota:
-- its counters for the current minute and day (UTC), a pause Keap asked for,
-- and whether the day's exhaustion was reported. The row is locked for the
-- length of one replica's sync, so leases change one replica at a time.
CREATE TABLE quotas (
    key          text PRIMARY KEY, -- oauthClient:<client id> or apiKey:<sha-256 hex>
    minute_start timestamptz NOT NULL,
    minute_used  integer NOT NULL DEFAULT 0,
    day_start    date NOT NULL,
    day_used     integer NOT NULL DEFAULT 0,
    paused_until timestamptz,
    exhausted_on date,
    -- The last time a slice was cut or a lease expired: a raise out of
    -- capacity freed before the current second may take effect at once.
    freed_at     timestamptz NOT NULL DEFAULT 'epoch'
);

-- Each replica's slice of a quota: calls per second, today's calls it may
-- still send, and the instances it serves (with their calls waiting). A
-- lease not renewed by expires_at is dead and its slice free.
CREATE TABLE quota_leases (
    key          text NOT NULL REFERENCES quotas ON DELETE CASCADE,
    replica      text NOT NULL,
    grant_per_s  integer NOT NULL,
    cap          double precision NOT NULL,
    day_reserved integer NOT NULL,
    instances    bigint[] NOT NULL,
    waiting      integer[] NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (key, replica)
);

-- Each instance's calls on a quota this minute and today (UTC).
CREATE TABLE quota_usage (
    key          text NOT NULL REFERENCES quotas ON DELETE CASCADE,
    instance_id  bigint NOT NULL REFERENCES instances ON DELETE CASCADE,
    minute_start timestamptz NOT NULL,
    minute_used  integer NOT NULL,
    day_start    date NOT NULL,
    day_used     integer NOT NULL,
    PRIMARY KEY (key, instance_id)
);
CREATE INDEX quota_usage_instance ON quota_usage (instance_id);
