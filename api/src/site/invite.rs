//! Joining a workspace through an invitation link (`/invite/{token}`): the page shows which
//! workspace and role the link offers, and a signed-in user accepts it with a POST. The
//! token names its workspace (`inv_` + workspace id + `_` + random), so the lookup runs in
//! that tenant's scope; only its SHA-256 is stored. Members create invitations on the
//! members page (`members.rs`); sign-up and login carry an invitation through (`auth.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Router, routing::get};
use parlo_site::{Chrome, InvitePage};
use serde_json::json;

use crate::crypto;
use crate::model::{Invitation, TenantId};
use crate::state::AppState;
use crate::storage::StoreError;

use super::csrf::{CsrfForm, NoFields};
use super::page::{PageError, PageResult, render, render_status, see_other};
use super::session::CurrentUser;
use super::workspace_audit::audit_in;

pub fn router() -> Router<AppState> {
    Router::new().route("/invite/{token}", get(invite_page).post(invite_accept))
}

/// An invitation token as it appears in links: `inv_` + workspace id (hex) + `_` + random.
pub fn invitation_tenant(token: &str) -> Option<TenantId> {
    let rest = token.strip_prefix("inv_")?;
    let (tenant, random) = rest.split_once('_')?;
    if tenant.len() != 32
        || random.len() < 32
        || !random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    tenant.parse().ok()
}

/// The invitation token of a form or query, or nothing if it is not one.
pub fn clean_invite(token: &str) -> String {
    if invitation_tenant(token).is_some() {
        token.to_owned()
    } else {
        String::new()
    }
}

async fn find_invitation(state: &AppState, token: &str) -> PageResult<(TenantId, Invitation)> {
    let t = invitation_tenant(token).ok_or(PageError::NotFound)?;
    let inv = state
        .store
        .invitation_by_token(t, &crypto::sha256(token.as_bytes()))
        .await?
        .ok_or(PageError::NotFound)?;
    Ok((t, inv))
}

async fn invite_page(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    Path(token): Path<String>,
) -> PageResult {
    let (t, inv) = find_invitation(&state, &token).await?;
    let workspace = state.store.workspace(t).await?.ok_or(PageError::NotFound)?;
    let chrome = Chrome {
        title: format!("Join {}", workspace.name),
        csrf: user.as_ref().map(|u| u.csrf.clone()).unwrap_or_default(),
        user: user.as_ref().map(|u| u.user.email.clone()),
        ..Chrome::default()
    };
    Ok(render(&InvitePage {
        chrome,
        workspace: workspace.name,
        role: inv.role.as_str().to_owned(),
        token,
        signed_in: user.is_some(),
    }))
}

async fn invite_accept(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let (t, inv) = find_invitation(&state, &token).await?;
    // The link alone is not enough: the invitation is for one address, proven by mail.
    let refusal = if !user.user.email_verified {
        Some("Confirm your e-mail address first (we sent you a link), then accept the invitation.")
    } else if inv
        .email
        .as_deref()
        .is_some_and(|e| !e.eq_ignore_ascii_case(&user.user.email))
    {
        Some(
            "This invitation was sent to another e-mail address. Log in with the account of that address to accept it.",
        )
    } else {
        None
    };
    if let Some(why) = refusal {
        let workspace = state.store.workspace(t).await?.ok_or(PageError::NotFound)?;
        audit_in(
            &state,
            t,
            Some(user.user.id),
            "member.join_refused",
            &user.user.email,
            json!({"reason": if user.user.email_verified { "other_address" } else { "unverified" }}),
        )
        .await;
        let chrome = Chrome {
            title: format!("Join {}", workspace.name),
            csrf: user.csrf.clone(),
            user: Some(user.user.email.clone()),
            error: Some(why.to_owned()),
            ..Chrome::default()
        };
        return Ok(render_status(
            StatusCode::FORBIDDEN,
            &InvitePage {
                chrome,
                workspace: workspace.name,
                role: inv.role.as_str().to_owned(),
                token,
                signed_in: true,
            },
        ));
    }
    match state
        .store
        .accept_invitation(t, &crypto::sha256(token.as_bytes()), user.user.id)
        .await
    {
        Ok(role) => {
            audit_in(
                &state,
                t,
                Some(user.user.id),
                "member.join",
                &user.user.email,
                json!({"role": role.as_str()}),
            )
            .await;
            Ok(see_other(&format!("/w/{t}?notice=joined")))
        }
        Err(StoreError::Conflict(_)) => Ok(see_other(&format!("/w/{t}"))),
        Err(e) => Err(e.into()),
    }
}
