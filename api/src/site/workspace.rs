//! Who may do what in a workspace, decided on every request by extractors: a handler's
//! signature says which role it needs (`Member`, `Manager`, `Owner`).
//!
//! The workspace comes from the path (`/w/{tenant}/…`) and counts only if the signed-in
//! user has a membership there. Otherwise the answer is 404, exactly as for a workspace
//! that does not exist, so nobody learns which workspaces exist. A member lacking the role
//! gets 403 (they know the workspace) and the refusal is written to its audit log.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use parlo_site::{Chrome, WorkspaceLink};
use serde_json::json;

use crate::model::{Conversation, ConversationId, Role, TenantId};
use crate::state::AppState;

use super::page::{PageError, PageResult};
use super::session::CurrentUser;
use super::workspace_audit::audit_in;

/// The signed-in user inside one of their workspaces.
#[derive(Clone)]
pub struct Ws {
    pub id: TenantId,
    pub name: String,
    pub role: Role,
    pub user: CurrentUser,
}

impl Ws {
    pub fn link(&self) -> WorkspaceLink {
        WorkspaceLink {
            id: self.id.to_string(),
            name: self.name.clone(),
            role: self.role.as_str().to_owned(),
        }
    }

    pub fn chrome(&self, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            csrf: self.user.csrf.clone(),
            user: Some(self.user.user.email.clone()),
            current: Some(self.link()),
            section,
            ..Chrome::default()
        }
    }

    /// `/w/{id}` + `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/w/{}{rest}", self.id)
    }

    pub fn can_manage(&self) -> bool {
        self.role.can_manage()
    }

    pub fn is_owner(&self) -> bool {
        self.role == Role::Owner
    }

    /// Writes a security event to this workspace's audit log. Failures to write are logged:
    /// the action itself already happened.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) {
        audit_in(
            state,
            self.id,
            Some(self.user.user.id),
            action,
            target,
            details,
        )
        .await;
    }
}

fn tenant_in_path(path: &str) -> Option<TenantId> {
    path.strip_prefix("/w/")?.split('/').next()?.parse().ok()
}

async fn resolve(parts: &mut Parts, state: &AppState) -> Result<Ws, PageError> {
    if let Some(ws) = parts.extensions.get::<Ws>() {
        return Ok(ws.clone());
    }
    let user =
        <CurrentUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
    let t = tenant_in_path(parts.uri.path()).ok_or(PageError::NotFound)?;
    let membership = state
        .store
        .memberships_of(user.user.id)
        .await?
        .into_iter()
        .find(|m| m.tenant_id == t);
    let Some(membership) = membership else {
        tracing::info!("workspace page refused: not a member");
        return Err(PageError::NotFound);
    };
    let workspace = state.store.workspace(t).await?.ok_or(PageError::NotFound)?;
    let ws = Ws {
        id: t,
        name: workspace.name,
        role: membership.role,
        user,
    };
    parts.extensions.insert(ws.clone());
    Ok(ws)
}

async fn denied(state: &AppState, ws: &Ws, parts: &Parts, needed: &str) -> PageError {
    ws.audit(
        state,
        "permission.denied",
        parts.uri.path(),
        json!({"method": parts.method.as_str(), "role": ws.role.as_str(), "needed": needed}),
    )
    .await;
    PageError::Forbidden(if needed == "owner" {
        "only the owner can do this."
    } else {
        "only owners and admins can do this."
    })
}

/// Any member of the workspace in the path.
pub struct Member(pub Ws);

/// An owner or admin: manages bots, keys, members and logs.
pub struct Manager(pub Ws);

/// The owner: may delete the workspace and make other owners.
pub struct Owner(pub Ws);

impl FromRequestParts<AppState> for Member {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        resolve(parts, state).await.map(Member)
    }
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let ws = resolve(parts, state).await?;
        if !ws.can_manage() {
            return Err(denied(state, &ws, parts, "admin").await);
        }
        Ok(Manager(ws))
    }
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let ws = resolve(parts, state).await?;
        if !ws.is_owner() {
            return Err(denied(state, &ws, parts, "owner").await);
        }
        Ok(Owner(ws))
    }
}

/// The workspace's conversation named in the path, with its bot's name.
pub(super) async fn find_conversation(
    state: &AppState,
    ws: &Ws,
    conversation: &str,
) -> PageResult<(Conversation, String)> {
    let id: ConversationId = conversation.parse().map_err(|_| PageError::NotFound)?;
    let c = state
        .store
        .conversation(ws.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    let bot_name = state
        .store
        .bot(ws.id, c.bot_id)
        .await?
        .map(|b| b.settings.name)
        .unwrap_or_default();
    Ok((c, bot_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_comes_from_the_first_segment_only() {
        let t = TenantId::new();
        assert_eq!(tenant_in_path(&format!("/w/{t}/bots/x")), Some(t));
        assert_eq!(tenant_in_path(&format!("/w/{t}")), Some(t));
        assert_eq!(tenant_in_path("/w/not-a-uuid/bots"), None);
        assert_eq!(tenant_in_path(&format!("/x/{t}")), None);
    }
}
