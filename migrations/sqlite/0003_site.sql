-- The customer site: MFA recovery codes and TOTP replay protection on accounts, and
-- invitations to workspaces.

-- JSON array of hex SHA-256 hashes of the unused recovery codes (the codes are shown once).
ALTER TABLE users ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '[]';
-- The last TOTP time step accepted at login, so a code cannot be used twice.
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

-- An invitation link carries a random token; only its SHA-256 is stored.
CREATE TABLE invitations (
    tenant_id   BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_by  BLOB,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
