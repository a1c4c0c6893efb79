//! [`ChatStream`]: a streamed chat completion read as Mistral sends it — SSE events
//! (decoded by `sse.rs`) holding JSON chunks — turned into [`ChatEvent`]s. It bounds every
//! gap between two pieces of the answer, tells a cut connection from a finished answer
//! (`[DONE]`), and lets a finished body's connection go back to the pool.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Response;
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

use super::error::{UpstreamError, describe_json_error};
use super::sse::SseDecoder;

/// One step of a streamed answer. A successful stream yields deltas, at most one usage
/// report and then `Done`, after which it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    Delta(String),
    Usage {
        prompt_tokens: i64,
        completion_tokens: i64,
    },
    Done,
}

/// How long the rest of a finished answer's body (the end of its chunked encoding) is
/// waited for in the background so the connection can be reused.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A streamed chat completion. Yields [`ChatEvent`]s; after `Done` or an error it ends.
/// Dropping it closes the upstream connection and so cancels the completion.
pub struct ChatStream {
    /// `None` once the body has ended, been given up, or been handed to [`drain`].
    body: Option<BodyStream>,
    decoder: SseDecoder,
    /// Decoded but not yet taken; an error is queued behind the deltas before it.
    pending: VecDeque<Result<ChatEvent, UpstreamError>>,
    idle: Pin<Box<Sleep>>,
    read_timeout: Duration,
    /// `[DONE]` or an error was seen: nothing more is read.
    finished: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("finished", &self.finished)
            .field("pending", &self.pending.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
    object: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct WireChoice {
    delta: Option<WireDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    content: Option<WireContent>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    /// Reasoning models send typed parts; only `text` parts are part of the answer.
    Parts(Vec<WirePart>),
}

#[derive(Deserialize)]
struct WirePart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: i64,
    completion_tokens: i64,
}

impl ChatStream {
    pub(super) fn new(response: Response, read_timeout: Duration) -> Self {
        Self {
            body: Some(Box::pin(response.bytes_stream())),
            decoder: SseDecoder::new(),
            pending: VecDeque::new(),
            idle: Box::pin(tokio::time::sleep(read_timeout)),
            read_timeout,
            finished: false,
        }
    }

    fn fail(&mut self, e: UpstreamError) {
        self.finished = true;
        // Drop the connection now rather than when the stream is dropped.
        self.body = None;
        self.pending.push_back(Err(e));
    }

    /// Turns one event's data into chat events.
    fn handle(&mut self, data: &str) -> Result<(), UpstreamError> {
        if data.trim() == "[DONE]" {
            self.pending.push_back(Ok(ChatEvent::Done));
            self.finished = true;
            // Whether or not the caller polls again, the connection goes back to the pool.
            if let Some(body) = self.body.take() {
                tokio::spawn(drain(body));
            }
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data)
            .map_err(|e| UpstreamError::Malformed(describe_json_error("a chunk", &e)))?;
        if chunk.object.as_deref() == Some("error") {
            return Err(match chunk.kind.as_deref() {
                Some("rate_limited") => UpstreamError::RateLimited {
                    retry_after_secs: None,
                },
                _ => UpstreamError::Unavailable { status: None },
            });
        }
        for choice in chunk.choices {
            let text = match choice.delta.and_then(|d| d.content) {
                Some(WireContent::Text(t)) => t,
                Some(WireContent::Parts(parts)) => parts
                    .into_iter()
                    .filter(|p| p.kind == "text")
                    .filter_map(|p| p.text)
                    .collect(),
                None => String::new(),
            };
            if !text.is_empty() {
                self.pending.push_back(Ok(ChatEvent::Delta(text)));
            }
            if choice.finish_reason.as_deref() == Some("error") {
                return Err(UpstreamError::Interrupted);
            }
        }
        if let Some(u) = chunk.usage {
            self.pending.push_back(Ok(ChatEvent::Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            }));
        }
        Ok(())
    }

    /// The body ended: a final `[DONE]` without its blank line still counts, anything else
    /// unfinished means the answer was cut off.
    fn body_ended(&mut self) -> Result<(), UpstreamError> {
        let incomplete = self
            .decoder
            .finish()
            .map_err(|e| UpstreamError::Malformed(e.to_string()))?;
        while let Some(data) = self.decoder.next_event() {
            if !self.finished {
                self.handle(&data)?;
            }
        }
        if !self.finished {
            match incomplete {
                Some(data) if data.trim() == "[DONE]" => self.handle(&data)?,
                _ => return Err(UpstreamError::Interrupted),
            }
        }
        Ok(())
    }
}

/// Reads what is left of a finished answer's body so the connection can be reused; gives up
/// (closing the connection) after [`DRAIN_GRACE`].
async fn drain(mut body: BodyStream) {
    let rest = async { while let Some(Ok(_)) = body.next().await {} };
    let _ = tokio::time::timeout(DRAIN_GRACE, rest).await;
}

impl Stream for ChatStream {
    type Item = Result<ChatEvent, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.pending.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if let Some(data) = this.decoder.next_event() {
                if let Err(e) = this.handle(&data) {
                    this.fail(e);
                }
                continue;
            }
            let Some(body) = this.body.as_mut() else {
                // Unreachable: the body is only let go of once the stream is finished.
                this.fail(UpstreamError::Interrupted);
                continue;
            };
            match body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    let deadline = Instant::now() + this.read_timeout;
                    this.idle.as_mut().reset(deadline);
                    if let Err(e) = this.decoder.feed(&bytes) {
                        this.fail(UpstreamError::Malformed(e.to_string()));
                    }
                }
                Poll::Ready(Some(Err(e))) => this.fail(if e.is_timeout() {
                    UpstreamError::Timeout
                } else {
                    UpstreamError::Interrupted
                }),
                Poll::Ready(None) => {
                    this.body = None;
                    if let Err(e) = this.body_ended() {
                        this.fail(e);
                    }
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        this.fail(UpstreamError::Timeout);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
