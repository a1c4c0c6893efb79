//! Sending a message and streaming the answer; OCR attachments.
//!
//! Order of events for one turn, each step durable before the next:
//! 1. both rate-limit counters (end user's IP, conversation) are counted in one round trip;
//! 2. one transaction ([`Store::begin_turn`]) refuses a suspended workspace or a deleted bot,
//!    stores the user's message and an empty `pending` assistant message (before any upstream
//!    call), and reads the bot, the latest 40 usable messages and the tenant's key;
//! 3. a driver task streams the upstream answer into an SSE channel, accumulating it;
//! 4. the assistant message is finished as `complete` (with token usage), `interrupted`
//!    (stream broke or the end user left: the partial answer is kept) or `failed` (no answer).
//!
//! If the end user goes away, the SSE channel closes, the driver drops the upstream stream
//! (which cancels the upstream request) and stores what it had.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::api::{WidgetAuth, ip_limit_key};
use super::client_ip::ClientIp;
use crate::app::AppState;
use crate::crypto::{self, Purpose, sha256};
use crate::error::{ApiJson, AppError, AppResult};
use crate::mistral::{ChatEvent, ChatMessage, ChatRequest, OcrInput, Role, UpstreamError};
use crate::model::*;
use crate::ratelimit::Limit;
use crate::storage::*;

/// Longest message an end user may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// How many earlier messages are sent upstream as context.
const CONTEXT_MESSAGES: u32 = 40;
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    content: String,
}

/// The end user's IP and conversation limits, counted in one round trip.
async fn limit_turn(state: &AppState, ip: ClientIp, conversation: ConversationId) -> AppResult<()> {
    let minute = Duration::from_secs(60);
    let (ip_key, conversation_key) = (ip_limit_key(ip), format!("widget-conv:{conversation}"));
    state
        .limiter
        .hit_all(&[
            Limit {
                key: &ip_key,
                limit: state.config.rate_limit_ip_per_minute,
                window: minute,
            },
            Limit {
                key: &conversation_key,
                limit: state.config.rate_limit_conversation_per_minute,
                window: minute,
            },
        ])
        .await
        .map_err(|r| AppError::RateLimited {
            retry_after_secs: r.secs,
        })
}

/// Why there is no answer, in words an end user understands.
#[derive(Debug)]
enum Failure {
    NoKey,
    Upstream(UpstreamError),
    Storage,
}

impl Failure {
    fn code(&self) -> &'static str {
        match self {
            Failure::NoKey => "no_api_key",
            Failure::Upstream(e) => e.code(),
            Failure::Storage => "unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::NoKey => {
                "This assistant is not set up yet (no API key). Please try again later.".into()
            }
            Failure::Upstream(e) => e.to_string(),
            Failure::Storage => {
                "The assistant is temporarily unavailable. Please try again.".into()
            }
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Failure::Upstream(UpstreamError::RateLimited { retry_after_secs }) => *retry_after_secs,
            _ => None,
        }
    }
}

/// The tenant's own key (as read with the turn), else the operator's platform key, else
/// `NoKey`.
fn api_key(
    state: &AppState,
    t: TenantId,
    stored: Option<ProviderKey>,
) -> Result<SecretString, Failure> {
    match stored {
        Some(k) => crypto::open(
            &state.keys.master,
            Purpose::ProviderKey(t, Provider::Mistral),
            &k.sealed,
        )
        .map_err(|e| {
            tracing::error!(tenant = %t, error = %e, "a stored provider key cannot be opened");
            Failure::NoKey
        }),
        None => state
            .config
            .platform_mistral_key
            .clone()
            .ok_or(Failure::NoKey),
    }
}

/// Reads the tenant's key on its own (for OCR, which has no turn).
async fn stored_api_key(state: &AppState, t: TenantId) -> Result<SecretString, Failure> {
    match state.store.provider_key(t, Provider::Mistral).await {
        Ok(k) => api_key(state, t, k),
        Err(e) => {
            tracing::error!(error = %e, "reading the provider key failed");
            Err(Failure::Storage)
        }
    }
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

pub async fn send_message(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
    ApiJson(req): ApiJson<SendRequest>,
) -> AppResult<Response> {
    limit_turn(&state, ip, claims.conversation).await?;
    let content = req.content.trim();
    if content.is_empty() {
        return Err(AppError::Invalid("Type a message first.".into()));
    }
    if content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::Invalid(format!(
            "A message has at most {MAX_MESSAGE_CHARS} characters."
        )));
    }
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
                content: content.to_owned(),
                provider: Provider::Mistral,
                context: CONTEXT_MESSAGES,
            },
        )
        .await?
    {
        TurnStart::Started(turn) => *turn,
        TurnStart::Suspended => return Err(crate::lifecycle::suspension::suspended_error()),
        TurnStart::NoBot => {
            return Err(AppError::NotFound(
                "unknown_bot",
                "This assistant no longer exists.".into(),
            ));
        }
        TurnStart::NoConversation => return Err(conversation_gone()),
    };
    let request = chat_request(&turn.bot, turn.context);
    let key = api_key(&state, t, turn.key);
    let pending = turn.answer;
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(drive_answer(state, t, pending, key, request, tx));
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

fn conversation_gone() -> AppError {
    AppError::NotFound(
        "conversation_gone",
        "This conversation was cleared. Start a new one.".into(),
    )
}

/// Stores what the end user said (typed, or read from an attachment) in the token's
/// conversation; a conversation cleared in the meantime is `conversation_gone`.
async fn append_user_message(
    state: &AppState,
    claims: &super::token::WidgetClaims,
    content: String,
) -> AppResult<Message> {
    let m = NewMessage {
        conversation_id: claims.conversation,
        role: MessageRole::User,
        content,
        status: MessageStatus::Complete,
    };
    match state.store.append_message(claims.tenant, &m).await {
        Err(StoreError::NotFound) => Err(conversation_gone()),
        other => Ok(other?),
    }
}

/// The upstream request: the bot's system prompt, then the context the store read back
/// (already limited to the latest usable messages, oldest first).
fn chat_request(bot: &Bot, context: Vec<Message>) -> ChatRequest {
    let mut messages = Vec::with_capacity(context.len() + 1);
    if !bot.settings.system_prompt.is_empty() {
        messages.push(ChatMessage {
            role: Role::System,
            content: bot.settings.system_prompt.clone(),
        });
    }
    messages.extend(context.into_iter().map(|m| ChatMessage {
        role: match m.role {
            MessageRole::User => Role::User,
            MessageRole::Assistant => Role::Assistant,
            MessageRole::System => Role::System,
        },
        content: m.content,
    }));
    ChatRequest {
        model: bot.settings.model.clone(),
        messages,
    }
}

enum Ending {
    Done,
    ClientGone,
    Failed(Failure),
}

async fn drive_answer(
    state: AppState,
    t: TenantId,
    message: MessageId,
    key: Result<SecretString, Failure>,
    request: ChatRequest,
    tx: mpsc::Sender<Event>,
) {
    let mut answer = String::new();
    let mut usage = TokenUsage::default();
    let ending = async {
        let key = match key {
            Ok(k) => k,
            Err(f) => return Ending::Failed(f),
        };
        let mut upstream = match state.mistral.chat_stream(&key, &request).await {
            Ok(s) => s,
            Err(e) => return Ending::Failed(Failure::Upstream(e)),
        };
        drop(key);
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return Ending::ClientGone,
                item = upstream.next() => item,
            };
            match item {
                Some(Ok(ChatEvent::Delta(text))) => {
                    answer.push_str(&text);
                    if tx
                        .send(event("delta", json!({ "text": text })))
                        .await
                        .is_err()
                    {
                        return Ending::ClientGone;
                    }
                }
                Some(Ok(ChatEvent::Usage {
                    prompt_tokens,
                    completion_tokens,
                })) => {
                    usage = TokenUsage {
                        prompt_tokens: Some(prompt_tokens),
                        completion_tokens: Some(completion_tokens),
                    };
                }
                Some(Ok(ChatEvent::Done)) => return Ending::Done,
                Some(Err(e)) => return Ending::Failed(Failure::Upstream(e)),
                None => return Ending::Failed(Failure::Upstream(UpstreamError::Interrupted)),
            }
        }
    }
    .await;
    // Dropping the upstream stream above cancelled the upstream request if it was running.
    let status = match &ending {
        Ending::Done => MessageStatus::Complete,
        Ending::Failed(_) if answer.is_empty() => MessageStatus::Failed,
        Ending::Failed(_) | Ending::ClientGone => MessageStatus::Interrupted,
    };
    let stored = state
        .store
        .finish_message(
            t,
            message,
            &FinishedMessage {
                content: answer,
                status,
                usage,
            },
        )
        .await;
    if let Err(e) = &stored {
        tracing::error!(error = %e, "storing the answer failed");
    }
    let last = match ending {
        Ending::Done if stored.is_ok() => event(
            "done",
            json!({ "message_id": message.to_string(), "status": "complete" }),
        ),
        Ending::Done => error_event(&Failure::Storage),
        Ending::Failed(f) => {
            tracing::warn!(code = f.code(), "answer failed");
            error_event(&f)
        }
        Ending::ClientGone => return,
    };
    let _ = tx.send(last).await;
}

fn error_event(f: &Failure) -> Event {
    event(
        "error",
        json!({ "code": f.code(), "message": f.message(), "retry_after": f.retry_after() }),
    )
}

pub fn attachments_router() -> Router<AppState> {
    Router::new().route(
        "/api/widget/v1/attachments",
        post(upload_attachment).layer(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES + 64 * 1024)),
    )
}

/// The content type a file really has, from its first bytes; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    if cleaned.trim().is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

async fn upload_attachment(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
    mut multipart: Multipart,
) -> AppResult<Response> {
    limit_turn(&state, ip, claims.conversation).await?;
    let too_large = || AppError::PayloadTooLarge;
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            AppError::BadRequest("bad_upload", "The upload could not be read.".into())
        }
    })? {
        if field.name() == Some("file") {
            let name = clean_file_name(field.file_name().unwrap_or("attachment"));
            let bytes = field.bytes().await.map_err(|_| too_large())?;
            file = Some((name, bytes));
            break;
        }
    }
    let (file_name, bytes) = file.ok_or_else(|| {
        AppError::BadRequest("no_file", "Choose an image or a PDF to attach.".into())
    })?;
    if bytes.len() > MAX_ATTACHMENT_BYTES {
        return Err(too_large());
    }
    let content_type = sniff(&bytes).ok_or_else(|| {
        AppError::UnsupportedMediaType(
            "Only images (PNG, JPEG, WebP) and PDF files can be attached.".into(),
        )
    })?;
    let t = claims.tenant;
    if state
        .store
        .conversation(t, claims.conversation)
        .await?
        .is_none()
    {
        return Err(conversation_gone());
    }
    let attachment = state
        .store
        .add_attachment(
            t,
            &NewAttachment {
                conversation_id: claims.conversation,
                message_id: None,
                file_name: file_name.clone(),
                content_type: content_type.into(),
                size_bytes: bytes.len() as i64,
                sha256: sha256(&bytes),
            },
        )
        .await?;
    let key = stored_api_key(&state, t)
        .await
        .map_err(|f| AppError::Upstream(f.code(), f.message()))?;
    let text = state
        .mistral
        .ocr(
            &key,
            OcrInput {
                content_type: content_type.into(),
                bytes: bytes.to_vec(),
                file_name: Some(file_name.clone()),
            },
        )
        .await
        .map_err(|e| match e {
            UpstreamError::RateLimited { retry_after_secs } => AppError::RateLimited {
                retry_after_secs: retry_after_secs.unwrap_or(30),
            },
            other => AppError::Upstream(other.code(), other.to_string()),
        })?;
    append_user_message(&state, &claims, format!("Attached {file_name}:\n\n{text}")).await?;
    Ok(axum::Json(json!({
        "attachment": { "id": attachment.id.to_string(), "file_name": attachment.file_name },
        "text": text,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_trusts_bytes_not_names() {
        assert_eq!(sniff(b"%PDF-1.7 ..."), Some("application/pdf"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff(b"MZ\x90\x00"), None);
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\x\\scan\u{0}.pdf"), "scan.pdf");
        assert_eq!(clean_file_name(""), "attachment");
    }
}
