//! The domain model: ids, validated values (parsed once, so invalid data cannot travel
//! further) and the records storage returns. Handlers, storage, lifecycle and tests all speak
//! these types. Owns no I/O: must never import sqlx, axum or any other driver or framework
//! (storage gives the ids and `Timestamp` their database encoding in `storage/codec.rs`).

mod account;
mod audit;
mod bot;
mod chat;
mod ids;
mod knowledge;
mod lifecycle;
mod limits;
mod mail;
mod parse;
mod trust;
mod workspace;

pub use account::*;
pub use audit::*;
pub use bot::*;
pub use chat::*;
pub use ids::*;
pub use knowledge::*;
pub use lifecycle::*;
pub use limits::*;
pub use mail::*;
pub use parse::Invalid;
pub use trust::*;
pub use workspace::*;
