//! Chat logs: the inbox (first question, message count, last activity; full-text search,
//! reference look-up, filters by bot, date and "unanswered"; keyset pages), one
//! conversation (assistant messages rendered by `parlo_render`, the same sanitising pipeline
//! as the widget), its deletion after a confirmation step, and wiping a bot's or the whole
//! workspace's logs. Exports are in `log_export.rs`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::{Router, routing::get, routing::post};
use parlo_site::{
    ConversationDeletePage, ConversationPage, ConversationRow, InboxFilters, LogsPage, MessageView,
    notice_text,
};
use serde::Deserialize;
use serde_json::json;

use crate::model::{
    BotId, ConversationId, InboxQuery, MessageRole, MessageStatus, Rating, Timestamp,
    parse_reference,
};
use crate::state::AppState;

use super::csrf::CsrfForm;
use super::log_export;
use super::page::{PageError, PageResult, render, see_other, when};
use super::workspace::{Manager, Member, find_conversation};

const PAGE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{t}/logs", get(list))
        .route("/w/{t}/logs/wipe", post(wipe))
        .route("/w/{t}/logs/export", get(log_export::workspace))
        .route("/w/{t}/logs/{conversation}", get(read))
        .route("/w/{t}/logs/{conversation}/export", get(log_export::one))
        .route(
            "/w/{t}/logs/{conversation}/delete",
            get(confirm_delete).post(delete),
        )
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    bot: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    unanswered: String,
    /// Keyset cursor: `<last_activity_at ms>.<conversation id>` of the last row shown.
    #[serde(default)]
    after: String,
    #[serde(default)]
    notice: String,
}

/// `YYYY-MM-DD` as the start of that day (UTC), plus `days`.
fn day_start(s: &str, days: i64, what: &str) -> Result<Option<Timestamp>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("The {what} date must look like 2026-01-31."))?;
    let t = (date.midnight().assume_utc().unix_timestamp() + days * 86_400) * 1000;
    Ok(Some(Timestamp(t)))
}

fn parse_cursor(s: &str) -> Option<(Timestamp, ConversationId)> {
    let (at, id) = s.split_once('.')?;
    Some((Timestamp(at.parse().ok()?), id.parse().ok()?))
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
    let filters = InboxFilters {
        q: q.q.trim().to_owned(),
        bot: bot_filter.map(|b| b.to_string()).unwrap_or_default(),
        from: q.from.trim().to_owned(),
        to: q.to.trim().to_owned(),
        unanswered: !q.unanswered.is_empty(),
    };
    let after = match q.after.trim() {
        "" => None,
        a => Some(parse_cursor(a).ok_or(PageError::NotFound)?),
    };
    // `ref:XXXXXXXX` finds that conversation only; a bare query that could be a reference
    // (8 base32 letters, like "shipping") finds it and the conversations with those words.
    let reference = parse_reference(&filters.q);
    let explicit = filters
        .q
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("ref:"));
    let words = (!explicit && !filters.q.is_empty()).then(|| filters.q.clone());
    let range = day_start(&filters.from, 0, "start")
        .and_then(|from| Ok((from, day_start(&filters.to, 1, "end")?)));
    let (conversations, filter_error) = match range {
        Ok((active_from, active_until)) => {
            let query = InboxQuery {
                bot_id: bot_filter,
                active_from,
                active_until,
                unanswered: filters.unanswered,
                words,
                reference,
                after,
                limit: PAGE,
            };
            (state.store.inbox(ws.id, &query).await?, None)
        }
        Err(e) => (Vec::new(), Some(e)),
    };
    let filter_link = |cursor: Option<String>| {
        let mut pairs = vec![
            ("q", filters.q.clone()),
            ("bot", filters.bot.clone()),
            ("from", filters.from.clone()),
            ("to", filters.to.clone()),
        ];
        if filters.unanswered {
            pairs.push(("unanswered", "1".into()));
        }
        if let Some(c) = cursor {
            pairs.push(("after", c));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        ws.path(&format!("/logs?{query}"))
    };
    let next_page = (conversations.len() == PAGE as usize)
        .then(|| conversations.last())
        .flatten()
        .map(|e| {
            let c = &e.conversation;
            filter_link(Some(format!("{}.{}", c.last_activity_at.0, c.id)))
        });
    let first_page = after.map(|_| filter_link(None));
    let mut chrome = ws.chrome("Chat logs", "logs");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    Ok(render(&LogsPage {
        chrome,
        ws: ws.link(),
        bots: bots
            .iter()
            .map(|b| (b.id.to_string(), b.settings.name.clone()))
            .collect(),
        selected_bot: filters.bot.clone(),
        conversations: conversations
            .into_iter()
            .map(|e| {
                let c = e.conversation;
                ConversationRow {
                    id: c.id.to_string(),
                    reference: c.reference(),
                    bot_name: names.get(&c.bot_id).cloned().unwrap_or_default(),
                    origin: c.origin.clone(),
                    created: when(c.created_at),
                    last_activity: when(c.last_activity_at),
                    last_activity_iso: c.last_activity_at.to_rfc3339(),
                    preview: e.preview,
                    message_count: e.message_count,
                }
            })
            .collect(),
        filters,
        filter_error,
        next_page,
        first_page,
        can_manage: ws.can_manage(),
    }))
}

async fn read(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, conversation)): Path<(String, String)>,
) -> PageResult {
    let (c, bot_name) = find_conversation(&state, &ws, &conversation).await?;
    let messages = state.store.messages(ws.id, c.id).await?;
    let ratings = state.store.ratings(ws.id, c.id).await?;
    Ok(render(&ConversationPage {
        chrome: ws.chrome(format!("Conversation with {bot_name}"), "logs"),
        ws: ws.link(),
        id: c.id.to_string(),
        reference: c.reference(),
        can_manage: ws.can_manage(),
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

async fn confirm_delete(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, conversation)): Path<(String, String)>,
) -> PageResult {
    let (c, bot_name) = find_conversation(&state, &ws, &conversation).await?;
    let message_count = state.store.messages(ws.id, c.id).await?.len();
    Ok(render(&ConversationDeletePage {
        chrome: ws.chrome("Delete conversation", "logs"),
        ws: ws.link(),
        id: c.id.to_string(),
        reference: c.reference(),
        bot_name,
        origin: c.origin,
        created: when(c.created_at),
        message_count,
    }))
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// Deletes one conversation (a data-subject request), after the confirmation page; audit-
/// logged by its reference (the conversation's content is not copied into the log).
async fn delete(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, conversation)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> PageResult {
    let (c, _) = find_conversation(&state, &ws, &conversation).await?;
    if form.confirm != "yes" {
        return Err(PageError::BadRequest(
            "Tick the box to confirm that the conversation is deleted for good.".into(),
        ));
    }
    if state.store.delete_conversation(ws.id, c.id).await? {
        ws.audit(
            &state,
            "conversation.delete",
            &c.reference(),
            json!({"conversation": c.id, "bot": c.bot_id}),
        )
        .await;
    }
    Ok(see_other(&ws.path("/logs?notice=conversation_deleted")))
}
