//! The Mistral client: streaming chat completions, OCR and key checks against the one
//! upstream the operator configured (`mistral_base_url`, the EU endpoint by default).
//!
//! It owns the wire format (request bodies, the SSE chunk stream, error bodies) and turns
//! every way an upstream call can fail into an [`UpstreamError`] whose message can be shown
//! to a person.
//!
//! It must never:
//! - log, format or return an API key — the key exists only inside an `Authorization`
//!   header value marked sensitive, and no error carries request headers or upstream text
//!   beyond Mistral's own short error message;
//! - connect anywhere but the operator-configured base URL — every URL is derived from it
//!   when the client is built, nothing a tenant or end user sends becomes part of a URL,
//!   redirects are never followed, and attachments travel inline as `data:` URLs so Mistral
//!   fetches nothing on anyone's behalf either;
//! - keep an upstream request alive that nobody reads: dropping a [`ChatStream`] drops the
//!   connection, which is how an end user leaving cancels the completion.

mod sse;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, Sleep};
use url::Url;

use sse::SseDecoder;

/// The OCR model every attachment is read with.
pub const OCR_MODEL: &str = "mistral-ocr-latest";

/// How much of an error response is read to find Mistral's message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much of a JSON response (OCR of a long PDF, the model list) is accepted.
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// The longest upstream message passed on in [`UpstreamError::BadRequest`].
const MAX_MESSAGE_CHARS: usize = 300;

/// How long the client waits. `read` bounds the wait for response headers and every gap
/// between two pieces of a streamed answer (not the whole answer, which may be long);
/// `ocr` bounds a whole OCR call, since Mistral answers it in one piece after reading
/// every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub ocr: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
            ocr: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
}

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

/// An attachment to read. `content_type` decides how it is sent: `application/pdf` as a
/// document, `image/*` as an image; anything else is refused before any request is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrInput {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub file_name: Option<String>,
}

/// Why an upstream call failed. `Display` is written for the person chatting or the
/// customer configuring a bot: it never contains a key, a URL or an internal cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No key was given (the workspace has none and no platform key applies).
    NoApiKey,
    /// Mistral refused the key (401/403), or it cannot be sent in a header at all.
    InvalidKey,
    /// Mistral's rate limit for this key (429), with its `Retry-After` when it sent one.
    RateLimited { retry_after_secs: Option<u64> },
    /// Mistral answered 5xx or an unexpected status, or could not be reached (`None`).
    Unavailable { status: Option<u16> },
    /// No answer, or no next piece of one, within the configured time.
    Timeout,
    /// Mistral refused the request (400/413/422); Mistral's own short message.
    BadRequest(String),
    /// Mistral's answer could not be read (not JSON, not the expected shape, not SSE).
    Malformed(String),
    /// The stream ended without `[DONE]`: the connection was cut or reset.
    Interrupted,
}

impl UpstreamError {
    /// A stable machine-readable code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::NoApiKey => "no_api_key",
            UpstreamError::InvalidKey => "invalid_api_key",
            UpstreamError::RateLimited { .. } => "upstream_rate_limited",
            UpstreamError::Unavailable { .. } => "upstream_unavailable",
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::BadRequest(_) => "upstream_bad_request",
            UpstreamError::Malformed(_) => "upstream_malformed",
            UpstreamError::Interrupted => "interrupted",
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            UpstreamError::RateLimited { retry_after_secs } => *retry_after_secs,
            _ => None,
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::NoApiKey => {
                write!(f, "No Mistral API key is configured for this assistant.")
            }
            UpstreamError::InvalidKey => write!(
                f,
                "The Mistral API key was rejected. Check the key in the workspace settings."
            ),
            UpstreamError::RateLimited {
                retry_after_secs: Some(s),
            } => write!(
                f,
                "Mistral's rate limit was reached. Try again in {s} second{}.",
                if *s == 1 { "" } else { "s" }
            ),
            UpstreamError::RateLimited {
                retry_after_secs: None,
            } => write!(f, "Mistral's rate limit was reached. Try again shortly."),
            UpstreamError::Unavailable { status: Some(s) } => write!(
                f,
                "Mistral is unavailable right now (HTTP {s}). Try again later."
            ),
            UpstreamError::Unavailable { status: None } => {
                write!(f, "Mistral could not be reached. Try again later.")
            }
            UpstreamError::Timeout => write!(f, "Mistral took too long to answer. Try again."),
            UpstreamError::BadRequest(m) => write!(f, "Mistral refused the request: {m}"),
            UpstreamError::Malformed(m) => {
                write!(f, "Mistral sent an answer that could not be read ({m}).")
            }
            UpstreamError::Interrupted => write!(f, "The answer from Mistral was cut off."),
        }
    }
}

impl std::error::Error for UpstreamError {}

struct Endpoints {
    base: Url,
    chat: Url,
    ocr: Url,
    models: Url,
}

/// A client for one operator-configured Mistral endpoint. Cheap to clone: clones share
/// the connection pool.
#[derive(Clone)]
pub struct MistralClient {
    http: reqwest::Client,
    endpoints: Arc<Endpoints>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for MistralClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MistralClient")
            .field("base_url", &self.endpoints.base.as_str())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl MistralClient {
    /// `base` is the API root (`https://api.mistral.ai`); a path prefix, as behind an
    /// egress gateway, is kept: `https://gw.example/mistral` calls
    /// `https://gw.example/mistral/v1/chat/completions`.
    pub fn new(base: Url, timeouts: Timeouts) -> Self {
        let mut root = base.clone();
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        root.set_query(None);
        root.set_fragment(None);
        let join = |p: &str| root.join(p).expect("a relative path joins onto a base URL");
        let endpoints = Endpoints {
            chat: join("v1/chat/completions"),
            ocr: join("v1/ocr"),
            models: join("v1/models"),
            base,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            // A redirect could point anywhere; the configured endpoint is the only target.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parlo/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect(
                "the HTTP client builds (rustls with bundled roots needs nothing from the system)",
            );
        Self {
            http,
            endpoints: Arc::new(endpoints),
            timeouts,
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.endpoints.base
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Starts a streamed chat completion. Errors before the first byte of the answer
    /// (refused key, rate limit, upstream down) come back here; errors after it come
    /// through the stream.
    pub async fn chat_stream(
        &self,
        api_key: &SecretString,
        req: &ChatRequest,
    ) -> Result<ChatStream, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            model: &'a str,
            messages: &'a [ChatMessage],
            stream: bool,
        }
        let request = self
            .http
            .post(self.endpoints.chat.clone())
            .header(AUTHORIZATION, bearer(api_key)?)
            .header(ACCEPT, "text/event-stream")
            .json(&Body {
                model: &req.model,
                messages: &req.messages,
                stream: true,
            });
        let response = tokio::time::timeout(self.timeouts.read, request.send())
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(request_error)?;
        let response = self.check_status(response).await?;
        let is_event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_event_stream {
            return Err(UpstreamError::Malformed(
                "the answer is not an event stream".to_owned(),
            ));
        }
        Ok(ChatStream::new(response, self.timeouts.read))
    }

    /// Reads a PDF or an image and returns the markdown of all its pages, in page order,
    /// separated by blank lines.
    pub async fn ocr(
        &self,
        api_key: &SecretString,
        input: OcrInput,
    ) -> Result<String, UpstreamError> {
        let auth = bearer(api_key)?;
        let mime = input
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let data_url = |mime: &str| format!("data:{mime};base64,{}", B64.encode(&input.bytes));
        let document = if mime == "application/pdf" {
            serde_json::json!({
                "type": "document_url",
                "document_url": data_url(&mime),
                "document_name": input.file_name,
            })
        } else if is_image_type(&mime) {
            serde_json::json!({ "type": "image_url", "image_url": data_url(&mime) })
        } else {
            return Err(UpstreamError::BadRequest(
                "only PDF documents and images can be read".to_owned(),
            ));
        };
        let body = serde_json::json!({
            "model": OCR_MODEL,
            "document": document,
            "include_image_base64": false,
        });
        let response = self
            .http
            .post(self.endpoints.ocr.clone())
            .header(AUTHORIZATION, auth)
            .timeout(self.timeouts.ocr)
            .json(&body)
            .send()
            .await
            .map_err(request_error)?;
        let response = self.check_status(response).await?;
        let bytes = read_limited(response, MAX_JSON_BODY).await?;

        #[derive(Deserialize)]
        struct OcrResponse {
            pages: Vec<Page>,
        }
        #[derive(Deserialize)]
        struct Page {
            index: u64,
            markdown: String,
        }
        let mut parsed: OcrResponse = serde_json::from_slice(&bytes)
            .map_err(|e| UpstreamError::Malformed(describe_json_error("OCR answer", &e)))?;
        parsed.pages.sort_by_key(|p| p.index);
        let pages: Vec<&str> = parsed.pages.iter().map(|p| p.markdown.as_str()).collect();
        Ok(pages.join("\n\n"))
    }

    /// Asks Mistral whether it accepts `api_key` (by listing models), so a customer learns
    /// about a mistyped key when saving it rather than when a visitor first asks something.
    pub async fn check_key(&self, api_key: &SecretString) -> Result<(), UpstreamError> {
        let response = self
            .http
            .get(self.endpoints.models.clone())
            .header(AUTHORIZATION, bearer(api_key)?)
            .timeout(self.timeouts.read)
            .send()
            .await
            .map_err(request_error)?;
        let response = self.check_status(response).await?;
        // Reading the body to its end lets the connection go back to the pool.
        read_limited(response, MAX_JSON_BODY).await.map(drop)
    }

    async fn check_status(&self, response: Response) -> Result<Response, UpstreamError> {
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(response);
        }
        let retry_after_secs = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = tokio::time::timeout(self.timeouts.read, read_limited(response, MAX_ERROR_BODY))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(error_for_status(status, retry_after_secs, &body))
    }
}

fn bearer(api_key: &SecretString) -> Result<HeaderValue, UpstreamError> {
    let key = api_key.expose_secret();
    if key.trim().is_empty() {
        return Err(UpstreamError::NoApiKey);
    }
    let mut value =
        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| UpstreamError::InvalidKey)?;
    value.set_sensitive(true);
    Ok(value)
}

fn is_image_type(mime: &str) -> bool {
    mime.strip_prefix("image/").is_some_and(|sub| {
        !sub.is_empty()
            && sub
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}

fn request_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unavailable { status: None }
    }
}

async fn read_limited(response: Response, limit: usize) -> Result<Bytes, UpstreamError> {
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout
            } else {
                UpstreamError::Interrupted
            }
        })?;
        if out.len() + chunk.len() > limit {
            return Err(UpstreamError::Malformed(format!(
                "the answer is larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

/// `Retry-After` is either delay-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(u64::try_from(secs).unwrap_or(0))
}

fn error_for_status(
    status: StatusCode,
    retry_after_secs: Option<u64>,
    body: &[u8],
) -> UpstreamError {
    match status.as_u16() {
        401 | 403 => UpstreamError::InvalidKey,
        429 => UpstreamError::RateLimited { retry_after_secs },
        408 => UpstreamError::Timeout,
        400 | 413 | 415 | 422 => UpstreamError::BadRequest(
            error_message(body).unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
        ),
        s => UpstreamError::Unavailable { status: Some(s) },
    }
}

/// Mistral's error message from its error body. Seen shapes: `{"message": "…"}`,
/// `{"object": "error", "message": "…", "type": "…"}`, `{"detail": "…"}` and validation
/// errors whose message or detail is a list of `{"msg": "…", "loc": [...]}`. Only the
/// `msg` and `loc` parts are kept: the validation error's `input` echoes the request.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value
        .get("message")
        .and_then(message_text)
        .or_else(|| value.get("detail").and_then(message_text))?;
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE_CHARS)
        .collect();
    (!message.trim().is_empty()).then_some(message)
}

fn message_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("detail").and_then(message_text),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|item| {
                    let msg = item.get("msg")?.as_str()?;
                    let loc: Vec<String> = item
                        .get("loc")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|p| match p {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    Some(if loc.is_empty() {
                        msg.to_owned()
                    } else {
                        format!("{msg} ({})", loc.join("."))
                    })
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

fn describe_json_error(what: &str, e: &serde_json::Error) -> String {
    // The error's own text may quote the upstream payload; its category and position don't.
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "not the expected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!(
        "{what} is {kind} at line {} column {}",
        e.line(),
        e.column()
    )
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
    fn new(response: Response, read_timeout: Duration) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_clients_can_move_between_tasks() {
        fn send_static<T: Send + Sync + 'static>() {}
        fn send_unpin<T: Send + Unpin + 'static>() {}
        send_static::<MistralClient>();
        send_static::<UpstreamError>();
        send_unpin::<ChatStream>();
    }

    #[test]
    fn error_messages_are_taken_from_each_known_body_shape() {
        let cases: [(&str, Option<&str>); 6] = [
            (
                r#"{"message":"Unauthorized","request_id":"abc"}"#,
                Some("Unauthorized"),
            ),
            (
                r#"{"object":"error","message":"Invalid model: x","type":"invalid_model","param":null,"code":"1500"}"#,
                Some("Invalid model: x"),
            ),
            (r#"{"detail":"Unauthorized"}"#, Some("Unauthorized")),
            (
                r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{"secret":"echo"}}]},"type":"invalid_request_message_error"}"#,
                Some("Field required (body.model)"),
            ),
            ("not json", None),
            (r#"{"message":""}"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                error_message(body.as_bytes()).as_deref(),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn long_upstream_messages_are_cut() {
        let body = serde_json::json!({ "message": "x".repeat(5000) }).to_string();
        assert_eq!(
            error_message(body.as_bytes()).unwrap().len(),
            MAX_MESSAGE_CHARS
        );
    }

    #[test]
    fn statuses_map_to_errors() {
        let e = |s: u16| error_for_status(StatusCode::from_u16(s).unwrap(), Some(3), b"{}");
        assert_eq!(e(401), UpstreamError::InvalidKey);
        assert_eq!(e(403), UpstreamError::InvalidKey);
        assert_eq!(
            e(429),
            UpstreamError::RateLimited {
                retry_after_secs: Some(3)
            }
        );
        assert_eq!(e(422), UpstreamError::BadRequest("HTTP 422".to_owned()));
        assert_eq!(e(500), UpstreamError::Unavailable { status: Some(500) });
        assert_eq!(e(503), UpstreamError::Unavailable { status: Some(503) });
        assert_eq!(e(307), UpstreamError::Unavailable { status: Some(307) });
        assert_eq!(e(404), UpstreamError::Unavailable { status: Some(404) });
        assert_eq!(e(408), UpstreamError::Timeout);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 17 "), Some(17));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0));
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let http_date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let secs = parse_retry_after(&http_date).unwrap();
        assert!((118..=120).contains(&secs), "{secs}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn an_empty_key_is_no_key_and_a_key_that_cannot_be_a_header_is_invalid() {
        assert_eq!(
            bearer(&SecretString::from("  ")).unwrap_err(),
            UpstreamError::NoApiKey
        );
        assert_eq!(
            bearer(&SecretString::from("abc\ndef")).unwrap_err(),
            UpstreamError::InvalidKey
        );
        let value = bearer(&SecretString::from("sk-123")).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value, "Bearer sk-123");
        assert_eq!(format!("{value:?}"), "Sensitive");
    }

    #[test]
    fn codes_are_stable_and_messages_never_carry_a_key() {
        let all = [
            UpstreamError::NoApiKey,
            UpstreamError::InvalidKey,
            UpstreamError::RateLimited {
                retry_after_secs: Some(1),
            },
            UpstreamError::RateLimited {
                retry_after_secs: None,
            },
            UpstreamError::Unavailable { status: Some(502) },
            UpstreamError::Unavailable { status: None },
            UpstreamError::Timeout,
            UpstreamError::BadRequest("Invalid model".to_owned()),
            UpstreamError::Malformed("a chunk is not valid JSON".to_owned()),
            UpstreamError::Interrupted,
        ];
        let codes: Vec<&str> = all.iter().map(UpstreamError::code).collect();
        assert_eq!(
            codes,
            [
                "no_api_key",
                "invalid_api_key",
                "upstream_rate_limited",
                "upstream_rate_limited",
                "upstream_unavailable",
                "upstream_unavailable",
                "upstream_timeout",
                "upstream_bad_request",
                "upstream_malformed",
                "interrupted",
            ]
        );
        assert_eq!(
            all[2].to_string(),
            "Mistral's rate limit was reached. Try again in 1 second."
        );
        for e in &all {
            assert!(!e.to_string().contains("Bearer"));
        }
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_drop_query_and_fragment() {
        let c = MistralClient::new(
            Url::parse("https://gw.example/mistral?x=1#f").unwrap(),
            Timeouts::default(),
        );
        assert_eq!(
            c.endpoints.chat.as_str(),
            "https://gw.example/mistral/v1/chat/completions"
        );
        let c = MistralClient::new(
            Url::parse("https://api.mistral.ai").unwrap(),
            Timeouts::default(),
        );
        assert_eq!(c.endpoints.ocr.as_str(), "https://api.mistral.ai/v1/ocr");
        assert_eq!(
            c.endpoints.models.as_str(),
            "https://api.mistral.ai/v1/models"
        );
    }

    #[test]
    fn image_types_are_recognised_and_nothing_else() {
        assert!(is_image_type("image/png"));
        assert!(is_image_type("image/webp"));
        assert!(!is_image_type("image/"));
        assert!(!is_image_type("image/png,evil"));
        assert!(!is_image_type("text/html"));
    }
}
