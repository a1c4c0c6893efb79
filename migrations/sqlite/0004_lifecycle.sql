-- Data lifecycle: workspace suspension and the operator audit log.

-- Set by `parlo admin workspaces suspend`; a suspended workspace's widgets cannot start
-- sessions. NULL means active.
ALTER TABLE workspaces ADD COLUMN suspended_at INTEGER;

-- What operators did with `parlo admin`, kept apart from tenant data (no tenant_id, never
-- deleted with a workspace). Each entry's hash is SHA-256 over the previous entry's hash and
-- this entry's canonical encoding (see api/src/lifecycle/audit.rs), so a changed, inserted or
-- removed entry breaks the chain.
CREATE TABLE operator_audit (
    seq         INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    created_at  INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash        BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE TRIGGER operator_audit_no_update BEFORE UPDATE ON operator_audit
BEGIN
    SELECT RAISE(ABORT, 'operator_audit is append-only');
END;
CREATE TRIGGER operator_audit_no_delete BEFORE DELETE ON operator_audit
BEGIN
    SELECT RAISE(ABORT, 'operator_audit is append-only');
END;
