//! Suspension as the widget sees it: a suspended workspace's widgets may not start (or
//! continue) sessions. Returns a domain error, [`SuspensionError::Suspended`]; the HTTP
//! layer (`crate::error`) decides what the client sees, which must never reveal why the
//! operator suspended the workspace.

use crate::model::TenantId;
use crate::storage::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SuspensionError {
    /// The operator suspended the workspace.
    #[error("the workspace is suspended")]
    Suspended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `Ok` for an active workspace; [`SuspensionError::Suspended`] otherwise.
pub async fn refuse_if_suspended(store: &Store, t: TenantId) -> Result<(), SuspensionError> {
    match store.suspended_at(t).await? {
        None => Ok(()),
        Some(_) => Err(SuspensionError::Suspended),
    }
}
