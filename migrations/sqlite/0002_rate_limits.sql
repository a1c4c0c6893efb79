-- Fixed-window request counters shared by every process on the database. Keys are SHA-256
-- hashes (they contain client IPs), so no personal data is stored in clear.
CREATE TABLE rate_limits (
    key_hash      BLOB NOT NULL,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (key_hash, window_start)
) STRICT;
CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
