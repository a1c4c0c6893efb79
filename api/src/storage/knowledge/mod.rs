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

mod answers;
mod chunks;
mod jobs;
mod libraries;
mod sources;

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
