-- Parlo data model (PostgreSQL). Run as the schema owner (`parlo migrate`); the server
-- connects as a separate application role that owns nothing and is subject to the
-- row-level security policies below. Timestamps are unix milliseconds (UTC) as in the
-- SQLite backend, so one query text serves both.
--
-- Tenant scope: each transaction of the application sets
--   set_config('app.tenant_id', '<workspace uuid>', true)
-- and every policy compares with NULLIF(current_setting('app.tenant_id', true), '')::uuid,
-- so a transaction without a tenant sees and writes no tenant rows at all.

-- The tenant registry. Anyone may list ids (background jobs iterate tenants), but a row can
-- only be created, changed or deleted inside its own tenant's transaction. The name is
-- tenant data and lives in workspace_profiles.
CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    created_at  bigint NOT NULL
);

CREATE TABLE workspace_profiles (
    tenant_id   uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200)
);

-- Accounts are global (one person may belong to several workspaces); they hold no tenant data.
CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL UNIQUE,
    password_hash     text NOT NULL,
    totp_ciphertext   bytea,
    totp_nonce        bytea,
    totp_key_version  integer,
    created_at        bigint NOT NULL
);

CREATE TABLE login_sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    mfa_verified  boolean NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE bots (
    tenant_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id               uuid NOT NULL,
    public_id        text NOT NULL UNIQUE,
    name             text NOT NULL,
    greeting         text NOT NULL,
    system_prompt    text NOT NULL,
    model            text NOT NULL,
    allowed_origins  text NOT NULL,  -- JSON array of origins
    theme_color      text NOT NULL,
    language         text NOT NULL CHECK (language IN ('auto', 'en', 'de')),
    retention_days   integer NOT NULL CHECK (retention_days BETWEEN 1 AND 365),
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE provider_keys (
    tenant_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    provider     text NOT NULL CHECK (provider IN ('mistral')),
    ciphertext   bytea NOT NULL,
    nonce        bytea NOT NULL,
    key_version  integer NOT NULL,
    last_four    text NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

CREATE TABLE conversations (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    bot_id            uuid NOT NULL,
    origin            text NOT NULL,
    resume_hash       bytea NOT NULL,
    created_at        bigint NOT NULL,
    last_activity_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX conversations_activity ON conversations (tenant_id, bot_id, last_activity_at);

CREATE TABLE messages (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    conversation_id    uuid NOT NULL,
    role               text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content            text NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'complete', 'interrupted', 'failed')),
    prompt_tokens      bigint,
    completion_tokens  bigint,
    created_at         bigint NOT NULL,
    completed_at       bigint,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_conversation ON messages (tenant_id, conversation_id, created_at);

CREATE TABLE attachments (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    conversation_id  uuid NOT NULL,
    message_id       uuid,
    file_name        text NOT NULL,
    content_type     text NOT NULL,
    size_bytes       bigint NOT NULL,
    sha256           bytea NOT NULL,
    created_at       bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX attachments_conversation ON attachments (tenant_id, conversation_id);

-- Append-only: the application role is granted INSERT and SELECT only (see `parlo migrate`).
CREATE TABLE audit_log (
    tenant_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    actor       uuid,
    action      text NOT NULL,
    target      text NOT NULL,
    details     text NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Row-level security: enabled and forced (so even the owner is subject to it).
CREATE FUNCTION parlo_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY registry_read ON workspaces FOR SELECT USING (true);
CREATE POLICY registry_insert ON workspaces FOR INSERT WITH CHECK (id = parlo_current_tenant());
CREATE POLICY registry_update ON workspaces FOR UPDATE
    USING (id = parlo_current_tenant()) WITH CHECK (id = parlo_current_tenant());
CREATE POLICY registry_delete ON workspaces FOR DELETE USING (id = parlo_current_tenant());

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workspace_profiles', 'memberships', 'bots', 'provider_keys',
                             'conversations', 'messages', 'attachments', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = parlo_current_tenant()) '
            'WITH CHECK (tenant_id = parlo_current_tenant())', t);
    END LOOP;
END $$;

-- A signed-in user may list their own memberships across workspaces (to pick one); the
-- application sets app.user_id only for that read.
CREATE POLICY own_memberships ON memberships FOR SELECT
    USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);
