-- Trust and operations (issue 17). Both tables are global: they hold no tenant data.
--
-- trust_checks: the latest result of each live self-check shown on /trust and in
-- /trust/status.json, written by whichever process holds the trust-check job lock and read
-- by every process.
CREATE TABLE trust_checks (
    name        TEXT PRIMARY KEY NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'info', 'warn', 'fail')),
    value       TEXT NOT NULL,
    checked_at  INTEGER NOT NULL
) STRICT;

-- operations: the latest outcome of each operation the checks report on (`backup`,
-- `restore_drill`, `retention`, `operator_audit`), recorded by the process or command that
-- ran it (`parlo backup`, `parlo restore --verify`, the serve jobs). `details` is JSON.
CREATE TABLE operations (
    kind        TEXT PRIMARY KEY NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('passed', 'failed')),
    details     TEXT NOT NULL
) STRICT;
