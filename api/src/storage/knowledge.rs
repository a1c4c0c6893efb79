//! Knowledge libraries: libraries, the bots' links and answering mode, sources with their
//! ingestion queue (`knowledge_jobs`), chunks with their full-text index and embeddings,
//! citations stored with answers and knowledge gaps. Owns no policy: what to fetch, how to
//! chunk, when to retry and how to rank is decided in `crate::knowledge`.
//!
//! Every statement is written once for both backends except two, which cannot be: claiming
//! a job (PostgreSQL adds `FOR UPDATE SKIP LOCKED` so several processes share the queue;
//! SQLite has one writer) and the full-text search itself (FTS5 `MATCH` and `bm25` on
//! SQLite, `tsvector @@ tsquery` in the library's language and `ts_rank_cd` on PostgreSQL).

use super::backend::Db;
use super::error::{StoreError, StoreResult, corrupt};
use super::sql::TenantTx;
use super::store::Store;
use crate::model::{
    AnswerMode, BotId, BotKnowledge, ChunkHit, ChunkId, Citation, ClaimedJob, ConversationId,
    Embedding, GapId, KnowledgeGap, KnowledgeJob, KnowledgeJobId, KnowledgeLimits, Library,
    LibraryId, LibraryInput, LibraryLanguage, MessageId, NewChunk, NewSource, SealedSecret, Source,
    SourceId, SourceKind, SourcePayload, SourceStatus, TenantId, Timestamp,
};

const LIBRARY_COLUMNS: &str = "tenant_id, id, name, language, created_at, updated_at";

const SOURCE_COLUMNS: &str = "tenant_id, id, library_id, kind, location, options, title, \
     status, reason, pages, chunks, bytes, content_hash, created_at, updated_at";

const HIT_COLUMNS: &str = "c.id AS chunk_id, c.source_id, c.library_id, s.kind AS source_kind, \
     s.title AS source_title, s.location, c.heading_path, c.page, c.url, c.text";

#[derive(sqlx::FromRow)]
struct LibraryRow {
    tenant_id: TenantId,
    id: LibraryId,
    name: String,
    language: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl LibraryRow {
    fn into_library(self) -> StoreResult<Library> {
        Ok(Library {
            tenant_id: self.tenant_id,
            id: self.id,
            name: self.name,
            language: LibraryLanguage::parse(&self.language)
                .map_err(|_| corrupt("knowledge_libraries.language"))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    tenant_id: TenantId,
    id: SourceId,
    library_id: LibraryId,
    kind: String,
    location: String,
    options: String,
    title: String,
    status: String,
    reason: Option<String>,
    pages: i64,
    chunks: i64,
    bytes: i64,
    content_hash: Option<Vec<u8>>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl SourceRow {
    fn into_source(self) -> StoreResult<Source> {
        Ok(Source {
            tenant_id: self.tenant_id,
            id: self.id,
            library_id: self.library_id,
            kind: SourceKind::parse(&self.kind).map_err(|_| corrupt("knowledge_sources.kind"))?,
            location: self.location,
            options: serde_json::from_str(&self.options)
                .map_err(|_| corrupt("knowledge_sources.options"))?,
            title: self.title,
            status: SourceStatus::parse(&self.status)
                .map_err(|_| corrupt("knowledge_sources.status"))?,
            reason: self.reason,
            pages: self.pages,
            chunks: self.chunks,
            bytes: self.bytes,
            content_hash: self.content_hash,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PayloadRow {
    #[sqlx(flatten)]
    source: SourceRow,
    content: Option<Vec<u8>>,
    token_ciphertext: Option<Vec<u8>>,
    token_nonce: Option<Vec<u8>>,
    token_key_version: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    chunk_id: ChunkId,
    source_id: SourceId,
    library_id: LibraryId,
    source_kind: String,
    source_title: String,
    location: String,
    heading_path: String,
    page: Option<i32>,
    url: Option<String>,
    text: String,
}

impl HitRow {
    fn into_hit(self, score: f32) -> StoreResult<ChunkHit> {
        Ok(ChunkHit {
            chunk_id: self.chunk_id,
            source_id: self.source_id,
            library_id: self.library_id,
            source_kind: SourceKind::parse(&self.source_kind)
                .map_err(|_| corrupt("knowledge_sources.kind"))?,
            source_title: self.source_title,
            location: self.location,
            heading_path: serde_json::from_str(&self.heading_path)
                .map_err(|_| corrupt("knowledge_chunks.heading_path"))?,
            page: self.page.and_then(|p| u32::try_from(p).ok()),
            url: self.url,
            text: self.text,
            score,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RankRow {
    chunk_id: ChunkId,
    rank: f64,
}

#[derive(sqlx::FromRow)]
struct EmbeddingRow {
    id: ChunkId,
    embedding: Vec<u8>,
    embedding_model: String,
    embedding_dim: i32,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: KnowledgeJobId,
    source_id: SourceId,
    attempts: i32,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: KnowledgeJobId,
    source_id: SourceId,
    status: String,
    attempts: i32,
    run_after: Timestamp,
    last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CitationRow {
    number: i32,
    title: String,
    url: Option<String>,
    file_name: Option<String>,
    page: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct GapRow {
    id: GapId,
    bot_id: BotId,
    conversation_id: ConversationId,
    question: String,
    score: f64,
    created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    documents: i64,
    bytes: i64,
}

/// A chunk's full-text row id: unique and random, so it needs no counter shared by
/// processes, and stable across `VACUUM` (unlike an implicit SQLite rowid).
fn new_seq() -> i64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64
}

fn heading_json(path: &[String]) -> String {
    serde_json::to_string(path).expect("strings serialise")
}

/// Words as a full-text query matching any of them (so a question's extra words do not
/// hide a passage), in the syntax of each engine; `None` if there are none. Only letters and
/// digits are kept, so nothing in a word is query syntax.
fn any_word_query(words: &[String], backend: super::Backend) -> Option<String> {
    let mut words: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    words.sort();
    words.dedup();
    words.truncate(32);
    if words.is_empty() {
        return None;
    }
    Some(match backend {
        super::Backend::Sqlite => words
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(" OR "),
        super::Backend::Postgres => words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" | "),
    })
}

impl Store {
    pub async fn create_library(&self, t: TenantId, input: &LibraryInput) -> StoreResult<Library> {
        let now = Timestamp::now();
        let row: LibraryRow = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "INSERT INTO knowledge_libraries ({LIBRARY_COLUMNS}, revision) \
                         VALUES ($1, $2, $3, $4, $5, $5, 0) RETURNING {LIBRARY_COLUMNS}"
                    ))
                    .bind(LibraryId::new())
                    .bind(&input.name)
                    .bind(input.language.as_str())
                    .bind(now)
                    .fetch_one()
                    .await?)
            })
            .await?;
        row.into_library()
    }

    pub async fn libraries(&self, t: TenantId) -> StoreResult<Vec<Library>> {
        let rows: Vec<LibraryRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {LIBRARY_COLUMNS} FROM knowledge_libraries WHERE tenant_id = $1 \
                         ORDER BY created_at, id"
                    ))
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter().map(LibraryRow::into_library).collect()
    }

    pub async fn library(&self, t: TenantId, id: LibraryId) -> StoreResult<Option<Library>> {
        let row: Option<LibraryRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {LIBRARY_COLUMNS} FROM knowledge_libraries \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(LibraryRow::into_library).transpose()
    }

    /// Deletes a library with its sources, chunks and bot links.
    pub async fn delete_library(&self, t: TenantId, id: LibraryId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM knowledge_libraries WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Sets the libraries bot `bot` answers from and how. `NotFound` if the bot or one of the
    /// libraries does not exist in this workspace (nothing is changed then).
    pub async fn set_bot_knowledge(
        &self,
        t: TenantId,
        bot: BotId,
        mode: AnswerMode,
        libraries: &[LibraryId],
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO knowledge_bot_settings (tenant_id, bot_id, answer_mode) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, bot_id) DO UPDATE SET answer_mode = excluded.answer_mode",
            )
            .bind(bot)
            .bind(mode.as_str())
            .execute()
            .await
            .map_err(not_found_on_foreign_key)?;
            tx.query("DELETE FROM knowledge_bot_libraries WHERE tenant_id = $1 AND bot_id = $2")
                .bind(bot)
                .execute()
                .await?;
            for l in libraries {
                tx.query(
                    "INSERT INTO knowledge_bot_libraries (tenant_id, bot_id, library_id) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(bot)
                .bind(*l)
                .execute()
                .await
                .map_err(not_found_on_foreign_key)?;
            }
            Ok(())
        })
        .await
    }

    /// The libraries bot `bot` answers from and its answering mode.
    pub async fn bot_knowledge(&self, t: TenantId, bot: BotId) -> StoreResult<BotKnowledge> {
        let (mode, rows): (Option<String>, Vec<LibraryRow>) = self
            .in_tenant(t, async |tx| {
                let mode: Option<String> = tx
                    .query_scalar(
                        "SELECT answer_mode FROM knowledge_bot_settings \
                         WHERE tenant_id = $1 AND bot_id = $2",
                    )
                    .bind(bot)
                    .fetch_optional()
                    .await?;
                let rows = tx
                    .query_as(
                        "SELECT l.tenant_id, l.id, l.name, l.language, l.created_at, l.updated_at \
                         FROM knowledge_bot_libraries b JOIN knowledge_libraries l \
                         ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                         WHERE b.tenant_id = $1 AND b.bot_id = $2 ORDER BY l.created_at, l.id",
                    )
                    .bind(bot)
                    .fetch_all()
                    .await?;
                Ok((mode, rows))
            })
            .await?;
        Ok(BotKnowledge {
            mode: match mode {
                Some(m) => AnswerMode::parse(&m)
                    .map_err(|_| corrupt("knowledge_bot_settings.answer_mode"))?,
                None => AnswerMode::default(),
            },
            libraries: rows
                .into_iter()
                .map(LibraryRow::into_library)
                .collect::<StoreResult<_>>()?,
        })
    }

    /// Adds a source and queues its ingestion, in one transaction; refuses (changing
    /// nothing) when the workspace would exceed its document or byte limit, and `NotFound`
    /// when the library does not exist.
    pub async fn add_source(
        &self,
        t: TenantId,
        s: &NewSource,
        limits: &KnowledgeLimits,
    ) -> StoreResult<Source> {
        let now = Timestamp::now();
        let bytes = s.content.as_ref().map_or(0, Vec::len) as i64;
        let row: SourceRow = self
            .in_tenant_write(t, async |tx| {
                let usage: UsageRow = tx
                    .query_as(
                        "SELECT count(*) AS documents, \
                         CAST(COALESCE(sum(bytes), 0) AS BIGINT) AS bytes \
                         FROM knowledge_sources WHERE tenant_id = $1",
                    )
                    .fetch_one()
                    .await?;
                check_documents(&usage, 1, bytes, limits)?;
                let token = s.token.as_ref();
                let row: SourceRow = tx
                    .query_as(&format!(
                        "INSERT INTO knowledge_sources (tenant_id, id, library_id, kind, \
                         location, options, title, status, reason, pages, chunks, bytes, \
                         content_hash, content, token_ciphertext, token_nonce, \
                         token_key_version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', NULL, 0, 0, $8, NULL, \
                         $9, $10, $11, $12, $13, $13) RETURNING {SOURCE_COLUMNS}"
                    ))
                    .bind(s.id)
                    .bind(s.library_id)
                    .bind(s.kind.as_str())
                    .bind(&s.location)
                    .bind(serde_json::to_string(&s.options).expect("options serialise"))
                    .bind(&s.title)
                    .bind(bytes)
                    .bind(s.content.as_deref())
                    .bind(token.map(|k| k.ciphertext.as_slice()))
                    .bind(token.map(|k| k.nonce.as_slice()))
                    .bind(token.map(|k| k.key_version))
                    .bind(now)
                    .fetch_one()
                    .await
                    .map_err(not_found_on_foreign_key)?;
                enqueue(tx, row.id, now).await?;
                Ok(row)
            })
            .await?;
        row.into_source()
    }

    pub async fn sources(&self, t: TenantId, library: LibraryId) -> StoreResult<Vec<Source>> {
        let rows: Vec<SourceRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM knowledge_sources \
                         WHERE tenant_id = $1 AND library_id = $2 ORDER BY created_at, id"
                    ))
                    .bind(library)
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter().map(SourceRow::into_source).collect()
    }

    pub async fn source(&self, t: TenantId, id: SourceId) -> StoreResult<Option<Source>> {
        let row: Option<SourceRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM knowledge_sources \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(SourceRow::into_source).transpose()
    }

    /// A source with its stored bytes and sealed token, for the ingestion job.
    pub async fn source_payload(
        &self,
        t: TenantId,
        id: SourceId,
    ) -> StoreResult<Option<SourcePayload>> {
        let row: Option<PayloadRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {SOURCE_COLUMNS}, content, token_ciphertext, token_nonce, \
                         token_key_version FROM knowledge_sources \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        let Some(p) = row else {
            return Ok(None);
        };
        let token = match (p.token_ciphertext, p.token_nonce, p.token_key_version) {
            (Some(ciphertext), Some(nonce), Some(key_version)) => Some(SealedSecret {
                ciphertext,
                nonce,
                key_version,
            }),
            _ => None,
        };
        Ok(Some(SourcePayload {
            source: p.source.into_source()?,
            content: p.content,
            token,
        }))
    }

    /// Deletes a source; its chunks (and their full-text entries) and jobs go in the same
    /// transaction.
    pub async fn delete_source(&self, t: TenantId, id: SourceId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_libraries SET revision = revision + 1 \
                 WHERE tenant_id = $1 AND id IN (SELECT library_id FROM knowledge_sources \
                 WHERE tenant_id = $1 AND id = $2)",
            )
            .bind(id)
            .execute()
            .await?;
            let n = tx
                .query("DELETE FROM knowledge_sources WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Queues a new ingestion of a source (re-sync, reindex) unless one is already queued or
    /// running. True if a job was queued.
    pub async fn queue_source(&self, t: TenantId, id: SourceId) -> StoreResult<bool> {
        let now = Timestamp::now();
        self.in_tenant_write(t, async |tx| {
            let exists: Option<SourceId> = tx
                .query_scalar("SELECT id FROM knowledge_sources WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .fetch_optional()
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let pending: Option<KnowledgeJobId> = tx
                .query_scalar(
                    "SELECT id FROM knowledge_jobs WHERE tenant_id = $1 AND source_id = $2 \
                     AND status IN ('queued', 'running') LIMIT 1",
                )
                .bind(id)
                .fetch_optional()
                .await?;
            if pending.is_some() {
                return Ok(false);
            }
            enqueue(tx, id, now).await?;
            tx.query(
                "UPDATE knowledge_sources SET status = 'queued', reason = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(now)
            .execute()
            .await?;
            Ok(true)
        })
        .await
    }

    /// GitHub sources last synced before `before` and not queued or running (the daily
    /// re-sync).
    pub async fn github_sources_synced_before(
        &self,
        t: TenantId,
        before: Timestamp,
    ) -> StoreResult<Vec<SourceId>> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_scalar(
                    "SELECT id FROM knowledge_sources WHERE tenant_id = $1 AND kind = 'github' \
                     AND status IN ('ready', 'failed') AND updated_at < $2 ORDER BY id",
                )
                .bind(before)
                .fetch_all()
                .await?)
        })
        .await
    }

    /// Every source of the workspace (for `parlo knowledge reindex`).
    pub async fn all_source_ids(&self, t: TenantId) -> StoreResult<Vec<SourceId>> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_scalar(
                    "SELECT id FROM knowledge_sources WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .fetch_all()
                .await?)
        })
        .await
    }

    /// Claims the workspace's next due job: a queued job whose time has come, or a running
    /// one whose lease ran out (its worker died). The claim leases it until `lease_until`
    /// and counts the attempt. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several
    /// processes claim at once without taking the same job or waiting for each other.
    pub async fn claim_knowledge_job(
        &self,
        t: TenantId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<ClaimedJob>> {
        let lock = match &self.db {
            Db::Sqlite(_) => "",
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let row: Option<ClaimRow> = self
            .in_tenant_write(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "UPDATE knowledge_jobs SET status = 'running', attempts = attempts + 1, \
                         lease_until = $3, updated_at = $2 \
                         WHERE tenant_id = $1 AND id = (SELECT id FROM knowledge_jobs \
                         WHERE tenant_id = $1 AND ((status = 'queued' AND run_after <= $2) \
                         OR (status = 'running' AND lease_until < $2)) \
                         ORDER BY run_after, id LIMIT 1{lock}) \
                         RETURNING id, source_id, attempts"
                    ))
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        Ok(row.map(|r| ClaimedJob {
            tenant_id: t,
            id: r.id,
            source_id: r.source_id,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
        }))
    }

    /// Sets a source's status and progress while its job runs.
    pub async fn set_source_progress(
        &self,
        t: TenantId,
        id: SourceId,
        status: SourceStatus,
        pages: i64,
        chunks: i64,
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_sources SET status = $3, reason = NULL, pages = $4, \
                 chunks = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(pages)
            .bind(chunks)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The chunks of a source already embedded with `model`, by content hash, so unchanged
    /// chunks keep their vectors instead of being sent upstream again.
    pub async fn source_embeddings(
        &self,
        t: TenantId,
        id: SourceId,
    ) -> StoreResult<Vec<(String, Embedding)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            hash: String,
            embedding: Vec<u8>,
            embedding_model: String,
            embedding_dim: i32,
        }
        let rows: Vec<Row> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT hash, embedding, embedding_model, embedding_dim \
                         FROM knowledge_chunks WHERE tenant_id = $1 AND source_id = $2 \
                         AND embedding IS NOT NULL",
                    )
                    .bind(id)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.hash,
                    Embedding {
                        model: r.embedding_model,
                        dim: u32::try_from(r.embedding_dim).unwrap_or(0),
                        bytes: r.embedding,
                    },
                )
            })
            .collect())
    }

    /// Replaces a source's chunks with `chunks` and marks it ready, in one transaction: a
    /// reader sees the old chunks or the new ones, never a mix, and nothing half-indexed is
    /// left if this fails. Refuses (changing nothing) when the workspace would exceed its
    /// chunk or byte limit. `bytes` is the size of what was fetched or uploaded.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_chunks(
        &self,
        t: TenantId,
        source: SourceId,
        library: LibraryId,
        content_hash: &[u8],
        bytes: i64,
        pages: i64,
        chunks: &[NewChunk],
        limits: &KnowledgeLimits,
    ) -> StoreResult<()> {
        let now = Timestamp::now();
        self.in_tenant_write(t, async |tx| {
            let others: i64 = tx
                .query_scalar(
                    "SELECT count(*) FROM knowledge_chunks WHERE tenant_id = $1 AND source_id <> $2",
                )
                .bind(source)
                .fetch_optional()
                .await?
                .unwrap_or(0);
            if (others + chunks.len() as i64) as u64 > limits.max_chunks {
                return Err(StoreError::Limit(format!(
                    "This workspace has reached its limit of {} indexed passages; this \
                     source would need {} more.",
                    limits.max_chunks,
                    chunks.len()
                )));
            }
            let usage: UsageRow = tx
                .query_as(
                    "SELECT count(*) AS documents, \
                     CAST(COALESCE(sum(bytes), 0) AS BIGINT) AS bytes \
                     FROM knowledge_sources WHERE tenant_id = $1 AND id <> $2",
                )
                .bind(source)
                .fetch_one()
                .await?;
            check_documents(&usage, 0, bytes, limits)?;
            tx.query("DELETE FROM knowledge_chunks WHERE tenant_id = $1 AND source_id = $2")
                .bind(source)
                .execute()
                .await?;
            for c in chunks {
                let e = c.embedding.as_ref();
                tx.query(
                    "INSERT INTO knowledge_chunks (tenant_id, id, seq, source_id, library_id, \
                     ordinal, heading_path, page, url, text, hash, embedding, embedding_model, \
                     embedding_dim, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(ChunkId::new())
                .bind(new_seq())
                .bind(source)
                .bind(library)
                .bind(c.ordinal as i32)
                .bind(heading_json(&c.heading_path))
                .bind(c.page.map(|p| p as i32))
                .bind(c.url.as_deref())
                .bind(&c.text)
                .bind(&c.hash)
                .bind(e.map(|e| e.bytes.as_slice()))
                .bind(e.map(|e| e.model.as_str()))
                .bind(e.map(|e| e.dim as i32))
                .bind(now)
                .execute()
                .await?;
            }
            let n = tx
                .query(
                    "UPDATE knowledge_sources SET status = 'ready', reason = NULL, pages = $3, \
                     chunks = $4, bytes = $5, content_hash = $6, updated_at = $7 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(source)
                .bind(pages)
                .bind(chunks.len() as i64)
                .bind(bytes)
                .bind(content_hash)
                .bind(now)
                .execute()
                .await?;
            if n == 0 {
                // Deleted while the job ran: keep nothing.
                return Err(StoreError::NotFound);
            }
            tx.query(
                "UPDATE knowledge_libraries SET revision = revision + 1 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(library)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks a source ready without touching its chunks (its content did not change).
    pub async fn source_unchanged(&self, t: TenantId, id: SourceId) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_sources SET status = 'ready', reason = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Ends a job that succeeded.
    pub async fn finish_knowledge_job(&self, t: TenantId, job: KnowledgeJobId) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_jobs SET status = 'done', lease_until = NULL, \
                 last_error = NULL, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Ends an attempt that failed: with `retry_at`, the job is queued again for then (the
    /// source shows the reason while it waits); without, the job and its source fail.
    pub async fn fail_knowledge_job(
        &self,
        t: TenantId,
        job: &ClaimedJob,
        reason: &str,
        retry_at: Option<Timestamp>,
    ) -> StoreResult<()> {
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_jobs SET status = $3, run_after = $4, lease_until = NULL, \
                 last_error = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.id)
            .bind(if retry_at.is_some() {
                "queued"
            } else {
                "failed"
            })
            .bind(retry_at.unwrap_or(now))
            .bind(reason)
            .bind(now)
            .execute()
            .await?;
            tx.query(
                "UPDATE knowledge_sources SET status = $3, reason = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.source_id)
            .bind(if retry_at.is_some() {
                "queued"
            } else {
                "failed"
            })
            .bind(reason)
            .bind(now)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The jobs of a source, newest first.
    pub async fn knowledge_jobs(
        &self,
        t: TenantId,
        source: SourceId,
    ) -> StoreResult<Vec<KnowledgeJob>> {
        let rows: Vec<JobRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id, source_id, status, attempts, run_after, last_error \
                         FROM knowledge_jobs WHERE tenant_id = $1 AND source_id = $2 \
                         ORDER BY created_at DESC, id DESC",
                    )
                    .bind(source)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| KnowledgeJob {
                id: r.id,
                source_id: r.source_id,
                status: r.status,
                attempts: u32::try_from(r.attempts).unwrap_or(0),
                run_after: r.run_after,
                last_error: r.last_error,
            })
            .collect())
    }

    /// Full-text search over bot `bot`'s libraries: the best `k` chunks for any of `words`,
    /// best first, with the engine's score (higher is better). Each engine stems the words
    /// itself (SQLite: Porter; PostgreSQL: the library's language).
    pub async fn search_fulltext(
        &self,
        t: TenantId,
        bot: BotId,
        words: &[String],
        k: usize,
    ) -> StoreResult<Vec<(ChunkId, f32)>> {
        let backend = self.backend();
        let Some(query) = any_word_query(words, backend) else {
            return Ok(Vec::new());
        };
        let k = k as i64;
        let rows: Vec<RankRow> = self
            .in_tenant(t, async |tx| match backend {
                super::Backend::Sqlite => Ok(tx
                    .query_as(
                        "SELECT c.id AS chunk_id, -bm25(knowledge_chunks_fts) AS rank \
                         FROM knowledge_chunks_fts \
                         JOIN knowledge_chunks c ON c.seq = knowledge_chunks_fts.rowid \
                         WHERE knowledge_chunks_fts MATCH $2 AND c.tenant_id = $1 \
                         AND c.library_id IN (SELECT library_id FROM knowledge_bot_libraries \
                         WHERE tenant_id = $1 AND bot_id = $3) \
                         ORDER BY bm25(knowledge_chunks_fts) LIMIT $4",
                    )
                    .bind(&query)
                    .bind(bot)
                    .bind(k)
                    .fetch_all()
                    .await?),
                super::Backend::Postgres => {
                    // One query per language of the bot's libraries, so the tsquery is a
                    // constant and the GIN index serves it.
                    let languages: Vec<String> = tx
                        .query_scalar(
                            "SELECT DISTINCT l.language FROM knowledge_bot_libraries b \
                             JOIN knowledge_libraries l \
                             ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                             WHERE b.tenant_id = $1 AND b.bot_id = $2",
                        )
                        .bind(bot)
                        .fetch_all()
                        .await?;
                    let mut all = Vec::new();
                    for language in languages {
                        let rows: Vec<RankRow> = tx
                            .query_as(
                                "SELECT c.id AS chunk_id, \
                                 ts_rank_cd(c.tsv, q)::float8 AS rank \
                                 FROM knowledge_chunks c, to_tsquery($3::regconfig, $2) q \
                                 WHERE c.tenant_id = $1 AND c.tsv @@ q \
                                 AND c.library_id IN (SELECT b.library_id \
                                 FROM knowledge_bot_libraries b JOIN knowledge_libraries l \
                                 ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                                 WHERE b.tenant_id = $1 AND b.bot_id = $4 AND l.language = $3) \
                                 ORDER BY rank DESC, c.id LIMIT $5",
                            )
                            .bind(&query)
                            .bind(language)
                            .bind(bot)
                            .bind(k)
                            .fetch_all()
                            .await?;
                        all.extend(rows);
                    }
                    all.sort_by(|a, b| b.rank.total_cmp(&a.rank));
                    all.truncate(k as usize);
                    Ok(all)
                }
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.chunk_id, r.rank as f32))
            .collect())
    }

    /// The libraries of bot `bot` with their revisions: changes whenever a chunk of one of
    /// them changes or the bot's set of libraries does.
    pub async fn bot_knowledge_revision(
        &self,
        t: TenantId,
        bot: BotId,
    ) -> StoreResult<Vec<(LibraryId, i64)>> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_as(
                    "SELECT l.id, l.revision FROM knowledge_bot_libraries b \
                     JOIN knowledge_libraries l ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                     WHERE b.tenant_id = $1 AND b.bot_id = $2 ORDER BY l.id",
                )
                .bind(bot)
                .fetch_all()
                .await?)
        })
        .await
    }

    /// The embedded chunks of bot `bot`'s libraries (for brute-force vector search).
    pub async fn bot_embeddings(
        &self,
        t: TenantId,
        bot: BotId,
    ) -> StoreResult<Vec<(ChunkId, Embedding)>> {
        let rows: Vec<EmbeddingRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id, embedding, embedding_model, embedding_dim \
                         FROM knowledge_chunks WHERE tenant_id = $1 AND embedding IS NOT NULL \
                         AND library_id IN (SELECT library_id FROM knowledge_bot_libraries \
                         WHERE tenant_id = $1 AND bot_id = $2)",
                    )
                    .bind(bot)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    Embedding {
                        model: r.embedding_model,
                        dim: u32::try_from(r.embedding_dim).unwrap_or(0),
                        bytes: r.embedding,
                    },
                )
            })
            .collect())
    }

    /// The chunks `ids` (with their sources), in the order and with the scores given; ids
    /// of other workspaces or deleted chunks are skipped.
    pub async fn chunk_hits(
        &self,
        t: TenantId,
        ids: &[(ChunkId, f32)],
    ) -> StoreResult<Vec<ChunkHit>> {
        let rows: Vec<Option<HitRow>> = self
            .in_tenant(t, async |tx| {
                let mut out = Vec::with_capacity(ids.len());
                for (id, _) in ids {
                    out.push(
                        tx.query_as(&format!(
                            "SELECT {HIT_COLUMNS} FROM knowledge_chunks c \
                             JOIN knowledge_sources s \
                             ON s.tenant_id = c.tenant_id AND s.id = c.source_id \
                             WHERE c.tenant_id = $1 AND c.id = $2"
                        ))
                        .bind(*id)
                        .fetch_optional()
                        .await?,
                    );
                }
                Ok(out)
            })
            .await?;
        rows.into_iter()
            .zip(ids)
            .filter_map(|(row, (_, score))| row.map(|r| r.into_hit(*score)))
            .collect()
    }

    /// How many chunks the workspace holds (all sources).
    pub async fn knowledge_chunk_count(&self, t: TenantId) -> StoreResult<i64> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_scalar("SELECT count(*) FROM knowledge_chunks WHERE tenant_id = $1")
                .fetch_optional()
                .await?
                .unwrap_or(0))
        })
        .await
    }

    /// Stores the numbered sources of an answer.
    pub async fn save_citations(
        &self,
        t: TenantId,
        message: MessageId,
        citations: &[Citation],
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            for c in citations {
                tx.query(
                    "INSERT INTO message_citations \
                     (tenant_id, message_id, number, title, url, file_name, page) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(message)
                .bind(c.number as i32)
                .bind(&c.title)
                .bind(c.url.as_deref())
                .bind(c.file_name.as_deref())
                .bind(c.page.map(|p| p as i32))
                .execute()
                .await?;
            }
            Ok(())
        })
        .await
    }

    pub async fn citations(&self, t: TenantId, message: MessageId) -> StoreResult<Vec<Citation>> {
        let rows: Vec<CitationRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT number, title, url, file_name, page FROM message_citations \
                         WHERE tenant_id = $1 AND message_id = $2 ORDER BY number",
                    )
                    .bind(message)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Citation {
                number: u32::try_from(r.number).unwrap_or(0),
                title: r.title,
                url: r.url,
                file_name: r.file_name,
                page: r.page.and_then(|p| u32::try_from(p).ok()),
            })
            .collect())
    }

    /// Records a question the libraries could not answer.
    pub async fn record_gap(
        &self,
        t: TenantId,
        bot: BotId,
        conversation: ConversationId,
        question: &str,
        score: f64,
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO knowledge_gaps \
                 (tenant_id, id, bot_id, conversation_id, question, score, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(GapId::new())
            .bind(bot)
            .bind(conversation)
            .bind(question)
            .bind(score)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The knowledge gaps of bot `bot`, newest first.
    pub async fn knowledge_gaps(&self, t: TenantId, bot: BotId) -> StoreResult<Vec<KnowledgeGap>> {
        let rows: Vec<GapRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id, bot_id, conversation_id, question, score, created_at \
                         FROM knowledge_gaps WHERE tenant_id = $1 AND bot_id = $2 \
                         ORDER BY created_at DESC, id DESC",
                    )
                    .bind(bot)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| KnowledgeGap {
                id: r.id,
                bot_id: r.bot_id,
                conversation_id: r.conversation_id,
                question: r.question,
                score: r.score,
                created_at: r.created_at,
            })
            .collect())
    }
}

async fn enqueue(tx: &mut TenantTx, source: SourceId, now: Timestamp) -> StoreResult<()> {
    tx.query(
        "INSERT INTO knowledge_jobs (tenant_id, id, source_id, status, attempts, run_after, \
         lease_until, last_error, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 0, $4, NULL, NULL, $4, $4)",
    )
    .bind(KnowledgeJobId::new())
    .bind(source)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

fn check_documents(
    usage: &UsageRow,
    adding: i64,
    bytes: i64,
    limits: &KnowledgeLimits,
) -> StoreResult<()> {
    if (usage.documents + adding) as u64 > limits.max_documents {
        return Err(StoreError::Limit(format!(
            "This workspace has reached its limit of {} documents; delete a source first.",
            limits.max_documents
        )));
    }
    if (usage.bytes + bytes) as u64 > limits.max_bytes {
        return Err(StoreError::Limit(format!(
            "This would exceed the workspace's limit of {} MB of documents.",
            limits.max_bytes.div_ceil(1024 * 1024)
        )));
    }
    Ok(())
}

/// A foreign key pointing at nothing (another tenant's or a deleted bot or library) is
/// `NotFound`: to the caller it does not exist.
fn not_found_on_foreign_key(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(e),
    }
}
