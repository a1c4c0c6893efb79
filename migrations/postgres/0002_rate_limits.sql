-- Fixed-window request counters shared by every `parlo serve` process. Keys are SHA-256
-- hashes (they contain client IPs). Global: holds no tenant data, so no row-level security.
CREATE TABLE rate_limits (
    key_hash      bytea NOT NULL,
    window_start  bigint NOT NULL,
    count         integer NOT NULL,
    expires_at    bigint NOT NULL,
    PRIMARY KEY (key_hash, window_start)
);
CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
