-- Knowledge libraries (issue 12): libraries of a workspace, the bots that answer from them,
-- their sources with the durable ingestion queue, the chunks with their full-text vector and
-- embedding, the citations stored with answers and the knowledge gaps. Every table is tenant
-- data: composite (tenant_id, id) keys, row-level security enabled, forced and scoped to
-- app.tenant_id like every other tenant table.

CREATE TABLE knowledge_libraries (
    tenant_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The full-text configuration (PostgreSQL regconfig name) of the library's chunks.
    language    text NOT NULL CHECK (language IN ('simple', 'english', 'german', 'french',
                                                  'spanish', 'italian', 'dutch', 'portuguese')),
    -- Bumped whenever the library's chunks change, so a process's cached vector index of
    -- a bot knows when to reload (one cheap read instead of every vector per question).
    revision    bigint NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- How a bot uses its libraries; no row means "libraries first".
CREATE TABLE knowledge_bot_settings (
    tenant_id    uuid NOT NULL,
    bot_id       uuid NOT NULL,
    answer_mode  text NOT NULL CHECK (answer_mode IN ('only_libraries', 'libraries_first')),
    PRIMARY KEY (tenant_id, bot_id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE knowledge_bot_libraries (
    tenant_id   uuid NOT NULL,
    bot_id      uuid NOT NULL,
    library_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, bot_id, library_id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, library_id) REFERENCES knowledge_libraries (tenant_id, id)
        ON DELETE CASCADE
);

CREATE TABLE knowledge_sources (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    library_id         uuid NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('file', 'url', 'sitemap', 'github')),
    -- A file's name, a page's or sitemap's URL, or owner/repo for GitHub.
    location           text NOT NULL,
    -- Kind-specific settings as JSON (GitHub: path and ref).
    options            text NOT NULL,
    title              text NOT NULL,
    status             text NOT NULL CHECK (status IN ('queued', 'fetching', 'parsing',
                                                       'embedding', 'ready', 'failed')),
    reason             text,
    pages              bigint NOT NULL,
    chunks             bigint NOT NULL,
    bytes              bigint NOT NULL,
    content_hash       bytea,
    -- An uploaded file's bytes (until it is re-ingested); NULL for fetched sources.
    content            bytea,
    -- A GitHub token sealed like BYOK keys (AAD = tenant + source).
    token_ciphertext   bytea,
    token_nonce        bytea,
    token_key_version  integer,
    created_at         bigint NOT NULL,
    updated_at         bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, library_id) REFERENCES knowledge_libraries (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX knowledge_sources_library ON knowledge_sources (tenant_id, library_id);

-- The durable ingestion queue: one job per ingestion of a source. Claimed with
-- FOR UPDATE SKIP LOCKED, leased until lease_until (a crashed worker's job is taken again
-- once its lease has passed), retried with backoff until max attempts.
CREATE TABLE knowledge_jobs (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    source_id    uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     integer NOT NULL,
    run_after    bigint NOT NULL,
    lease_until  bigint,
    last_error   text,
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES knowledge_sources (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX knowledge_jobs_due ON knowledge_jobs (tenant_id, status, run_after);

CREATE TABLE knowledge_chunks (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    -- The full-text row id on SQLite (FTS5 external content); unique, random.
    seq              bigint NOT NULL UNIQUE,
    source_id        uuid NOT NULL,
    library_id       uuid NOT NULL,
    ordinal          integer NOT NULL,
    heading_path     text NOT NULL,  -- JSON array of headings
    page             integer,
    -- The page a sitemap or repository chunk came from (cited instead of the source's URL).
    url              text,
    text             text NOT NULL,
    hash             text NOT NULL,
    embedding        bytea,
    embedding_model  text,
    embedding_dim    integer,
    created_at       bigint NOT NULL,
    -- PostgreSQL only: the full-text vector in the library's language (trigger below).
    tsv              tsvector,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES knowledge_sources (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, library_id) REFERENCES knowledge_libraries (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX knowledge_chunks_source ON knowledge_chunks (tenant_id, source_id);
CREATE INDEX knowledge_chunks_library ON knowledge_chunks (tenant_id, library_id);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING GIN (tsv);

CREATE FUNCTION knowledge_chunks_tsv() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.tsv := to_tsvector(
        (SELECT l.language FROM knowledge_libraries l
          WHERE l.tenant_id = NEW.tenant_id AND l.id = NEW.library_id)::regconfig,
        NEW.heading_path || ' ' || NEW.text);
    RETURN NEW;
END $$;

CREATE TRIGGER knowledge_chunks_tsv BEFORE INSERT OR UPDATE OF heading_path, text, library_id
    ON knowledge_chunks FOR EACH ROW EXECUTE FUNCTION knowledge_chunks_tsv();

-- The numbered sources an answer cited, copied (a source deleted later leaves the citation).
CREATE TABLE message_citations (
    tenant_id   uuid NOT NULL,
    message_id  uuid NOT NULL,
    number      integer NOT NULL,
    title       text NOT NULL,
    url         text,
    file_name   text,
    page        integer,
    PRIMARY KEY (tenant_id, message_id, number),
    FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE CASCADE
);

-- Questions the libraries could not answer. Chat-log data: it goes with its conversation
-- (retention, clearing, erasure).
CREATE TABLE knowledge_gaps (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    bot_id           uuid NOT NULL,
    conversation_id  uuid NOT NULL,
    question         text NOT NULL,
    score            double precision NOT NULL,
    created_at       bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX knowledge_gaps_bot ON knowledge_gaps (tenant_id, bot_id, created_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['knowledge_libraries', 'knowledge_bot_settings',
                             'knowledge_bot_libraries', 'knowledge_sources', 'knowledge_jobs',
                             'knowledge_chunks', 'message_citations', 'knowledge_gaps']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = parlo_current_tenant()) '
            'WITH CHECK (tenant_id = parlo_current_tenant())', t);
    END LOOP;
END $$;
