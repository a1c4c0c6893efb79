//! Knowledge libraries: a workspace's libraries, the bots that answer from them, sources and
//! their ingestion status, chunks, retrieval hits, citations and knowledge gaps; plus the
//! per-workspace limits. Parsed once from input, so storage only ever sees valid values.

use serde::{Deserialize, Serialize};

use super::account::SealedSecret;
use super::ids::{
    BotId, ChunkId, ConversationId, GapId, KnowledgeJobId, LibraryId, SourceId, TenantId, Timestamp,
};
use super::parse::{Invalid, invalid, parse_name};

/// Generates `as_str`/`parse` for an enum stored as a fixed word.
macro_rules! words {
    ($name:ident { $($variant:ident = $word:literal),+ $(,)? }, $what:literal) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            pub fn parse(s: &str) -> Result<Self, Invalid> {
                match s.trim() {
                    $($word => Ok($name::$variant),)+
                    other => invalid(format!(
                        concat!("{:?} is not ", $what, " (one of: {})."),
                        other,
                        [$($word),+].join(", ")
                    )),
                }
            }
        }
    };
}

/// The language a library's full text is indexed in (a PostgreSQL text search
/// configuration; SQLite's FTS5 tokenizer is language-neutral).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryLanguage {
    Simple,
    English,
    German,
    French,
    Spanish,
    Italian,
    Dutch,
    Portuguese,
}

words!(LibraryLanguage {
    Simple = "simple",
    English = "english",
    German = "german",
    French = "french",
    Spanish = "spanish",
    Italian = "italian",
    Dutch = "dutch",
    Portuguese = "portuguese",
}, "a library language");

/// A library as typed into a form or on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInput {
    pub name: String,
    pub language: LibraryLanguage,
}

impl LibraryInput {
    pub fn parse(name: &str, language: &str) -> Result<Self, Invalid> {
        Ok(Self {
            name: parse_name(name)?,
            language: if language.trim().is_empty() {
                LibraryLanguage::English
            } else {
                LibraryLanguage::parse(language)?
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Library {
    pub tenant_id: TenantId,
    pub id: LibraryId,
    pub name: String,
    pub language: LibraryLanguage,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How a bot with libraries answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// Only from the libraries; otherwise the bot says politely that it does not know.
    OnlyLibraries,
    /// The libraries first, general knowledge allowed.
    #[default]
    LibrariesFirst,
}

words!(AnswerMode {
    OnlyLibraries = "only_libraries",
    LibrariesFirst = "libraries_first",
}, "an answering mode");

/// The libraries a bot answers from, and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BotKnowledge {
    pub mode: AnswerMode,
    pub libraries: Vec<Library>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Url,
    Sitemap,
    Github,
}

words!(SourceKind {
    File = "file",
    Url = "url",
    Sitemap = "sitemap",
    Github = "github",
}, "a source kind");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    Queued,
    Fetching,
    Parsing,
    Embedding,
    Ready,
    Failed,
}

words!(SourceStatus {
    Queued = "queued",
    Fetching = "fetching",
    Parsing = "parsing",
    Embedding = "embedding",
    Ready = "ready",
    Failed = "failed",
}, "a source status");

/// Kind-specific settings of a source (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceOptions {
    /// GitHub: the folder whose Markdown is read (empty: the whole repository).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// GitHub: the branch, tag or commit (empty: the default branch).
    #[serde(default, skip_serializing_if = "String::is_empty", rename = "ref")]
    pub git_ref: String,
}

/// A source to add to a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    /// Chosen by the caller, so a token can be sealed for this source before it is stored.
    pub id: SourceId,
    pub library_id: LibraryId,
    pub kind: SourceKind,
    /// A file's name, a URL, or `owner/repo`.
    pub location: String,
    pub title: String,
    pub options: SourceOptions,
    /// An uploaded file's bytes.
    pub content: Option<Vec<u8>>,
    /// A GitHub token, sealed for this tenant and source.
    pub token: Option<SealedSecret>,
}

/// A source as listed (without its bytes or token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub tenant_id: TenantId,
    pub id: SourceId,
    pub library_id: LibraryId,
    pub kind: SourceKind,
    pub location: String,
    pub title: String,
    pub options: SourceOptions,
    pub status: SourceStatus,
    /// Why it failed, readable by the customer.
    pub reason: Option<String>,
    pub pages: i64,
    pub chunks: i64,
    pub bytes: i64,
    #[serde(skip)]
    pub content_hash: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What the ingestion job needs of a source besides its listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePayload {
    pub source: Source,
    pub content: Option<Vec<u8>>,
    pub token: Option<SealedSecret>,
}

/// An embedding at rest: the encoded vector with its model and dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedding {
    pub model: String,
    pub dim: u32,
    pub bytes: Vec<u8>,
}

/// A chunk to store for a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChunk {
    pub ordinal: u32,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    /// The page it came from, when the source has several (a sitemap's page).
    pub url: Option<String>,
    pub text: String,
    /// SHA-256 (hex) of what is embedded.
    pub hash: String,
    pub embedding: Option<Embedding>,
}

/// A stored chunk with what a citation needs of its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkHit {
    pub chunk_id: ChunkId,
    pub source_id: SourceId,
    pub library_id: LibraryId,
    pub source_kind: SourceKind,
    pub source_title: String,
    pub location: String,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    /// The page it came from, when the source has several (a sitemap's page).
    pub url: Option<String>,
    pub text: String,
    /// The retrieval score (fused rank score, full-text rank or cosine; higher is better).
    pub score: f32,
}

/// Per-workspace limits on knowledge (from the operator's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnowledgeLimits {
    pub max_documents: u64,
    pub max_bytes: u64,
    pub max_chunks: u64,
}

impl Default for KnowledgeLimits {
    fn default() -> Self {
        Self {
            max_documents: 500,
            max_bytes: 200 * 1024 * 1024,
            max_chunks: 100_000,
        }
    }
}

/// An ingestion job a worker has claimed (leased) from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub tenant_id: TenantId,
    pub id: KnowledgeJobId,
    pub source_id: SourceId,
    /// Including this one.
    pub attempts: u32,
}

/// A job's state, for progress displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeJob {
    pub id: KnowledgeJobId,
    pub source_id: SourceId,
    pub status: String,
    pub attempts: u32,
    pub run_after: Timestamp,
    pub last_error: Option<String>,
}

/// One numbered source of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub number: u32,
    pub title: String,
    /// http(s) URL of a fetched page or repository file.
    pub url: Option<String>,
    /// An uploaded file's name.
    pub file_name: Option<String>,
    pub page: Option<u32>,
}

/// A question the libraries could not answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnowledgeGap {
    pub id: GapId,
    pub bot_id: BotId,
    pub conversation_id: ConversationId,
    pub question: String,
    pub score: f64,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_refuse_others() {
        for l in LibraryLanguage::ALL {
            assert_eq!(LibraryLanguage::parse(l.as_str()), Ok(*l));
        }
        for s in SourceStatus::ALL {
            assert_eq!(SourceStatus::parse(s.as_str()), Ok(*s));
        }
        let e = SourceKind::parse("ftp").unwrap_err();
        assert!(e.0.contains("file, url, sitemap, github"), "{e}");
    }

    #[test]
    fn a_library_needs_a_name_and_defaults_to_english() {
        assert!(LibraryInput::parse("  ", "").is_err());
        let l = LibraryInput::parse("Docs", "").unwrap();
        assert_eq!(l.language, LibraryLanguage::English);
        assert!(LibraryInput::parse("Docs", "klingon").is_err());
    }
}
