//! Suspension as the widget sees it: a suspended workspace's widgets may not start (or
//! continue) sessions. Owns the refusal the client sees; must never reveal why the operator
//! suspended the workspace.

use crate::error::AppError;
use crate::model::TenantId;
use crate::storage::Store;

/// `Ok` for an active workspace; a 403 `workspace_suspended` otherwise.
pub async fn refuse_if_suspended(store: &Store, t: TenantId) -> Result<(), AppError> {
    match store.suspended_at(t).await? {
        None => Ok(()),
        Some(_) => Err(suspended_error()),
    }
}

/// The refusal for a suspended workspace (for callers that learned it another way).
pub fn suspended_error() -> AppError {
    AppError::Forbidden(
        "workspace_suspended",
        "This assistant is currently unavailable: its workspace has been suspended.".into(),
    )
}
