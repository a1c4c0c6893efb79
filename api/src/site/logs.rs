//! Chat logs: list (newest first, paged), read one conversation (assistant messages rendered
//! by `parlo_render`, the same sanitising pipeline as the widget), wipe a bot's or the whole
//! workspace's logs.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::{Router, routing::get, routing::post};
use parlo_site::{ConversationPage, ConversationRow, LogsPage, MessageView, notice_text};
use serde::Deserialize;
use serde_json::json;

use crate::model::{
    BotId, ConversationId, ConversationQuery, MessageRole, MessageStatus, Rating, Timestamp,
};
use crate::state::AppState;

use super::csrf::CsrfForm;
use super::page::{PageError, PageResult, render, see_other, when};
use super::workspace::{Manager, Member};

const PAGE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{t}/logs", get(list))
        .route("/w/{t}/logs/wipe", post(wipe))
        .route("/w/{t}/logs/{conversation}", get(read))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    bot: String,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    notice: String,
}

async fn list(
    State(state): State<AppState>,
    Member(ws): Member,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let bots = state.store.bots(ws.id).await?;
    let bot_filter: Option<BotId> = match q.bot.trim() {
        "" => None,
        b => Some(b.parse().map_err(|_| PageError::NotFound)?),
    };
    if let Some(b) = bot_filter
        && !bots.iter().any(|x| x.id == b)
    {
        return Err(PageError::NotFound);
    }
    let names: HashMap<BotId, String> = bots
        .iter()
        .map(|b| (b.id, b.settings.name.clone()))
        .collect();
    let conversations = state
        .store
        .conversations(
            ws.id,
            &ConversationQuery {
                bot_id: bot_filter,
                before: q.before.map(Timestamp),
                limit: PAGE,
            },
        )
        .await?;
    let next_page = (conversations.len() == PAGE as usize)
        .then(|| conversations.last())
        .flatten()
        .map(|c| {
            ws.path(&format!(
                "/logs?bot={}&before={}",
                bot_filter.map(|b| b.to_string()).unwrap_or_default(),
                c.last_activity_at.0
            ))
        });
    let mut chrome = ws.chrome("Chat logs", "logs");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    Ok(render(&LogsPage {
        chrome,
        ws: ws.link(),
        bots: bots
            .iter()
            .map(|b| (b.id.to_string(), b.settings.name.clone()))
            .collect(),
        selected_bot: bot_filter.map(|b| b.to_string()).unwrap_or_default(),
        conversations: conversations
            .iter()
            .map(|c| ConversationRow {
                id: c.id.to_string(),
                bot_name: names.get(&c.bot_id).cloned().unwrap_or_default(),
                origin: c.origin.clone(),
                created: when(c.created_at),
                last_activity: when(c.last_activity_at),
            })
            .collect(),
        next_page,
        can_manage: ws.can_manage(),
    }))
}

async fn read(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, conversation)): Path<(String, String)>,
) -> PageResult {
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
    let messages = state.store.messages(ws.id, c.id).await?;
    let ratings = state.store.ratings(ws.id, c.id).await?;
    Ok(render(&ConversationPage {
        chrome: ws.chrome(format!("Conversation with {bot_name}"), "logs"),
        ws: ws.link(),
        bot_name,
        origin: c.origin.clone(),
        created: when(c.created_at),
        messages: messages
            .into_iter()
            .map(|m| {
                let (role, role_label) = match m.role {
                    MessageRole::User => ("user", "Visitor"),
                    MessageRole::Assistant => ("assistant", "Assistant"),
                    MessageRole::System => ("system", "System"),
                };
                let is_html = m.role == MessageRole::Assistant;
                MessageView {
                    role,
                    role_label,
                    at: when(m.created_at),
                    at_iso: m.created_at.to_rfc3339(),
                    status_note: match m.status {
                        MessageStatus::Complete => "",
                        MessageStatus::Pending => "still being written",
                        MessageStatus::Interrupted => "interrupted",
                        MessageStatus::Failed => "failed",
                    },
                    rating_note: match ratings.iter().find(|(id, _)| *id == m.id) {
                        Some((_, Rating::Up)) => "👍 rated helpful",
                        Some((_, Rating::Down)) => "👎 rated not helpful",
                        None => "",
                    },
                    html: if is_html {
                        parlo_render::render(&m.content)
                    } else {
                        m.content
                    },
                    is_html,
                }
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
struct WipeForm {
    #[serde(default)]
    bot: String,
    #[serde(default)]
    confirm: String,
}

async fn wipe(
    State(state): State<AppState>,
    Manager(ws): Manager,
    CsrfForm(form): CsrfForm<WipeForm>,
) -> PageResult {
    if form.confirm != "yes" {
        return Err(PageError::BadRequest(
            "Tick the box to confirm that the logs are deleted for good.".into(),
        ));
    }
    let bot = match form.bot.trim() {
        "" => None,
        b => {
            let id: BotId = b.parse().map_err(|_| PageError::NotFound)?;
            Some(
                state
                    .store
                    .bot(ws.id, id)
                    .await?
                    .ok_or(PageError::NotFound)?,
            )
        }
    };
    let n = state
        .store
        .wipe_conversations(ws.id, bot.as_ref().map(|b| b.id))
        .await?;
    let target = bot
        .as_ref()
        .map_or("all bots".to_owned(), |b| b.public_id.clone());
    ws.audit(&state, "logs.wipe", &target, json!({"conversations": n}))
        .await;
    Ok(see_other(&ws.path("/logs?notice=logs_wiped")))
}
