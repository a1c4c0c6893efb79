//! Security events into each workspace's audit log (the tenant table `audit_log`, which the
//! workspace's admins read). Account-level events (logins, MFA and password changes) go to
//! every workspace the user belongs to, so each workspace's admins see them. Details never
//! hold secrets: no passwords, codes, keys or cookies. (The operator's hash-chained log of
//! `parlo admin` actions is `crate::lifecycle::operator_audit`.)

use serde_json::Value;

use crate::model::{NewAuditEntry, TenantId, User, UserId};
use crate::state::AppState;

pub async fn audit_in(
    state: &AppState,
    t: TenantId,
    actor: Option<UserId>,
    action: &str,
    target: &str,
    details: Value,
) {
    let entry = NewAuditEntry {
        actor,
        action: action.to_owned(),
        target: target.to_owned(),
        details,
    };
    if let Err(e) = state.store.append_audit(t, &entry).await {
        tracing::error!(error = %e, action, "writing an audit entry");
    }
}

pub async fn audit_user(state: &AppState, user: &User, action: &str, details: Value) {
    match state.store.memberships_of(user.id).await {
        Ok(ms) => {
            for m in ms {
                audit_in(
                    state,
                    m.tenant_id,
                    Some(user.id),
                    action,
                    &user.email,
                    details.clone(),
                )
                .await;
            }
        }
        Err(e) => tracing::error!(error = %e, action, "listing memberships for an audit entry"),
    }
}
