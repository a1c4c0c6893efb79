//! Members and invitations. Owners and admins invite (by a link whose token is stored only
//! as a hash), see and revoke open invitations, change roles and remove members; only owners
//! make or unmake owners; nobody edits their own role here. The store keeps a workspace
//! with at least one owner (checked inside the transaction), revokes the invitations of a
//! member who is removed or demoted, and accepts an invitation only while its creator may
//! still grant it.

use axum::extract::{Path, Query, State};
use axum::{Router, routing::get, routing::post};
use parlo_site::{InvitationRow, MemberRow, MembersPage, notice_text};
use serde::Deserialize;
use serde_json::json;

use crate::crypto;
use crate::mail::Mail;
use crate::model::{Email, InvitationId, Lang, NewInvitation, Role, Timestamp, UserId};
use crate::state::AppState;

use super::account::{NoticeQuery, no_store};
use super::csrf::{CsrfForm, NoFields};
use super::page::{PageError, PageResult, render, see_other, when};
use super::workspace::{Manager, Member, Ws};

const INVITATION_DAYS: i64 = 7;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{t}/members", get(page))
        .route("/w/{t}/invitations", post(invite))
        .route("/w/{t}/invitations/{id}/revoke", post(revoke))
        .route("/w/{t}/members/{user}/role", post(set_role))
        .route("/w/{t}/members/{user}/remove", post(remove))
}

fn may_edit(ws: &Ws, target_id: UserId, target_role: Role) -> bool {
    ws.can_manage() && target_id != ws.user.user.id && (target_role != Role::Owner || ws.is_owner())
}

async fn render_page(
    state: &AppState,
    ws: &Ws,
    notice: Option<String>,
    new_link: Option<String>,
) -> PageResult {
    let members = state.store.members(ws.id).await?;
    let invitations = if ws.can_manage() {
        state.store.invitations(ws.id).await?
    } else {
        Vec::new()
    };
    let mut chrome = ws.chrome("Members", "members");
    chrome.notice = notice;
    Ok(render(&MembersPage {
        chrome,
        ws: ws.link(),
        members: members
            .iter()
            .map(|m| MemberRow {
                editable: may_edit(ws, m.user_id, m.role),
                user_id: m.user_id.to_string(),
                email: m.email.clone(),
                role: m.role.as_str().to_owned(),
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .filter(|i| i.expires_at > Timestamp::now())
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                role: i.role.as_str().to_owned(),
                created_by: creator_of(&members, i.created_by),
                expires_at: when(i.expires_at),
            })
            .collect(),
        can_manage: ws.can_manage(),
        is_owner: ws.is_owner(),
        new_link,
    }))
}

/// Who created an invitation, as the members page names them. Removing or demoting a member
/// revokes their invitations, so an open one names a current member; an invitation whose
/// creator is unknown cannot be accepted (see `Store::accept_invitation`).
fn creator_of(members: &[crate::model::Member], created_by: Option<UserId>) -> String {
    members
        .iter()
        .find(|m| Some(m.user_id) == created_by)
        .map_or_else(|| "(no longer a member)".to_owned(), |m| m.email.clone())
}

async fn page(
    State(state): State<AppState>,
    Member(ws): Member,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    render_page(&state, &ws, notice_text(&q.notice).map(str::to_owned), None).await
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

#[derive(Deserialize)]
struct InviteForm {
    role: String,
    /// The invited address: the invitation is mailed there and bound to it.
    email: String,
}

async fn invite(
    State(state): State<AppState>,
    Manager(ws): Manager,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> PageResult {
    let role = match Role::parse(&form.role) {
        Ok(r @ (Role::Admin | Role::Member)) => r,
        _ => return Err(PageError::BadRequest("Invite as admin or member.".into())),
    };
    let email = Email::parse(&form.email).map_err(|e| PageError::BadRequest(e.0))?;
    let token = format!("inv_{}_{}", ws.id.0.simple(), crypto::random_token(""));
    state
        .store
        .create_invitation(
            ws.id,
            &NewInvitation {
                token_hash: crypto::sha256(token.as_bytes()),
                role,
                created_by: Some(ws.user.user.id),
                expires_at: Timestamp::now().plus_secs(INVITATION_DAYS * 86_400),
                email: Some(email.as_str().to_owned()),
            },
        )
        .await?;
    let origin = state.config.public_url.origin().ascii_serialization();
    let mail = Mail::Invitation {
        workspace: ws.link().name,
        role: role.as_str().to_owned(),
        link: format!("{origin}/invite/{token}"),
    };
    // The invitee's language is theirs to choose once they have an account; English until then.
    let lang = match state.store.user_by_email(&email).await? {
        Some(u) => u.language,
        None => Lang::En,
    };
    if let Err(e) = state.mailer.send(email.as_str(), lang, &mail).await {
        return Err(match e {
            crate::mail::MailError::BadAddress(_) => {
                PageError::BadRequest("That address cannot receive mail.".into())
            }
            other => PageError::Internal(other.into()),
        });
    }
    ws.audit(
        &state,
        "member.invite",
        role.as_str(),
        json!({"role": role.as_str()}),
    )
    .await;
    // Shown once, in this response; the server keeps only the hash.
    Ok(no_store(
        render_page(&state, &ws, None, Some(format!("{origin}/invite/{token}"))).await?,
    ))
}

async fn revoke(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, id)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let id: InvitationId = id.parse().map_err(|_| PageError::NotFound)?;
    if !state.store.delete_invitation(ws.id, id).await? {
        return Err(PageError::NotFound);
    }
    ws.audit(
        &state,
        "member.invitation_revoke",
        &id.to_string(),
        json!({}),
    )
    .await;
    Ok(see_other(&ws.path("/members?notice=invitation_revoked")))
}

/// The member named in the path, if they belong to this workspace and the viewer may edit them.
async fn editable_member(state: &AppState, ws: &Ws, raw: &str) -> PageResult<crate::model::Member> {
    let id: UserId = raw.parse().map_err(|_| PageError::NotFound)?;
    let member = state
        .store
        .members(ws.id)
        .await?
        .into_iter()
        .find(|m| m.user_id == id)
        .ok_or(PageError::NotFound)?;
    if !may_edit(ws, member.user_id, member.role) {
        ws.audit(
            state,
            "permission.denied",
            &member.email,
            json!({"action": "member.edit", "role": ws.role.as_str()}),
        )
        .await;
        return Err(PageError::Forbidden(
            "owners are changed by owners, and nobody changes their own role here.",
        ));
    }
    Ok(member)
}

async fn set_role(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, user)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> PageResult {
    let member = editable_member(&state, &ws, &user).await?;
    let role = Role::parse(&form.role).map_err(|e| PageError::BadRequest(e.0))?;
    if role == Role::Owner && !ws.is_owner() {
        ws.audit(
            &state,
            "permission.denied",
            &member.email,
            json!({"action": "member.make_owner"}),
        )
        .await;
        return Err(PageError::Forbidden(
            "only owners can make someone an owner.",
        ));
    }
    let revoked = state
        .store
        .set_member_role(ws.id, member.user_id, role)
        .await?
        .ok_or(PageError::NotFound)?;
    ws.audit(
        &state,
        "member.role",
        &member.email,
        json!({
            "from": member.role.as_str(),
            "to": role.as_str(),
            "invitations_revoked": revoked,
        }),
    )
    .await;
    Ok(see_other(&ws.path("/members?notice=member_updated")))
}

async fn remove(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, user)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let member = editable_member(&state, &ws, &user).await?;
    let revoked = state
        .store
        .remove_member(ws.id, member.user_id)
        .await?
        .ok_or(PageError::NotFound)?;
    ws.audit(
        &state,
        "member.remove",
        &member.email,
        json!({"role": member.role.as_str(), "invitations_revoked": revoked}),
    )
    .await;
    Ok(see_other(&ws.path("/members?notice=member_removed")))
}
