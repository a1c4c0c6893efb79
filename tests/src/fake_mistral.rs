//! A faithful fake of the Mistral API on loopback, for tests and benchmarks: the same
//! paths, the same SSE framing (`data: {chunk}` events, a usage chunk, `data: [DONE]`), the
//! same error statuses and bodies. It accepts only the keys it was told about, records every
//! request for assertions, and can misbehave on demand (see [`Fault`]).
//!
//! It is built to hold thousands of concurrent streams: a stream is a queue of prepared
//! frames and a timer, nothing more.
//!
//! Token counts are deterministic: `prompt_tokens` is the number of whitespace-separated
//! words in all messages, `completion_tokens` the number of content chunks in the answer.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

/// Misbehaviour on demand; stays in force until [`FakeMistral::clear_fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every request is refused with 401, whatever its key.
    Status401,
    /// Every request is rate limited (429), with a `Retry-After` header when given.
    Status429 { retry_after: Option<u64> },
    /// Every request fails with 500.
    Status500,
    /// Every request is redirected (307) to `location`.
    Redirect { location: String },
    /// The stream sends `after_chunks` content chunks, then the connection is closed
    /// without `[DONE]` (nor the end of the chunked body).
    CutMidStream { after_chunks: usize },
    /// The stream sends `after_chunks` content chunks, then a `data:` line of broken JSON,
    /// then carries on as if nothing happened.
    MalformedChunk { after_chunks: usize },
    /// The stream sends `after_chunks` content chunks, then nothing, keeping the connection
    /// open until the client goes away.
    Stall { after_chunks: usize },
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body, or `Value::Null` when there was none or it was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }
}

/// What happened to the streamed answers the fake has started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub started: u64,
    /// Sent to the end, `[DONE]` included.
    pub completed: u64,
    /// Ended on purpose by [`Fault::CutMidStream`].
    pub cut: u64,
    /// Abandoned because the client went away before the end.
    pub dropped: u64,
}

impl StreamStats {
    pub fn open(&self) -> u64 {
        self.started - self.completed - self.cut - self.dropped
    }
}

struct Settings {
    keys: HashSet<String>,
    reply: Arc<[String]>,
    chunk_delay: Duration,
    first_token_delay: Duration,
    fragment_size: Option<usize>,
    fault: Option<Fault>,
    ocr_pages: Option<Vec<String>>,
    ocr_failure: Option<String>,
}

struct Shared {
    settings: Mutex<Settings>,
    connections: AtomicU64,
    requests: Mutex<Vec<RecordedRequest>>,
    stats: watch::Sender<StreamStats>,
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake. Dropping it stops accepting connections.
pub struct FakeMistral {
    /// The API root to configure a client with (`http://127.0.0.1:PORT/`).
    pub base_url: Url,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeMistral {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub const DEFAULT_REPLY: &str = "Hello from the fake Mistral.";

impl FakeMistral {
    pub async fn start() -> FakeMistral {
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings {
                keys: HashSet::new(),
                reply: split_reply(DEFAULT_REPLY).into(),
                chunk_delay: Duration::ZERO,
                first_token_delay: Duration::ZERO,
                fragment_size: None,
                fault: None,
                ocr_pages: None,
                ocr_failure: None,
            }),
            connections: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            stats: watch::Sender::new(StreamStats::default()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/ocr", post(ocr))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .fallback(not_found)
            // Mistral takes documents up to 50 MB; base64 makes them a third larger.
            .layer(DefaultBodyLimit::max(72 * 1024 * 1024))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Mistral on loopback");
        let addr = listener.local_addr().expect("a bound address");
        let counter = shared.clone();
        // Small SSE writes must leave at once, as Mistral's do, or Nagle's algorithm would
        // add its delay to every time-to-first-token measured against the fake.
        let listener = listener.tap_io(move |tcp| {
            counter.connections.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Mistral serves");
        });
        FakeMistral {
            base_url: Url::parse(&format!("http://{addr}/")).expect("a loopback URL"),
            shared,
            server,
        }
    }

    /// Makes `key` a valid API key.
    pub fn accept_key(&self, key: &str) {
        self.shared.settings().keys.insert(key.to_owned());
    }

    /// The answer to every chat completion, sent split after each run of whitespace
    /// (`"Hello **world**"` arrives as `"Hello "`, `"**world**"`).
    pub fn set_reply(&self, text: &str) {
        self.shared.settings().reply = split_reply(text).into();
    }

    /// The answer as exactly these content chunks.
    pub fn set_reply_chunks(&self, chunks: &[&str]) {
        self.shared.settings().reply = chunks.iter().map(|c| (*c).to_owned()).collect();
    }

    /// The pause before each content chunk after the first.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared.settings().chunk_delay = delay;
    }

    /// The pause between the response headers and the first chunk (the model "thinking").
    pub fn set_first_token_delay(&self, delay: Duration) {
        self.shared.settings().first_token_delay = delay;
    }

    /// Sends every SSE frame in pieces of at most `bytes` bytes, each written out on its
    /// own, so that the client receives events split at arbitrary positions. `None` sends
    /// each frame whole.
    pub fn set_fragment_size(&self, bytes: Option<usize>) {
        self.shared.settings().fragment_size = bytes.map(|b| b.max(1));
    }

    pub fn set_fault(&self, fault: Fault) {
        self.shared.settings().fault = Some(fault);
    }

    pub fn clear_fault(&self) {
        self.shared.settings().fault = None;
    }

    /// The markdown of the pages every OCR call returns. By default one page that says
    /// how many bytes of which type it read.
    pub fn set_ocr_pages(&self, pages: &[&str]) {
        self.shared.settings().ocr_pages = Some(pages.iter().map(|p| (*p).to_owned()).collect());
    }

    /// Every OCR request is answered with Mistral's 422 for a document it cannot process,
    /// carrying `message` (`None`: back to normal).
    pub fn set_ocr_failure(&self, message: Option<&str>) {
        self.shared.settings().ocr_failure = message.map(str::to_owned);
    }

    /// The requests made to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// TCP connections accepted so far (a pooled client reuses them).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    pub fn stream_stats(&self) -> StreamStats {
        *self.shared.stats.borrow()
    }

    /// Waits until the stream statistics satisfy `condition`, at most `within`; returns
    /// the statistics then, or `None` on time-out.
    pub async fn wait_for_streams(
        &self,
        within: Duration,
        condition: impl FnMut(&StreamStats) -> bool,
    ) -> Option<StreamStats> {
        let mut rx = self.shared.stats.subscribe();
        match tokio::time::timeout(within, rx.wait_for(condition)).await {
            Ok(Ok(stats)) => Some(*stats),
            _ => None,
        }
    }
}

fn split_reply(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut after_space = false;
    for c in text.chars() {
        if after_space && !c.is_whitespace() {
            chunks.push(std::mem::take(&mut current));
        }
        after_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn record(shared: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(RecordedRequest {
            method,
            path: uri.path().to_owned(),
            headers: headers.clone(),
            body: json.clone(),
        });
    json
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({ "message": "Unauthorized", "request_id": request_id() }),
    )
}

/// The key check and the status faults, in the order Mistral applies them: a bad key is
/// refused before anything else happens.
fn gate(settings: &Settings, headers: &HeaderMap) -> Option<Response> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if matches!(settings.fault, Some(Fault::Status401))
        || !key.is_some_and(|k| settings.keys.contains(k))
    {
        return Some(unauthorized());
    }
    match &settings.fault {
        Some(Fault::Status429 { retry_after }) => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                json!({
                    "object": "error",
                    "message": "Requests rate limit exceeded",
                    "type": "rate_limited",
                    "param": null,
                    "code": "1300",
                }),
            );
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            Some(response)
        }
        Some(Fault::Status500) => Some(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "object": "error",
                "message": "Internal server error",
                "type": "internal_server_error",
                "param": null,
                "code": null,
            }),
        )),
        Some(Fault::Redirect { location }) => Some(
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location.clone())],
            )
                .into_response(),
        ),
        _ => None,
    }
}

/// A validation error in the shape Mistral's request validation produces.
fn invalid(loc: &[&str], kind: &str, msg: &str, input: &Value) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({
            "object": "error",
            "message": { "detail": [{ "type": kind, "loc": loc, "msg": msg, "input": input }] },
            "type": "invalid_request_message_error",
            "param": null,
            "code": null,
        }),
    )
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, json!({ "detail": "Not Found" }))
}

async fn models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&shared, method, &uri, &headers, &[]);
    if let Some(refusal) = gate(&shared.settings(), &headers) {
        return refusal;
    }
    let model = |id: &str| {
        json!({
            "id": id,
            "object": "model",
            "created": now_secs(),
            "owned_by": "mistralai",
            "capabilities": { "completion_chat": true, "vision": false, "ocr": id.contains("ocr") },
        })
    };
    json_response(
        StatusCode::OK,
        json!({
            "object": "list",
            "data": [
                model("mistral-small-latest"),
                model("mistral-large-latest"),
                model("mistral-ocr-latest"),
            ],
        }),
    )
}

struct ChatPlan {
    reply: Arc<[String]>,
    chunk_delay: Duration,
    first_token_delay: Duration,
    fragment_size: Option<usize>,
    fault: Option<Fault>,
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = record(&shared, method, &uri, &headers, &body);
    let plan = {
        let settings = shared.settings();
        if let Some(refusal) = gate(&settings, &headers) {
            return refusal;
        }
        ChatPlan {
            reply: settings.reply.clone(),
            chunk_delay: settings.chunk_delay,
            first_token_delay: settings.first_token_delay,
            fragment_size: settings.fragment_size,
            fault: settings.fault.clone(),
        }
    };
    if !request.is_object() {
        return invalid(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            &request,
        );
    }
    let model = match request.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(m)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "object": "error",
                    "message": format!("Invalid model: {m}"),
                    "type": "invalid_model",
                    "param": null,
                    "code": "1500",
                }),
            );
        }
        Some(other) => {
            return invalid(
                &["body", "model"],
                "string_type",
                "Input should be a valid string",
                other,
            );
        }
        None => return invalid(&["body", "model"], "missing", "Field required", &request),
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return invalid(&["body", "messages"], "missing", "Field required", &request);
    };
    if messages.is_empty() {
        return invalid(
            &["body", "messages"],
            "too_short",
            "List should have at least 1 item after validation, not 0",
            &json!([]),
        );
    }
    let mut prompt_tokens = 0;
    for (i, m) in messages.iter().enumerate() {
        let index = i.to_string();
        let role = m.get("role").and_then(Value::as_str);
        if !matches!(role, Some("system" | "user" | "assistant" | "tool")) {
            return invalid(
                &["body", "messages", &index, "role"],
                "literal_error",
                "Input should be 'system', 'user', 'assistant' or 'tool'",
                m,
            );
        }
        let Some(content) = m.get("content").and_then(Value::as_str) else {
            return invalid(
                &["body", "messages", &index, "content"],
                "string_type",
                "Input should be a valid string",
                m,
            );
        };
        prompt_tokens += content.split_whitespace().count();
    }
    let id = request_id();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": plan.reply.len(),
        "total_tokens": prompt_tokens + plan.reply.len(),
    });
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        stream_reply(&shared, plan, &id, &model, usage)
    } else {
        json_response(
            StatusCode::OK,
            json!({
                "id": id,
                "object": "chat.completion",
                "created": now_secs(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": plan.reply.concat(),
                        "tool_calls": null,
                        "prefix": false,
                    },
                    "finish_reason": "stop",
                }],
                "usage": usage,
            }),
        )
    }
}

enum Frame {
    Data {
        delay: Duration,
        bytes: Bytes,
    },
    /// Hands control back to the server once, which makes it write out what it holds.
    Flush,
    Cut,
    Stall,
}

/// Counts a stream's end exactly once: completed, cut, or — if it is dropped first,
/// which is what happens when the client goes away — dropped.
struct StreamGuard {
    stats: watch::Sender<StreamStats>,
    ended: bool,
}

impl StreamGuard {
    fn end(&mut self, count: impl FnOnce(&mut StreamStats)) {
        self.ended = true;
        self.stats.send_modify(count);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.stats.send_modify(|s| s.dropped += 1);
        }
    }
}

fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn stream_reply(shared: &Shared, plan: ChatPlan, id: &str, model: &str, usage: Value) -> Response {
    let created = now_secs();
    let chunk = |delta: Value, finish: Value, usage: Option<&Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        event(&c.to_string())
    };
    let fault_after = match plan.fault {
        Some(Fault::CutMidStream { after_chunks })
        | Some(Fault::MalformedChunk { after_chunks })
        | Some(Fault::Stall { after_chunks }) => Some(after_chunks),
        _ => None,
    };
    let mut frames = VecDeque::with_capacity(plan.reply.len() + 4);
    frames.push_back(Frame::Data {
        delay: plan.first_token_delay,
        bytes: chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
            None,
        ),
    });
    for (i, text) in plan.reply.iter().enumerate() {
        if fault_after == Some(i) {
            push_fault(&mut frames, plan.fault.as_ref(), id);
        }
        frames.push_back(Frame::Data {
            delay: if i == 0 {
                Duration::ZERO
            } else {
                plan.chunk_delay
            },
            bytes: chunk(json!({ "content": text }), Value::Null, None),
        });
    }
    if fault_after.is_some_and(|n| n >= plan.reply.len()) {
        push_fault(&mut frames, plan.fault.as_ref(), id);
    }
    frames.push_back(Frame::Data {
        delay: Duration::ZERO,
        bytes: chunk(json!({ "content": "" }), json!("stop"), Some(&usage)),
    });
    frames.push_back(Frame::Data {
        delay: Duration::ZERO,
        bytes: event("[DONE]"),
    });
    if let Some(size) = plan.fragment_size {
        frames = fragment(frames, size);
    }

    shared.stats.send_modify(|s| s.started += 1);
    let guard = StreamGuard {
        stats: shared.stats.clone(),
        ended: false,
    };
    let body =
        futures_util::stream::unfold((frames, guard), |(mut frames, mut guard)| async move {
            while let Some(Frame::Flush) = frames.front() {
                frames.pop_front();
                tokio::task::yield_now().await;
            }
            match frames.pop_front() {
                Some(Frame::Data { delay, bytes }) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if frames.is_empty() {
                        guard.end(|s| s.completed += 1);
                    }
                    Some((Ok::<_, std::io::Error>(bytes), (frames, guard)))
                }
                Some(Frame::Cut) => {
                    // A pause first flushes what was sent, so the cut comes after the headers
                    // and the earlier chunks, as a dropped connection mid-answer would.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    guard.end(|s| s.cut += 1);
                    // An error from the body makes the server abort the connection mid-body.
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "cut",
                        )),
                        (VecDeque::new(), guard),
                    ))
                }
                Some(Frame::Stall) => {
                    std::future::pending::<Infallible>().await;
                    None
                }
                Some(Frame::Flush) | None => None,
            }
        });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("a valid response")
}

fn push_fault(frames: &mut VecDeque<Frame>, fault: Option<&Fault>, id: &str) {
    match fault {
        Some(Fault::CutMidStream { .. }) => frames.push_back(Frame::Cut),
        Some(Fault::Stall { .. }) => frames.push_back(Frame::Stall),
        Some(Fault::MalformedChunk { .. }) => frames.push_back(Frame::Data {
            delay: Duration::ZERO,
            // A chunk cut off in the middle of its JSON.
            bytes: event(&format!(
                r#"{{"id":"{id}","object":"chat.completion.chunk","choices":[{{"delta":{{"content":"broken"#
            )),
        }),
        _ => {}
    }
}

fn fragment(frames: VecDeque<Frame>, size: usize) -> VecDeque<Frame> {
    let mut out = VecDeque::new();
    for frame in frames {
        match frame {
            Frame::Data { delay, bytes } => {
                let mut start = 0;
                while start < bytes.len() {
                    let end = (start + size).min(bytes.len());
                    out.push_back(Frame::Flush);
                    out.push_back(Frame::Data {
                        delay: if start == 0 { delay } else { Duration::ZERO },
                        bytes: bytes.slice(start..end),
                    });
                    start = end;
                }
            }
            other => out.push_back(other),
        }
    }
    out
}

async fn ocr(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = record(&shared, method, &uri, &headers, &body);
    let pages = {
        let settings = shared.settings();
        if let Some(refusal) = gate(&settings, &headers) {
            return refusal;
        }
        if let Some(message) = &settings.ocr_failure {
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "object": "error",
                    "message": message,
                    "type": "invalid_request_error",
                    "param": null,
                    "code": null,
                }),
            );
        }
        settings.ocr_pages.clone()
    };
    match request.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return invalid(&["body", "model"], "missing", "Field required", &request),
    }
    let Some(document) = request.get("document") else {
        return invalid(&["body", "document"], "missing", "Field required", &request);
    };
    let url = match document.get("type").and_then(Value::as_str) {
        Some("document_url") => document.get("document_url").and_then(Value::as_str),
        Some("image_url") => document
            .get("image_url")
            .and_then(|u| u.as_str().or_else(|| u.get("url")?.as_str())),
        _ => None,
    };
    let Some(url) = url else {
        return invalid(
            &["body", "document"],
            "union_tag_invalid",
            "Input tag does not match any of the expected tags: 'document_url', 'image_url'",
            document,
        );
    };
    let decoded = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .and_then(|(mime, data)| Some((mime.to_owned(), B64.decode(data).ok()?)));
    let Some((mime, bytes)) = decoded else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({
                "object": "error",
                "message": "The document could not be read: expected a base64 data URL",
                "type": "invalid_request_error",
                "param": null,
                "code": null,
            }),
        );
    };
    let pages = pages.unwrap_or_else(|| vec![format!("Read {} bytes of {mime}.", bytes.len())]);
    let pages: Vec<Value> = pages
        .iter()
        .enumerate()
        .map(|(index, markdown)| {
            json!({
                "index": index,
                "markdown": markdown,
                "images": [],
                "dimensions": { "dpi": 200, "height": 2200, "width": 1700 },
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "pages": pages,
            "model": "mistral-ocr-2505-completion",
            "document_annotation": null,
            "usage_info": { "pages_processed": pages.len(), "doc_size_bytes": bytes.len() },
        }),
    )
}

/// The dimension of `mistral-embed` vectors.
pub const EMBED_DIM: usize = 1024;

/// `POST /v1/embeddings` as documented: `model` and `input` (a string or an array of
/// strings) required, one `embedding` object per input with its `index`, usage in tokens.
/// Vectors come from Parlo's deterministic local embedding at 1,024 dimensions, so similar
/// texts get similar vectors and tests can reason about ranking.
async fn embeddings(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = record(&shared, method, &uri, &headers, &body);
    if let Some(refusal) = gate(&shared.settings(), &headers) {
        return refusal;
    }
    match request.get("model") {
        Some(Value::String(m)) if m == "mistral-embed" => {}
        Some(Value::String(m)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "object": "error",
                    "message": format!("Invalid model: {m}"),
                    "type": "invalid_model",
                    "param": null,
                    "code": "1500",
                }),
            );
        }
        _ => return invalid(&["body", "model"], "missing", "Field required", &request),
    }
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) && !items.is_empty() => {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        }
        Some(other) => {
            return invalid(
                &["body", "input"],
                "string_type",
                "Input should be a valid string or a list of strings",
                other,
            );
        }
        None => return invalid(&["body", "input"], "missing", "Field required", &request),
    };
    let embedder = parlo::knowledge::embed::LocalEmbedder::new(EMBED_DIM);
    let tokens: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({ "object": "embedding", "embedding": embedder.embed(text), "index": index })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "id": request_id(),
            "object": "list",
            "data": data,
            "model": "mistral-embed",
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0 },
        }),
    )
}
