-- Knowledge libraries (issue 12): libraries of a workspace, the bots that answer from them,
-- their sources with the durable ingestion queue, the chunks with their embedding, the
-- citations stored with answers and the knowledge gaps. Composite (tenant_id, id) keys as
-- everywhere; the full-text index is an FTS5 table over knowledge_chunks (external content,
-- kept in sync by triggers, keyed by the chunk's `seq`, which VACUUM cannot renumber; the
-- Porter stemmer, so "returns" finds "return", as PostgreSQL's language configurations do).

CREATE TABLE knowledge_libraries (
    tenant_id   BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    language    TEXT NOT NULL CHECK (language IN ('simple', 'english', 'german', 'french',
                                                  'spanish', 'italian', 'dutch', 'portuguese')),
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE knowledge_bot_settings (
    tenant_id    BLOB NOT NULL,
    bot_id       BLOB NOT NULL,
    answer_mode  TEXT NOT NULL CHECK (answer_mode IN ('only_libraries', 'libraries_first')),
    PRIMARY KEY (tenant_id, bot_id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE knowledge_bot_libraries (
    tenant_id   BLOB NOT NULL,
    bot_id      BLOB NOT NULL,
    library_id  BLOB NOT NULL,
    PRIMARY KEY (tenant_id, bot_id, library_id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, library_id) REFERENCES knowledge_libraries (tenant_id, id)
        ON DELETE CASCADE
) STRICT;

CREATE TABLE knowledge_sources (
    tenant_id          BLOB NOT NULL,
    id                 BLOB NOT NULL,
    library_id         BLOB NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('file', 'url', 'sitemap', 'github')),
    location           TEXT NOT NULL,
    options            TEXT NOT NULL,
    title              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('queued', 'fetching', 'parsing',
                                                       'embedding', 'ready', 'failed')),
    reason             TEXT,
    pages              INTEGER NOT NULL,
    chunks             INTEGER NOT NULL,
    bytes              INTEGER NOT NULL,
    content_hash       BLOB,
    content            BLOB,
    token_ciphertext   BLOB,
    token_nonce        BLOB,
    token_key_version  INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, library_id) REFERENCES knowledge_libraries (tenant_id, id)
        ON DELETE CASCADE
) STRICT;
CREATE INDEX knowledge_sources_library ON knowledge_sources (tenant_id, library_id);

CREATE TABLE knowledge_jobs (
    tenant_id    BLOB NOT NULL,
    id           BLOB NOT NULL,
    source_id    BLOB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL,
    run_after    INTEGER NOT NULL,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES knowledge_sources (tenant_id, id)
        ON DELETE CASCADE
) STRICT;
CREATE INDEX knowledge_jobs_due ON knowledge_jobs (tenant_id, status, run_after);

CREATE TABLE knowledge_chunks (
    tenant_id        BLOB NOT NULL,
    id               BLOB NOT NULL,
    seq              INTEGER NOT NULL UNIQUE,
    source_id        BLOB NOT NULL,
    library_id       BLOB NOT NULL,
    ordinal          INTEGER NOT NULL,
    heading_path     TEXT NOT NULL,
    page             INTEGER,
    url              TEXT,
    text             TEXT NOT NULL,
    hash             TEXT NOT NULL,
    embedding        BLOB,
    embedding_model  TEXT,
    embedding_dim    INTEGER,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES knowledge_sources (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, library_id) REFERENCES knowledge_libraries (tenant_id, id)
        ON DELETE CASCADE
) STRICT;
CREATE INDEX knowledge_chunks_source ON knowledge_chunks (tenant_id, source_id);
CREATE INDEX knowledge_chunks_library ON knowledge_chunks (tenant_id, library_id);

CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(
    heading_path, text,
    content = 'knowledge_chunks', content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks
BEGIN
    INSERT INTO knowledge_chunks_fts (rowid, heading_path, text)
    VALUES (new.seq, new.heading_path, new.text);
END;
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks
BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, heading_path, text)
    VALUES ('delete', old.seq, old.heading_path, old.text);
END;
CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE OF seq, heading_path, text
    ON knowledge_chunks
BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, heading_path, text)
    VALUES ('delete', old.seq, old.heading_path, old.text);
    INSERT INTO knowledge_chunks_fts (rowid, heading_path, text)
    VALUES (new.seq, new.heading_path, new.text);
END;

CREATE TABLE message_citations (
    tenant_id   BLOB NOT NULL,
    message_id  BLOB NOT NULL,
    number      INTEGER NOT NULL,
    title       TEXT NOT NULL,
    url         TEXT,
    file_name   TEXT,
    page        INTEGER,
    PRIMARY KEY (tenant_id, message_id, number),
    FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE knowledge_gaps (
    tenant_id        BLOB NOT NULL,
    id               BLOB NOT NULL,
    bot_id           BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    question         TEXT NOT NULL,
    score            REAL NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
        ON DELETE CASCADE
) STRICT;
CREATE INDEX knowledge_gaps_bot ON knowledge_gaps (tenant_id, bot_id, created_at);
