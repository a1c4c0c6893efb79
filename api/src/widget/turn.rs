//! The turn between storage and upstream, after the handler (`chat.rs`) has stored the
//! question and the pending answer: resolve the key (the tenant's own, else the operator's
//! platform key), build the upstream request from the bot and the context, and drive the
//! streamed answer into the SSE channel while accumulating it, then finish the stored answer
//! as `complete` (with token usage), `interrupted` (stream broke or the end user left: the
//! partial answer is kept) or `failed` (no answer).
//!
//! If the end user goes away, the SSE channel closes, the driver drops the upstream stream
//! (which cancels the upstream request) and stores what it had. While streaming, the text so
//! far is saved into the pending row every second (and a heartbeat every two), so a process
//! that dies mid-stream leaves it for `recovery.rs` to end as `interrupted`.

use axum::response::sse::Event;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::mpsc;

use super::recovery::{HEARTBEAT_EVERY, SAVE_EVERY};
use crate::crypto::{self, Purpose};
use crate::knowledge::retrieve;
use crate::mistral::{ChatEvent, ChatMessage, ChatRequest, Role, UpstreamError};
use crate::model::{
    Bot, BotId, ConversationId, FinishedMessage, Message, MessageId, MessageRole, MessageStatus,
    Provider, ProviderKey, TenantId, TokenUsage,
};
use crate::state::AppState;

/// Why there is no answer, in words an end user understands.
#[derive(Debug)]
pub enum Failure {
    NoKey,
    Upstream(UpstreamError),
    Storage,
}

impl Failure {
    pub fn code(&self) -> &'static str {
        match self {
            Failure::NoKey => "no_api_key",
            Failure::Upstream(e) => e.code(),
            Failure::Storage => "unavailable",
        }
    }

    pub fn message(&self) -> String {
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
pub fn api_key(
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
pub async fn stored_api_key(state: &AppState, t: TenantId) -> Result<SecretString, Failure> {
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

/// The upstream request: the bot's system prompt, then the context the store read back
/// (already limited to the latest usable messages, oldest first).
pub fn chat_request(bot: &Bot, context: Vec<Message>) -> ChatRequest {
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

/// The bot, conversation and question of a turn: what grounds it in the bot's knowledge
/// libraries, and what an error names so a retry can point at the question.
#[derive(Debug, Clone, Copy)]
pub struct Grounding {
    pub bot: BotId,
    pub conversation: ConversationId,
    /// The stored question being answered (an error names it, so a retry can point at it).
    pub question: MessageId,
}

pub async fn drive_answer(
    state: AppState,
    t: TenantId,
    message: MessageId,
    key: Result<SecretString, Failure>,
    mut request: ChatRequest,
    grounding: Grounding,
    tx: mpsc::Sender<Event>,
) {
    let mut answer = String::new();
    let mut usage = TokenUsage::default();
    let mut citations = Vec::new();
    let _open = state.metrics.stream_opened();
    let started = std::time::Instant::now();
    let ending = async {
        let key = match key {
            Ok(k) => k,
            Err(f) => return Ending::Failed(f),
        };
        // A bot with libraries: numbered sources in the prompt, and a `sources` event before
        // the first delta (clients that do not know it ignore it).
        citations = retrieve::ground_turn(
            &state.store,
            &state.mistral,
            &key,
            t,
            grounding.bot,
            grounding.conversation,
            &mut request,
        )
        .await;
        if !citations.is_empty()
            && tx
                .send(event("sources", json!({ "sources": &citations })))
                .await
                .is_err()
        {
            return Ending::ClientGone;
        }
        let mut upstream = match state.mistral.chat_stream(&key, &request).await {
            Ok(s) => s,
            Err(e) => return Ending::Failed(Failure::Upstream(e)),
        };
        drop(key);
        let mut save = tokio::time::interval(SAVE_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut saved_len, mut saved_at) = (0, tokio::time::Instant::now());
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return Ending::ClientGone,
                item = upstream.next() => item,
                _ = save.tick() => {
                    // New text, or a heartbeat when there is none: one small UPDATE.
                    if answer.len() != saved_len || saved_at.elapsed() >= HEARTBEAT_EVERY {
                        if let Err(e) = state.store.save_partial(t, message, &answer).await {
                            tracing::warn!(error = %e, "saving the partial answer failed");
                        }
                        (saved_len, saved_at) = (answer.len(), tokio::time::Instant::now());
                    }
                    continue;
                }
            };
            match item {
                Some(Ok(ChatEvent::Delta(text))) => {
                    if answer.is_empty() {
                        state.metrics.first_token(started.elapsed());
                    }
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
    if let Ending::Failed(Failure::Upstream(e)) = &ending {
        state.metrics.upstream_error(e.code());
    }
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
    if stored.is_ok()
        && status != MessageStatus::Failed
        && !citations.is_empty()
        && let Err(e) = state.store.save_citations(t, message, &citations).await
    {
        tracing::error!(error = %e, "storing the answer's citations failed");
    }
    state.metrics.turn(match (&ending, status) {
        (Ending::ClientGone, _) => "client_gone",
        (_, MessageStatus::Complete) => "complete",
        (_, MessageStatus::Failed) => "failed",
        _ => "interrupted",
    });
    let last = match ending {
        Ending::Done if stored.is_ok() => event(
            "done",
            json!({ "message_id": message.to_string(), "status": "complete" }),
        ),
        Ending::Done => error_event(&Failure::Storage, grounding.question),
        Ending::Failed(f) => {
            tracing::warn!(code = f.code(), "answer failed");
            error_event(&f, grounding.question)
        }
        Ending::ClientGone => return,
    };
    let _ = tx.send(last).await;
}

/// The stream's error; `question_id` is what a retry names (`retry_of`), so the question is
/// stored once however often it is retried.
fn error_event(f: &Failure, question: MessageId) -> Event {
    event(
        "error",
        json!({
            "code": f.code(),
            "message": f.message(),
            "retry_after": f.retry_after(),
            "question_id": question.to_string(),
        }),
    )
}
