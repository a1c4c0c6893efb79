-- Trust and operations (issue 17). Both tables are global: they hold no tenant data, so
-- they have no row-level security (listed in storage::GLOBAL_TABLES).
--
-- trust_checks: the latest result of each live self-check shown on /trust and in
-- /trust/status.json, written by whichever process holds the trust-check job lock and read
-- by every process.
CREATE TABLE trust_checks (
    name        text PRIMARY KEY,
    status      text NOT NULL CHECK (status IN ('ok', 'info', 'warn', 'fail')),
    value       text NOT NULL,
    checked_at  bigint NOT NULL
);

-- operations: the latest outcome of each operation the checks report on (`backup`,
-- `restore_drill`, `retention`, `operator_audit`), recorded by the process or command that
-- ran it (`parlo backup`, `parlo restore --verify`, the serve jobs). `details` is JSON.
CREATE TABLE operations (
    kind        text PRIMARY KEY,
    at          bigint NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('passed', 'failed')),
    details     text NOT NULL
);
