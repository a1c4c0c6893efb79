-- Parlo data model (SQLite). Ids are UUIDs stored as 16-byte blobs; timestamps are unix
-- milliseconds (UTC). There is no row-level security here: every query of the SQLite
-- backend filters by tenant_id itself, and composite foreign keys (tenant_id, id) make a
-- row unable to point at another tenant's row.

-- The tenant registry (ids only); the name is tenant data and lives in workspace_profiles,
-- as on PostgreSQL where the registry is readable by background jobs.
CREATE TABLE workspaces (
    id          BLOB PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE workspace_profiles (
    tenant_id   BLOB PRIMARY KEY NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200)
) STRICT;

CREATE TABLE users (
    id                BLOB PRIMARY KEY NOT NULL,
    email             TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    totp_ciphertext   BLOB,
    totp_nonce        BLOB,
    totp_key_version  INTEGER,
    created_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE login_sessions (
    id            BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    BLOB NOT NULL UNIQUE,
    mfa_verified  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE memberships (
    tenant_id   BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT;
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE bots (
    tenant_id        BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    public_id        TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    greeting         TEXT NOT NULL,
    system_prompt    TEXT NOT NULL,
    model            TEXT NOT NULL,
    allowed_origins  TEXT NOT NULL,  -- JSON array of origins
    theme_color      TEXT NOT NULL,
    language         TEXT NOT NULL CHECK (language IN ('auto', 'en', 'de')),
    retention_days   INTEGER NOT NULL CHECK (retention_days BETWEEN 1 AND 365),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE provider_keys (
    tenant_id    BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL CHECK (provider IN ('mistral')),
    ciphertext   BLOB NOT NULL,
    nonce        BLOB NOT NULL,
    key_version  INTEGER NOT NULL,
    last_four    TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, provider)
) STRICT;

CREATE TABLE conversations (
    tenant_id         BLOB NOT NULL,
    id                BLOB NOT NULL,
    bot_id            BLOB NOT NULL,
    origin            TEXT NOT NULL,
    resume_hash       BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    last_activity_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX conversations_activity ON conversations (tenant_id, bot_id, last_activity_at);

CREATE TABLE messages (
    tenant_id          BLOB NOT NULL,
    id                 BLOB NOT NULL,
    conversation_id    BLOB NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'interrupted', 'failed')),
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created_at         INTEGER NOT NULL,
    completed_at       INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX messages_conversation ON messages (tenant_id, conversation_id, created_at);

CREATE TABLE attachments (
    tenant_id        BLOB NOT NULL,
    id               BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    message_id       BLOB,
    file_name        TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    sha256           BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX attachments_conversation ON attachments (tenant_id, conversation_id);

CREATE TABLE audit_log (
    tenant_id   BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    actor       BLOB,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

-- Append-only: entries change never and disappear only with their workspace.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN EXISTS (SELECT 1 FROM workspaces WHERE id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
