//! Knowledge ingestion and retrieval, the storage-independent core: fetching sources safely,
//! extracting text by content type, chunking along document structure, parsing sitemaps,
//! embedding and ranking. Nothing here touches the database, the HTTP server or Mistral,
//! except the two files that put the pieces to work: `ingest.rs` (the ingestion job on the
//! database queue) and `retrieve.rs` (hybrid retrieval for a bot and the grounding prompt),
//! which the job runner, the CLI and the chat turn call.

pub mod chunk;
pub mod embed;
pub mod extract;
pub mod fetch;
pub mod github;
pub mod ingest;
pub mod rank;
pub mod retrieve;
pub mod sitemap;
pub mod vector;

#[cfg(test)]
mod eval;
