-- Each instance may have one bridge key: the secret an XML-RPC caller passes
-- where Keap's XML-RPC took its API key, to reach connectord's XML-RPC bridge.
-- Only its SHA-256 is kept; it is shown once, when made or rotated.
CREATE TABLE instance_bridge_keys (
    instance_id bigint      PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    key_hash    bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
