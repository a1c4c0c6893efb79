//! Erasure: deleting a workspace or an account removes every row that belonged to it.
//!
//! A workspace is deleted by deleting its registry row; every tenant table references it
//! with `ON DELETE CASCADE`, so nothing of it can be left behind on either backend.
//!
//! An account is global (one person may belong to several workspaces). Deleting it:
//! - deletes every workspace in which it is the only member (nobody else could reach that
//!   data any more, so it goes with the account);
//! - refuses, changing nothing, if it is the only owner of a workspace that has other
//!   members: ownership must be handed over (or the workspace deleted) first, because
//!   deleting colleagues' data, or leaving a workspace nobody can manage, is not ours to
//!   decide;
//! - otherwise removes its memberships, its login sessions and the user row. Each removal
//!   re-checks, in its transaction, that the workspace keeps an owner: of two co-owners
//!   deleting their accounts at the same moment, one is refused as the only owner.
//!
//! Entries a workspace's own audit log recorded about the person keep their (now dangling)
//! user id: they belong to the workspace and go with it. Must never run a cross-tenant
//! statement: each workspace is changed in its own tenant transaction.

use crate::model::{Role, TenantId, UserId};
use crate::storage::{Store, StoreError};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountErasure {
    pub workspaces_deleted: Vec<TenantId>,
    pub memberships_removed: usize,
    pub sessions_deleted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("no such account")]
    NoSuchAccount,
    #[error(
        "the account is the only owner of workspaces that have other members ({}); make another member an owner or delete those workspaces first",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    SoleOwner(Vec<TenantId>),
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
}

/// Deletes a workspace and all of its data. False if it did not exist.
pub async fn erase_workspace(store: &Store, t: TenantId) -> Result<bool, ErasureError> {
    Ok(store.delete_workspace(t).await?)
}

/// Deletes an account as described in the module documentation.
pub async fn erase_account(store: &Store, user: UserId) -> Result<AccountErasure, ErasureError> {
    if store.user(user).await?.is_none() {
        return Err(ErasureError::NoSuchAccount);
    }
    let mut delete = Vec::new();
    let mut leave = Vec::new();
    let mut blocked = Vec::new();
    for m in store.memberships_of(user).await? {
        let members = store.members(m.tenant_id).await?;
        let another_owner = members
            .iter()
            .any(|x| x.user_id != user && x.role == Role::Owner);
        if members.iter().all(|x| x.user_id == user) {
            delete.push(m.tenant_id);
        } else if m.role == Role::Owner && !another_owner {
            blocked.push(m.tenant_id);
        } else {
            leave.push((m.tenant_id, m.role));
        }
    }
    if !blocked.is_empty() {
        return Err(ErasureError::SoleOwner(blocked));
    }
    // Owner memberships first: a removal is refused when it would leave no owner (another
    // co-owner left at the same moment), and then what was removed before it is put back,
    // so the refusal changes nothing. Only then is anything deleted.
    leave.sort_by_key(|(_, role)| *role != Role::Owner);
    let mut left = Vec::new();
    for (t, role) in leave {
        match store.remove_member(t, user).await {
            Ok(Some(_)) => left.push((t, role)),
            Ok(None) => {}
            Err(StoreError::Conflict(_)) => {
                for (back, role) in left {
                    store.add_member(back, user, role).await?;
                }
                return Err(ErasureError::SoleOwner(vec![t]));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut report = AccountErasure {
        memberships_removed: left.len(),
        ..AccountErasure::default()
    };
    for t in delete {
        if store.delete_workspace(t).await? {
            report.workspaces_deleted.push(t);
        }
    }
    report.sessions_deleted = store.delete_user_sessions(user).await?;
    store.delete_user(user).await?;
    Ok(report)
}
