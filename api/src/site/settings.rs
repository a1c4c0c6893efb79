//! Workspace settings: rename, export everything as JSON, the audit log, and deleting the
//! workspace with all its data (owner only, confirmed by typing its name).

use std::collections::HashSet;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get, routing::post};
use parlo_site::{AuditPage, AuditRow, WorkspaceContents, WorkspaceSettingsPage, notice_text};
use serde::Deserialize;
use serde_json::json;

use crate::model::{ConversationQuery, Provider, Timestamp, WorkspaceName};
use crate::state::AppState;

use super::account::NoticeQuery;
use super::csrf::CsrfForm;
use super::page::{PageError, PageResult, render, see_other, when};
use super::workspace::{Manager, Member, Owner};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{t}/settings", get(page))
        .route("/w/{t}/settings/name", post(rename))
        .route("/w/{t}/export", get(export))
        .route("/w/{t}/audit", get(audit))
        .route("/w/{t}/delete", post(delete))
}

async fn page(
    State(state): State<AppState>,
    Member(ws): Member,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let mut chrome = ws.chrome("Workspace settings", "workspace");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    let deletes = if ws.is_owner() {
        let u = state.store.workspace_usage(ws.id).await?;
        Some(WorkspaceContents {
            bots: u.bots,
            conversations: u.conversations,
            messages: u.messages,
            members: u.members,
        })
    } else {
        None
    };
    Ok(render(&WorkspaceSettingsPage {
        chrome,
        ws: ws.link(),
        can_manage: ws.can_manage(),
        is_owner: ws.is_owner(),
        deletes,
    }))
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    Manager(ws): Manager,
    CsrfForm(form): CsrfForm<NameForm>,
) -> PageResult {
    let name = WorkspaceName::parse(&form.name).map_err(|e| PageError::BadRequest(e.0))?;
    state.store.rename_workspace(ws.id, &name).await?;
    ws.audit(
        &state,
        "workspace.rename",
        name.as_str(),
        json!({"from": ws.name}),
    )
    .await;
    Ok(see_other(&ws.path("/settings?notice=renamed")))
}

/// Everything the workspace holds, as one JSON document. No key material: the provider key
/// appears as its last four characters only.
async fn export(State(state): State<AppState>, Manager(ws): Manager) -> PageResult<Response> {
    let store = &state.store;
    let workspace = store.workspace(ws.id).await?.ok_or(PageError::NotFound)?;
    let members: Vec<_> = store
        .members(ws.id)
        .await?
        .into_iter()
        .map(|m| json!({"email": m.email, "role": m.role.as_str()}))
        .collect();
    let bots = store.bots(ws.id).await?;
    let key = store.provider_key(ws.id, Provider::Mistral).await?.map(|k| {
        json!({"provider": "mistral", "last_four": k.last_four, "updated_at": k.updated_at.to_rfc3339()})
    });
    let mut conversations = Vec::new();
    let mut seen = HashSet::new();
    let mut before = None;
    loop {
        let page = store
            .conversations(
                ws.id,
                &ConversationQuery {
                    bot_id: None,
                    before,
                    limit: 500,
                },
            )
            .await?;
        let full = page.len() == 500;
        let mut added = false;
        for c in &page {
            if seen.insert(c.id) {
                added = true;
                let messages = store.messages(ws.id, c.id).await?;
                conversations.push(json!({
                    "id": c.id,
                    "bot_id": c.bot_id,
                    "origin": c.origin,
                    "created_at": c.created_at.to_rfc3339(),
                    "last_activity_at": c.last_activity_at.to_rfc3339(),
                    "messages": messages,
                }));
            }
        }
        // Paging by "active before"; one millisecond later so equal timestamps at a page
        // boundary are not skipped (duplicates are dropped above).
        match page.last() {
            Some(last) if full && added => before = Some(Timestamp(last.last_activity_at.0 + 1)),
            _ => break,
        }
    }
    let audit = store.audit_log(ws.id, 1000).await?;
    ws.audit(
        &state,
        "workspace.export",
        &ws.name,
        json!({"conversations": conversations.len()}),
    )
    .await;
    let body = json!({
        "format": "parlo-export-v1",
        "exported_at": Timestamp::now().to_rfc3339(),
        "workspace": {"id": workspace.id, "name": workspace.name, "created_at": workspace.created_at.to_rfc3339()},
        "members": members,
        "bots": bots,
        "provider_key": key,
        "conversations": conversations,
        "audit_log": audit,
    });
    let filename = format!("attachment; filename=\"parlo-export-{}.json\"", ws.id);
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&filename).expect("ascii file name"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn audit(State(state): State<AppState>, Manager(ws): Manager) -> PageResult {
    let members = state.store.members(ws.id).await?;
    let entries = state.store.audit_log(ws.id, 200).await?;
    Ok(render(&AuditPage {
        chrome: ws.chrome("Audit log", "workspace"),
        ws: ws.link(),
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                at: when(e.created_at),
                actor: e
                    .actor
                    .map(|a| {
                        members
                            .iter()
                            .find(|m| m.user_id == a)
                            .map_or_else(|| "former member".to_owned(), |m| m.email.clone())
                    })
                    .unwrap_or_else(|| "system".to_owned()),
                action: e.action,
                target: e.target,
                details: e.details,
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    Owner(ws): Owner,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> PageResult {
    if form.confirm.trim() != ws.name {
        return Err(PageError::BadRequest(
            "Type the workspace's name exactly to confirm.".into(),
        ));
    }
    state.store.delete_workspace(ws.id).await?;
    tracing::info!(
        event = "workspace.delete",
        "a workspace was deleted with all its data"
    );
    Ok(see_other("/app?notice=workspace_deleted"))
}
