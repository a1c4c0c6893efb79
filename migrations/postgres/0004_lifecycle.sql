-- Data lifecycle: workspace suspension and the operator audit log.

-- Set by `parlo admin workspaces suspend`; a suspended workspace's widgets cannot start
-- sessions. NULL means active. The registry's policies already confine writes to the
-- workspace's own tenant transaction.
ALTER TABLE workspaces ADD COLUMN suspended_at bigint;

-- What operators did with `parlo admin`, kept apart from tenant data: no tenant_id, so it is
-- a global table without row-level security, and it is never deleted with a workspace. The
-- application role may only INSERT and SELECT (see `parlo migrate`). Each entry's hash is
-- SHA-256 over the previous entry's hash and this entry's canonical encoding (see
-- api/src/lifecycle/audit.rs), so a changed, inserted or removed entry breaks the chain.
CREATE TABLE operator_audit (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    created_at  bigint NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    details     text NOT NULL,
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (length(hash) = 32)
);
