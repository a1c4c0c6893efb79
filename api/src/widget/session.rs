//! The widget's session endpoints: start or resume a session (`POST /session`, which
//! issues the token for one conversation of one bot on one origin), read its history
//! (`GET /messages`) and clear it (`DELETE /conversation`). Sending a message is `chat.rs`,
//! attachments `attachments.rs`; the routes are assembled in `mod.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::WidgetAuth;
use super::cors::{RequestOrigin, invalid_origin, origin_refused, own_origin, request_origin};
use super::json::WidgetJson;
use super::limits::limit_ip;
use super::token::{self, WidgetClaims};
use crate::crypto::{random_token, sha256};
use crate::error::{AppError, AppResult, Body as ErrorBody};
use crate::http::client_ip::ClientIp;
use crate::lifecycle::suspension::SuspensionError;
use crate::model::{
    Bot, ConversationId, Message, MessageRole, MessageStatus, Scoped, TenantId, Timestamp,
};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The bot's public id (`bot_…`, the embed code's `data-bot`).
    bot: String,
    /// The resume secret (`rs_…`) of an earlier session, to continue its conversation.
    #[serde(default)]
    resume: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionResponse {
    /// The session token for `Authorization: Bearer …`.
    token: String,
    /// Seconds until the token expires.
    expires_in: i64,
    /// The resumed conversation; `null` for a new one, which is stored with its first
    /// message (an open that sends nothing leaves nothing in the customer's logs).
    #[schema(value_type = Option<String>)]
    conversation: Option<ConversationId>,
    /// The resume secret to keep for the next page load.
    resume: String,
    bot: BotPresentation,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BotPresentation {
    name: String,
    greeting: String,
    theme_color: String,
    language: &'static str,
}

fn unknown_bot() -> AppError {
    AppError::NotFound(
        "unknown_bot",
        "This assistant does not exist (check data-bot in the embed code).".into(),
    )
}

/// Start a session (or resume one with its resume secret) for a bot on the requesting
/// origin.
#[utoipa::path(
    post,
    path = "/api/widget/v1/session",
    tag = "widget",
    request_body = SessionRequest,
    responses(
        (status = 200, description = "A session token for one conversation", body = SessionResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`, `origin_required` or `workspace_suspended`", body = ErrorBody),
        (status = 404, description = "`unknown_bot`", body = ErrorBody),
        (status = 422, description = "`invalid`: the body does not match the schema", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
pub async fn start_session(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    WidgetJson(req): WidgetJson<SessionRequest>,
) -> Result<Response, AppError> {
    limit_ip(&state, ip).await?;
    let origin = match request_origin(&headers) {
        RequestOrigin::Valid(o) => o,
        RequestOrigin::Invalid => return Ok(invalid_origin()),
        RequestOrigin::Absent => {
            return Ok(origin_refused(
                "origin_required",
                "The request has no Origin header; the widget must be loaded in a browser.".into(),
            ));
        }
    };
    let tenant = Bot::tenant_of_public_id(&req.bot).ok_or_else(unknown_bot)?;
    let bot = state
        .store
        .bot_by_public_id(tenant, &req.bot)
        .await?
        .ok_or_else(unknown_bot)?;
    // Only the bot's own list counts; Parlo's own origin is no exemption (the dashboard
    // preview's session comes from the signed-in site, `preview_session`).
    let allowed = bot
        .settings
        .allowed_origins
        .iter()
        .any(|o| o.as_str() == origin);
    if !allowed {
        // Readable by the page (CORS headers stay on): the site owner who forgot to add
        // their origin must see "not enabled on this website", not "offline". It reveals
        // nothing an unknown-bot 404 would not, and no session or data is handed out.
        return Err(AppError::Forbidden(
            "origin_not_allowed",
            format!(
                "This website ({origin}) is not allowed to use this assistant. Its owner can add the origin in the assistant's settings."
            ),
        ));
    }
    issue_session(&state, tenant, bot, origin, req.resume.as_deref()).await
}

/// The dashboard preview's session: issued by the site (`site/bots.rs`) to a signed-in
/// member of the bot's workspace who passed the CSRF check, for Parlo's own origin.
pub async fn preview_session(
    state: &AppState,
    tenant: TenantId,
    bot: Bot,
    resume: Option<&str>,
) -> AppResult<Response> {
    issue_session(state, tenant, bot, own_origin(state), resume).await
}

/// Starts or resumes a conversation of `bot` on `origin` (already allowed) and issues its
/// token; a suspended workspace gets none.
async fn issue_session(
    state: &AppState,
    tenant: TenantId,
    bot: Bot,
    origin: String,
    resume: Option<&str>,
) -> AppResult<Response> {
    crate::lifecycle::suspension::refuse_if_suspended(&state.store, tenant).await?;
    // Resume only a conversation of this bot started from this origin; otherwise start anew
    // (the old one may have been cleared or deleted by retention). A new conversation is not
    // stored here: the token carries its id and resume hash, and its first message stores it.
    let resumed = match resume.filter(|r| r.len() <= 128) {
        Some(secret) => state
            .store
            .conversation_by_resume(tenant, bot.id, &sha256(secret.as_bytes()))
            .await?
            .filter(|c| c.origin == origin)
            .map(|c| (c, secret.to_owned())),
        None => None,
    };
    let (conversation, start, resume) = match resumed {
        Some((c, secret)) => (c.id, None, secret),
        None => {
            let secret = random_token("rs_");
            let hash = hex::encode(sha256(secret.as_bytes()));
            (ConversationId::new(), Some(hash), secret)
        }
    };
    let now = Timestamp::now().0 / 1000;
    let claims = WidgetClaims {
        tenant,
        bot: bot.id,
        conversation,
        origin,
        start: start.clone(),
        iat: now,
        exp: now + token::MAX_LIFETIME_SECS,
    };
    let body = SessionResponse {
        token: token::issue(&state.keys.token, &claims),
        expires_in: token::MAX_LIFETIME_SECS,
        conversation: start.is_none().then_some(conversation),
        resume,
        bot: BotPresentation {
            name: bot.settings.name,
            greeting: bot.settings.greeting,
            theme_color: bot.settings.theme_color,
            language: bot.settings.language.as_str(),
        },
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryMessage {
    pub id: String,
    /// `user` or `assistant`.
    #[schema(value_type = String)]
    pub role: MessageRole,
    pub content: String,
    /// `pending`, `complete` or `interrupted`.
    #[schema(value_type = String)]
    pub status: MessageStatus,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct History {
    pub messages: Vec<HistoryMessage>,
}

impl From<Message> for HistoryMessage {
    fn from(m: Message) -> Self {
        HistoryMessage {
            id: m.id.to_string(),
            role: m.role,
            content: m.content,
            status: m.status,
            created_at: m.created_at.to_rfc3339(),
        }
    }
}

/// The conversation's messages, oldest first.
#[utoipa::path(
    get,
    path = "/api/widget/v1/messages",
    tag = "widget",
    security(("session_token" = [])),
    responses(
        (status = 200, description = "The conversation so far", body = History),
        (status = 400, description = "`token_in_url`", body = ErrorBody),
        (status = 401, description = "`invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`origin_mismatch`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
) -> AppResult<Response> {
    limit_ip(&state, ip).await?;
    let messages: Vec<HistoryMessage> = match state
        .store
        .widget_history(claims.tenant, claims.scope())
        .await?
    {
        Scoped::Open(messages) => messages,
        Scoped::Suspended => return Err(SuspensionError::Suspended.into()),
        // Cleared or expired since the token was issued (or another bot's): nothing.
        Scoped::NoConversation => Vec::new(),
    }
    .into_iter()
    .filter(|m| m.role != MessageRole::System && m.status != MessageStatus::Failed)
    .map(Into::into)
    .collect();
    let mut resp = Json(History { messages }).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Delete the conversation and everything in it.
#[utoipa::path(
    delete,
    path = "/api/widget/v1/conversation",
    tag = "widget",
    security(("session_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`token_in_url`", body = ErrorBody),
        (status = 401, description = "`invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`origin_mismatch`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
pub async fn clear_conversation(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
) -> AppResult<StatusCode> {
    limit_ip(&state, ip).await?;
    match state
        .store
        .widget_clear(claims.tenant, claims.scope())
        .await?
    {
        Scoped::Suspended => Err(SuspensionError::Suspended.into()),
        // Clearing twice (or a conversation already gone) is the same as once.
        Scoped::Open(()) | Scoped::NoConversation => Ok(StatusCode::NO_CONTENT),
    }
}

/// The value of an open scope; a suspended workspace or a conversation gone (or another
/// bot's) as the error a widget endpoint answers.
pub fn scoped<T>(s: Scoped<T>) -> AppResult<T> {
    match s {
        Scoped::Open(v) => Ok(v),
        Scoped::Suspended => Err(SuspensionError::Suspended.into()),
        Scoped::NoConversation => Err(conversation_gone()),
    }
}

/// The token's conversation was cleared (or deleted by retention) since it was issued.
pub fn conversation_gone() -> AppError {
    AppError::NotFound(
        "conversation_gone",
        "This conversation was cleared. Start a new one.".into(),
    )
}
