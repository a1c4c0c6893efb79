-- The customer site: MFA recovery codes and TOTP replay protection on accounts, and
-- invitations to workspaces (tenant data: RLS enabled and forced like every tenant table).

-- JSON array of hex SHA-256 hashes of the unused recovery codes (the codes are shown once).
ALTER TABLE users ADD COLUMN recovery_codes text NOT NULL DEFAULT '[]';
-- The last TOTP time step accepted at login, so a code cannot be used twice.
ALTER TABLE users ADD COLUMN totp_last_step bigint;

-- An invitation link carries a random token; only its SHA-256 is stored.
CREATE TABLE invitations (
    tenant_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'member')),
    created_by  uuid,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (tenant_id = parlo_current_tenant())
    WITH CHECK (tenant_id = parlo_current_tenant());
