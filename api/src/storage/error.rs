//! What can go wrong in storage, and what it means to the person who asked: the JSON API and
//! the site both translate from [`StoreError::kind`], so they cannot disagree.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. e-mail already registered).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsafe(String),
    /// A per-workspace limit would be exceeded; the sentence says which and is safe to show.
    #[error("{0}")]
    Limit(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a [`StoreError`] means to the person who asked. The JSON API (`AppError`) and the
/// site (`PageError`) both translate from this, so they cannot disagree.
#[derive(Debug)]
pub enum StoreErrorKind {
    /// The row does not exist (or is another tenant's, which looks the same).
    NotFound,
    /// A uniqueness rule was violated; a sentence safe to show, e.g. "Email already
    /// registered."
    Conflict(String),
    /// Anything else: the cause is for the log, never for the client.
    Internal(anyhow::Error),
}

impl StoreError {
    pub fn kind(self) -> StoreErrorKind {
        match self {
            StoreError::NotFound => StoreErrorKind::NotFound,
            StoreError::Conflict(what) => StoreErrorKind::Conflict(sentence(what)),
            StoreError::Limit(sentence) => StoreErrorKind::Conflict(sentence),
            other => StoreErrorKind::Internal(other.into()),
        }
    }
}

/// "email already registered" → "Email already registered."
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(super) fn conflict_on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

/// A stored value the model refuses (the database was changed behind Parlo's back).
pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("unexpected value in {what}").into(),
    ))
}
