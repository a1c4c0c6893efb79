//! What every parse of user input shares: the error a person sees, and the rule for short
//! names.

/// Why a value was rejected; the message is safe to show the user who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub(super) fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// A short human name (workspace, bot): 1–80 characters after trimming, no control characters.
pub(super) fn parse_name(s: &str) -> Result<String, Invalid> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 80 || s.chars().any(char::is_control) {
        return invalid("A name has 1 to 80 characters.");
    }
    Ok(s.to_owned())
}
