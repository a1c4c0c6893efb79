//! The domain model: ids, validated values (parsed once, so invalid data cannot travel
//! further) and the records storage returns. Handlers, storage, lifecycle and tests all speak
//! these types. Owns no I/O: must never import sqlx, axum or any other driver or framework
//! (storage gives the ids and `Timestamp` their database encoding in `storage/codec.rs`).

mod account;
mod audit;
mod bot;
mod chat;
mod ids;
mod lifecycle;
mod limits;
mod workspace;

pub use account::*;
pub use audit::*;
pub use bot::*;
pub use chat::*;
pub use ids::*;
pub use lifecycle::*;
pub use limits::*;
pub use workspace::*;

/// Why a value was rejected; the message is safe to show the user who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// A short human name (workspace, bot): 1–80 characters after trimming, no control characters.
fn parse_name(s: &str) -> Result<String, Invalid> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 80 || s.chars().any(char::is_control) {
        return invalid("A name has 1 to 80 characters.");
    }
    Ok(s.to_owned())
}
