//! `/api/widget/v1`: session start/resume, history, clear; chat and attachments live in
//! `chat.rs`. CORS: preflights are answered for any origin (they grant nothing: no
//! credentials are ever allowed). A session is only issued to an origin the bot allows;
//! the refusal itself is readable so the widget can say "not enabled on this website".
//! A token used from an origin other than its own gets a 403 the page cannot read.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::client_ip::ClientIp;
use super::token::{self, TokenError, WidgetClaims};
use crate::app::AppState;
use crate::crypto::{random_token, sha256};
use crate::error::{ApiJson, AppError, AppResult};
use crate::model::{
    Bot, ConversationId, Message, MessageRole, MessageStatus, NewConversation, Timestamp,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/widget/v1/session", post(start_session))
        .route(
            "/api/widget/v1/messages",
            post(super::chat::send_message).get(history),
        )
        .route("/api/widget/v1/conversation", delete(clear_conversation))
        .merge(super::chat::attachments_router())
        .layer(axum::middleware::from_fn(cors))
}

/// Marks a response whose origin was refused: it must not carry CORS headers.
#[derive(Clone, Copy, Debug)]
pub struct OriginRefused;

async fn cors(req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if req.method() == Method::OPTIONS {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Some(origin) = origin {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = origin
        && resp.extensions().get::<OriginRefused>().is_none()
    {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

fn origin_refused(code: &'static str, message: String) -> Response {
    let mut resp = AppError::Forbidden(code, message).into_response();
    resp.extensions_mut().insert(OriginRefused);
    resp
}

/// The request's Origin, normalised like an allowed origin.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::ORIGIN)?.to_str().ok()?;
    crate::model::AllowedOrigin::parse(raw)
        .ok()
        .map(|o| o.as_str().to_owned())
}

/// The public URL's own origin (the preview page on Parlo itself is always allowed).
pub fn own_origin(state: &AppState) -> String {
    state.config.public_url.origin().ascii_serialization()
}

/// A verified widget token whose origin matches the request.
pub struct WidgetAuth(pub WidgetClaims);

impl FromRequestParts<AppState> for WidgetAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(q) = parts.uri.query()
            && q.split('&').any(|kv| {
                let k = kv.split('=').next().unwrap_or("");
                matches!(k, "token" | "access_token" | "auth" | "authorization")
            })
        {
            return Err(AppError::BadRequest(
                "token_in_url",
                "Tokens are accepted only in the Authorization header, never in a URL.".into(),
            )
            .into_response());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "invalid_token",
                    "A widget session token is required.".into(),
                )
                .into_response()
            })?;
        let claims =
            token::verify(&state.keys.token, token.trim(), Timestamp::now()).map_err(|e| {
                let (code, msg) = match e {
                    TokenError::Expired => (
                        "token_expired",
                        "The chat session has expired; start a new one.",
                    ),
                    _ => ("invalid_token", "The chat session token is not valid."),
                };
                AppError::Unauthorized(code, msg.into()).into_response()
            })?;
        let origin_ok = match request_origin(&parts.headers) {
            Some(o) => o == claims.origin,
            // Same-origin GETs carry no Origin header; only the preview on Parlo itself does that.
            None => claims.origin == own_origin(state),
        };
        if !origin_ok {
            return Err(origin_refused(
                "origin_mismatch",
                "This chat session belongs to another website.".into(),
            ));
        }
        Ok(WidgetAuth(claims))
    }
}

/// The rate-limit key of an end user's IP (hashed before it is stored).
pub fn ip_limit_key(ip: ClientIp) -> String {
    format!("widget-ip:{}", ip.0)
}

pub async fn limit_ip(state: &AppState, ip: ClientIp) -> AppResult<()> {
    state
        .limiter
        .hit(
            &ip_limit_key(ip),
            state.config.rate_limit_ip_per_minute,
            Duration::from_secs(60),
        )
        .await
        .map_err(|r| AppError::RateLimited {
            retry_after_secs: r.secs,
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    bot: String,
    #[serde(default)]
    resume: Option<String>,
}

#[derive(Serialize)]
struct SessionResponse {
    token: String,
    expires_in: i64,
    conversation: ConversationId,
    resume: String,
    bot: BotPresentation,
}

#[derive(Serialize)]
struct BotPresentation {
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

async fn start_session(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<Response, AppError> {
    limit_ip(&state, ip).await?;
    let Some(origin) = request_origin(&headers) else {
        return Ok(origin_refused(
            "origin_required",
            "The request has no valid Origin header; the widget must be loaded in a browser."
                .into(),
        ));
    };
    let tenant = Bot::tenant_of_public_id(&req.bot).ok_or_else(unknown_bot)?;
    let bot = state
        .store
        .bot_by_public_id(tenant, &req.bot)
        .await?
        .ok_or_else(unknown_bot)?;
    crate::lifecycle::suspension::refuse_if_suspended(&state.store, tenant).await?;
    let allowed = bot
        .settings
        .allowed_origins
        .iter()
        .any(|o| o.as_str() == origin)
        || origin == own_origin(&state);
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
    // Resume only a conversation of this bot started from this origin; otherwise start anew
    // (the old one may have been cleared or deleted by retention).
    let resumed = match req.resume.as_deref().filter(|r| r.len() <= 128) {
        Some(secret) => state
            .store
            .conversation_by_resume(tenant, bot.id, &sha256(secret.as_bytes()))
            .await?
            .filter(|c| c.origin == origin)
            .map(|c| (c, secret.to_owned())),
        None => None,
    };
    let (conversation, resume) = match resumed {
        Some(found) => found,
        None => {
            let secret = random_token("rs_");
            let c = state
                .store
                .create_conversation(
                    tenant,
                    &NewConversation {
                        bot_id: bot.id,
                        origin: origin.clone(),
                        resume_hash: sha256(secret.as_bytes()),
                    },
                )
                .await?;
            (c, secret)
        }
    };
    let now = Timestamp::now().0 / 1000;
    let claims = WidgetClaims {
        tenant,
        bot: bot.id,
        conversation: conversation.id,
        origin,
        iat: now,
        exp: now + token::MAX_LIFETIME_SECS,
    };
    let body = SessionResponse {
        token: token::issue(&state.keys.token, &claims),
        expires_in: token::MAX_LIFETIME_SECS,
        conversation: conversation.id,
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

#[derive(Serialize)]
pub struct HistoryMessage {
    pub id: String,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: String,
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

async fn history(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
) -> AppResult<Response> {
    limit_ip(&state, ip).await?;
    let messages: Vec<HistoryMessage> = state
        .store
        .messages(claims.tenant, claims.conversation)
        .await?
        .into_iter()
        .filter(|m| m.role != MessageRole::System && m.status != MessageStatus::Failed)
        .map(Into::into)
        .collect();
    let mut resp = Json(serde_json::json!({ "messages": messages })).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn clear_conversation(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
) -> AppResult<StatusCode> {
    limit_ip(&state, ip).await?;
    state
        .store
        .delete_conversation(claims.tenant, claims.conversation)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
