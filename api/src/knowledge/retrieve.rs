//! Retrieval for a bot, behind one function: full-text search in the database fused (RRF,
//! `rank.rs`) with vector similarity over the bot's embedded chunks (`VectorSearch`, brute
//! force today; an engine such as pgvector can stand behind the same trait). Without a key,
//! or when the question cannot be embedded, full text alone answers. Also builds what the
//! chat turn sends upstream: numbered sources and the instruction of the answering mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use secrecy::SecretString;

use super::embed::terms;
use super::rank::{BruteForceIndex, RRF_K, VectorSearch, reciprocal_rank_fusion};
use super::vector::StoredVector;
use crate::mistral::{ChatMessage, ChatRequest, EMBED_MODEL, MistralClient, Role};
use crate::model::{
    AnswerMode, BotId, ChunkHit, ChunkId, Citation, ConversationId, LibraryId, SourceKind, TenantId,
};
use crate::storage::{Store, StoreResult};

/// Candidates each engine contributes before fusion.
const CANDIDATES: usize = 50;

/// Below this cosine similarity the best passage is not about the question.
pub const MIN_COSINE: f32 = 0.55;

/// What retrieval found for a question.
#[derive(Debug, Clone, Default)]
pub struct Retrieved {
    /// Best first, at most `k`.
    pub hits: Vec<ChunkHit>,
    /// Whether vectors took part.
    pub used_vectors: bool,
    /// The best cosine similarity (vectors) or full-text score (full text alone).
    pub best_score: f32,
    /// The libraries hold nothing that answers the question (no passage shares a word with
    /// it and none is similar enough): a knowledge gap.
    pub gap: bool,
}

/// Vectors kept in memory across bots before the cache starts over (int8 at 1,024
/// dimensions: about 1 KiB each).
const CACHE_VECTORS: usize = 500_000;

/// The vector indexes of bots, per process, each with the revisions of the libraries it was
/// built from: a question costs one small read of those revisions instead of every vector.
/// Keyed by tenant and bot, filled only from that tenant's transaction.
type IndexCache =
    HashMap<(TenantId, BotId), (Vec<(LibraryId, i64)>, Arc<BruteForceIndex<ChunkId>>)>;

fn cache() -> &'static Mutex<IndexCache> {
    static CACHE: OnceLock<Mutex<IndexCache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Bot `bot`'s `mistral-embed` vectors as a brute-force index (`None`: none embedded), from
/// the cache while its libraries' revisions are unchanged.
async fn vector_index(
    store: &Store,
    t: TenantId,
    bot: BotId,
) -> StoreResult<Option<Arc<BruteForceIndex<ChunkId>>>> {
    let revision = store.bot_knowledge_revision(t, bot).await?;
    if let Some((seen, index)) = cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(t, bot))
        && *seen == revision
    {
        return Ok(Some(index.clone()));
    }
    let stored = store.bot_embeddings(t, bot).await?;
    let Some((_, first)) = stored.iter().find(|(_, e)| e.model == EMBED_MODEL) else {
        cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(t, bot));
        return Ok(None);
    };
    let mut index = BruteForceIndex::new(EMBED_MODEL, first.dim as usize);
    for (id, e) in stored {
        if let Ok(v) = StoredVector::from_parts(e.model, e.dim as usize, e.bytes) {
            // Vectors of another model or dimension are skipped, never compared.
            let _ = index.push(id, &v);
        }
    }
    let index = Arc::new(index);
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    let held: usize = cache.values().map(|(_, i)| i.len()).sum();
    if held + index.len() > CACHE_VECTORS {
        cache.clear();
    }
    // Built from data at least as new as `revision`: at worst the next question reloads.
    cache.insert((t, bot), (revision, index.clone()));
    Ok(Some(index))
}

/// The best `k` chunks of bot `bot`'s libraries for `question`.
pub async fn retrieve(
    store: &Store,
    mistral: &MistralClient,
    key: Option<&SecretString>,
    t: TenantId,
    bot: BotId,
    question: &str,
    k: usize,
) -> StoreResult<Retrieved> {
    let fulltext = store
        .search_fulltext(t, bot, &terms(question), CANDIDATES)
        .await?;
    let mut vector: Vec<(ChunkId, f32)> = Vec::new();
    let mut used_vectors = false;
    if let Some(key) = key
        && let Some(index) = vector_index(store, t, bot).await?
    {
        match mistral.embed(key, &[question.to_owned()]).await {
            Ok(mut q) => {
                if let Some(q) = q.pop()
                    && let Ok(found) = index.search(&q, CANDIDATES)
                {
                    used_vectors = true;
                    vector = found.into_iter().map(|h| (h.id, h.score)).collect();
                }
            }
            Err(e) => tracing::warn!(
                code = e.code(),
                "embedding the question failed; answering from full text alone"
            ),
        }
    }
    let best_vector = vector.first().map_or(0.0, |h| h.1);
    let best_fulltext = fulltext.first().map_or(0.0, |h| h.1);
    let relevant: Vec<ChunkId> = vector
        .iter()
        .filter(|(_, s)| *s >= MIN_COSINE)
        .map(|h| h.0)
        .collect();
    let text_ids: Vec<ChunkId> = fulltext.iter().map(|h| h.0).collect();
    let fused = reciprocal_rank_fusion(&[text_ids.as_slice(), relevant.as_slice()], RRF_K);
    let top: Vec<(ChunkId, f32)> = fused.into_iter().take(k).map(|h| (h.id, h.score)).collect();
    let hits = store.chunk_hits(t, &top).await?;
    Ok(Retrieved {
        gap: hits.is_empty(),
        hits,
        used_vectors,
        best_score: if used_vectors {
            best_vector
        } else {
            best_fulltext
        },
    })
}

/// The citation a hit is shown as: a page's URL, or a file's name and page.
pub fn citation(number: u32, hit: &ChunkHit) -> Citation {
    let web = hit.url.as_deref().unwrap_or(&hit.location);
    let is_web = hit.source_kind != SourceKind::File
        && (web.starts_with("https://") || web.starts_with("http://"));
    Citation {
        number,
        title: match (&hit.url, hit.source_title.is_empty()) {
            (Some(page), _) => page.clone(),
            (None, true) => hit.location.clone(),
            (None, false) => hit.source_title.clone(),
        },
        url: is_web.then(|| web.to_owned()),
        file_name: (hit.source_kind == SourceKind::File).then(|| hit.location.clone()),
        page: hit.page,
    }
}

/// Numbers the hits' sources (one number per source and page, in order of first use) and
/// returns the citations and, per hit, its number.
pub fn number_sources(hits: &[ChunkHit]) -> (Vec<Citation>, Vec<u32>) {
    let mut citations: Vec<Citation> = Vec::new();
    let mut keys: Vec<(crate::model::SourceId, Option<&str>, Option<u32>)> = Vec::new();
    let mut numbers = Vec::with_capacity(hits.len());
    for hit in hits {
        let key = (hit.source_id, hit.url.as_deref(), hit.page);
        let n = match keys.iter().position(|k| *k == key) {
            Some(i) => i as u32 + 1,
            None => {
                keys.push(key);
                let n = keys.len() as u32;
                citations.push(citation(n, hit));
                n
            }
        };
        numbers.push(n);
    }
    (citations, numbers)
}

/// The system message that carries the numbered sources and the answering mode's rule.
pub fn grounding_prompt(mode: AnswerMode, hits: &[ChunkHit], numbers: &[u32]) -> String {
    let mut out = String::from(
        "Answer using the numbered sources below, which come from the website owner's own \
         documents. Cite the sources you use with their numbers in square brackets, e.g. [1].\n",
    );
    out.push_str(match mode {
        AnswerMode::OnlyLibraries => {
            "Answer ONLY from these sources. If they do not contain the answer, say politely \
             that you do not have that information, and do not answer from general knowledge.\n"
        }
        AnswerMode::LibrariesFirst => {
            "Prefer these sources. If they do not cover the question, you may answer from \
             general knowledge, and say that the answer is not from the provided documents.\n"
        }
    });
    if hits.is_empty() {
        out.push_str("\nNo source matched this question.\n");
    }
    for (hit, n) in hits.iter().zip(numbers) {
        out.push_str(&format!("\n[{n}] "));
        if !hit.heading_path.is_empty() {
            out.push_str(&hit.heading_path.join(" > "));
        } else {
            out.push_str(&hit.source_title);
        }
        if let Some(p) = hit.page {
            out.push_str(&format!(" (page {p})"));
        }
        out.push('\n');
        out.push_str(&hit.text);
        out.push('\n');
    }
    out
}

/// How many passages a chat turn puts in the prompt.
pub const TURN_PASSAGES: usize = 6;

/// Grounds a chat turn of bot `bot` in its libraries: retrieves for the latest user
/// message, adds the numbered sources and the answering mode's rule as a system message
/// after the bot's own, and records a knowledge gap when nothing answers the question.
/// Returns the citations to send and store (empty when the bot has no libraries). Failures
/// are logged and leave the request as it was: the turn is answered without sources.
pub async fn ground_turn(
    store: &Store,
    mistral: &MistralClient,
    key: &SecretString,
    t: TenantId,
    bot: BotId,
    conversation: ConversationId,
    request: &mut ChatRequest,
) -> Vec<Citation> {
    let knowledge = match store.bot_knowledge(t, bot).await {
        Ok(k) if !k.libraries.is_empty() => k,
        Ok(_) => return Vec::new(),
        Err(e) => {
            tracing::error!(error = %e, "reading the bot's libraries failed");
            return Vec::new();
        }
    };
    let Some(question) = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
    else {
        return Vec::new();
    };
    let found = match retrieve(store, mistral, Some(key), t, bot, &question, TURN_PASSAGES).await {
        Ok(r) => r,
        Err(e) => {
            // Not a gap: the libraries were not asked.
            tracing::error!(error = %e, "knowledge retrieval failed");
            Retrieved::default()
        }
    };
    if found.gap
        && let Err(e) = store
            .record_gap(t, bot, conversation, &question, f64::from(found.best_score))
            .await
    {
        tracing::error!(error = %e, "recording a knowledge gap failed");
    }
    let (citations, numbers) = number_sources(&found.hits);
    let at = request
        .messages
        .iter()
        .take_while(|m| m.role == Role::System)
        .count();
    request.messages.insert(
        at,
        ChatMessage {
            role: Role::System,
            content: grounding_prompt(knowledge.mode, &found.hits, &numbers),
        },
    );
    citations
}
