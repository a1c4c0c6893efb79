//! Knowledge ingestion and retrieval, the storage-independent core: fetching sources safely,
//! extracting text by content type, chunking along document structure, parsing sitemaps,
//! embedding and ranking. Nothing here touches the database, the HTTP server or Mistral:
//! callers (the ingestion job, the CLI, the chat turn) bring those and call in.

pub mod chunk;
pub mod embed;
pub mod extract;
pub mod fetch;
pub mod rank;
pub mod sitemap;
pub mod vector;

#[cfg(test)]
mod eval;
