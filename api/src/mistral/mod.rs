//! The Mistral client: streaming chat completions, OCR and key checks against the one
//! upstream the operator configured (`mistral_base_url`, the EU endpoint by default).
//!
//! It owns the wire format (request bodies, the SSE chunk stream, error bodies) and turns
//! every way an upstream call can fail into an [`UpstreamError`] whose message can be shown
//! to a person.
//!
//! It must never:
//! - log, format or return an API key — the key exists only inside an `Authorization`
//!   header value marked sensitive, and no error carries request headers or upstream text
//!   beyond Mistral's own short error message;
//! - connect anywhere but the operator-configured base URL — every URL is derived from it
//!   when the client is built, nothing a tenant or end user sends becomes part of a URL,
//!   redirects are never followed, and attachments travel inline as `data:` URLs so Mistral
//!   fetches nothing on anyone's behalf either;
//! - keep an upstream request alive that nobody reads: dropping a [`ChatStream`] drops the
//!   connection, which is how an end user leaving cancels the completion.
//!
//! | file | holds |
//! |---|---|
//! | `client.rs` | [`MistralClient`]: endpoints, timeouts, chat requests, the key check |
//! | `stream.rs` | [`ChatStream`]: Mistral's chunks decoded into [`ChatEvent`]s |
//! | `sse.rs` | the incremental Server-Sent Events decoder under the stream |
//! | `ocr.rs` | reading an attachment with the OCR model |
//! | `embeddings.rs` | embedding knowledge chunks and questions with `mistral-embed`, batched |
//! | `error.rs` | [`UpstreamError`] and how statuses and error bodies map to it |

mod client;
mod embeddings;
mod error;
mod ocr;
mod sse;
mod stream;

pub use client::{ChatMessage, ChatRequest, MistralClient, Role, Timeouts};
pub use embeddings::{EMBED_BATCH, EMBED_MODEL};
pub use error::UpstreamError;
pub use ocr::{OCR_MODEL, OcrInput};
pub use stream::{ChatEvent, ChatStream};
