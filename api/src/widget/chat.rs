//! Sending a message (`POST /messages`) and streaming the answer as server-sent events.
//!
//! Order of events for one turn, each step durable before the next:
//! 1. both rate-limit counters (end user's IP, conversation) are counted in one round trip;
//! 2. one transaction ([`crate::storage::Store::begin_turn`]) refuses a suspended workspace
//!    or a deleted bot, stores the user's message and an empty `pending` assistant message
//!    (before any upstream call), and reads the bot, the latest 40 usable messages and the
//!    tenant's key;
//! 3. a driver task (`turn.rs`) streams the upstream answer into an SSE channel,
//!    accumulating it, and finishes the stored answer.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::WidgetAuth;
use super::json::WidgetJson;
use super::limits::limit_turn;
use super::session::conversation_gone;
use super::turn::{Grounding, api_key, chat_request, drive_answer};
use crate::error::{AppError, AppResult, Body as ErrorBody};
use crate::http::client_ip::ClientIp;
use crate::lifecycle::suspension::SuspensionError;
use crate::model::{NewTurn, Provider, TurnStart};
use crate::state::AppState;

/// Longest message an end user may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// How many earlier messages are sent upstream as context.
const CONTEXT_MESSAGES: u32 = 40;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The end user's message, 1–4000 characters.
    content: String,
    /// The id of a stored question whose answer failed (the `question_id` of the stream's
    /// error): the turn answers it again instead of storing the question a second time.
    #[serde(default)]
    retry_of: Option<String>,
}

/// Whether a character shows nothing: whitespace, controls, and the invisible format
/// characters (zero-width space, non-joiner and joiner, bidi marks, embeddings and isolates,
/// word joiner and invisible operators, BOM, soft hyphen, fillers, variation selectors, tags).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// A message a person could not see is refused like an empty one.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_invisible)
}

fn not_retryable() -> AppError {
    AppError::BadRequest(
        "not_retryable",
        "Only the latest question, unanswered and with the same text, can be retried; send it as a new message.".into(),
    )
}

/// Send a message; the answer streams back as server-sent events: `delta` (`{"text"}`) …,
/// then `done` (`{"message_id", "status"}`) or `error` (`{"code", "message", "retry_after"}`).
#[utoipa::path(
    post,
    path = "/api/widget/v1/messages",
    tag = "widget",
    security(("session_token" = [])),
    request_body = SendRequest,
    responses(
        (status = 200, description = "The answer as server-sent events", content_type = "text/event-stream", body = String),
        (status = 400, description = "`token_in_url`, a body that is not JSON, or `not_retryable`", body = ErrorBody),
        (status = 401, description = "`invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`origin_mismatch`, `origin_invalid` or `workspace_suspended`", body = ErrorBody),
        (status = 404, description = "`conversation_gone` or `unknown_bot`", body = ErrorBody),
        (status = 422, description = "`invalid`: empty, only invisible characters, too long, or not a JSON object with exactly the known fields", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
    WidgetJson(req): WidgetJson<SendRequest>,
) -> AppResult<Response> {
    limit_turn(&state, ip, claims.conversation).await?;
    let content = req.content.trim();
    if is_blank(content) {
        return Err(AppError::Invalid("Type a message first.".into()));
    }
    if content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::Invalid(format!(
            "A message has at most {MAX_MESSAGE_CHARS} characters."
        )));
    }
    let retry_of = match req.retry_of.as_deref() {
        Some(id) => Some(id.parse().map_err(|_| not_retryable())?),
        None => None,
    };
    let t = claims.tenant;
    // One transaction: refuse a suspended workspace (tokens live up to 15 minutes, a
    // suspension takes effect at once) or a deleted bot; store the user's words and the
    // answer's pending row before anything can fail upstream; read bot, context and key.
    let turn = match state
        .store
        .begin_turn(
            t,
            &NewTurn {
                bot: claims.bot,
                conversation: claims.conversation,
                start: claims.new_conversation(),
                retry_of,
                content: content.to_owned(),
                provider: Provider::Mistral,
                context: CONTEXT_MESSAGES,
            },
        )
        .await?
    {
        TurnStart::Started(turn) => *turn,
        TurnStart::Suspended => return Err(SuspensionError::Suspended.into()),
        TurnStart::NoBot => {
            return Err(AppError::NotFound(
                "unknown_bot",
                "This assistant no longer exists.".into(),
            ));
        }
        TurnStart::NoConversation => return Err(conversation_gone()),
        TurnStart::NotRetryable => return Err(not_retryable()),
    };
    let request = chat_request(&turn.bot, turn.context);
    let key = api_key(&state, t, turn.key);
    let pending = turn.answer;
    let (tx, rx) = mpsc::channel::<Event>(64);
    let grounding = Grounding {
        bot: turn.bot.id,
        conversation: claims.conversation,
        question: turn.question,
    };
    tokio::spawn(drive_answer(state, t, pending, key, request, grounding, tx));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::is_blank;

    #[test]
    fn invisible_only_messages_are_blank() {
        for blank in [
            "",
            " \t\n",
            "\u{200B}\u{200C}\u{200D}",
            "\u{FEFF}\u{200E}\u{200F}\u{202E}\u{2066}\u{2069}",
            "\u{2060}\u{00AD}\u{3164}\u{FE0F}\u{E0041}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for text in ["a", "\u{200B}a\u{200B}", "👍", "\u{0915}\u{094D}\u{200D}"] {
            assert!(!is_blank(text), "{text:?}");
        }
    }
}
