//! The widget's client for the widget API on the origin the loader came from.
//!
//! Owns sessions (the short-lived token, and the long-lived resume secret kept in
//! `localStorage` per bot), every request to `/api/widget/v1/…`, and the mapping of HTTP and
//! stream errors to [`ApiError`]. Requests never send cookies; the token travels only in the
//! `Authorization` header, never in a URL. It never renders or touches the widget's DOM.

use std::cell::RefCell;
use std::collections::VecDeque;

use js_sys::{JSON, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FormData, Headers, ReadableStreamDefaultReader, RequestCredentials, RequestInit, RequestMode,
    Response,
};

use crate::sse::{SseEvent, SseParser};

/// Everything that can go wrong, in the terms the end user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Offline,
    RateLimited(Option<u32>),
    Unavailable,
    NoApiKey,
    OriginNotAllowed,
    UnknownBot,
    TooLarge,
    Rejected,
    Interrupted,
    Auth,
    Other,
}

impl ApiError {
    /// Maps an HTTP status and the API's error code (and a retry hint) to an error.
    pub fn classify(status: u16, code: Option<&str>, retry_after: Option<u32>) -> ApiError {
        match code {
            Some("origin_not_allowed") => ApiError::OriginNotAllowed,
            Some("unknown_bot") => ApiError::UnknownBot,
            Some("rate_limited" | "upstream_rate_limited") => ApiError::RateLimited(retry_after),
            Some("upstream_unavailable") => ApiError::Unavailable,
            Some("no_api_key") => ApiError::NoApiKey,
            Some("interrupted") => ApiError::Interrupted,
            Some("invalid_token" | "token_expired") => ApiError::Auth,
            _ => match status {
                401 => ApiError::Auth,
                403 => ApiError::OriginNotAllowed,
                404 => ApiError::UnknownBot,
                413 => ApiError::TooLarge,
                415 | 422 => ApiError::Rejected,
                429 => ApiError::RateLimited(retry_after),
                500..=599 => ApiError::Unavailable,
                _ => ApiError::Other,
            },
        }
    }

    /// Whether retrying the same request may succeed (a misconfiguration never heals by retrying).
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            ApiError::OriginNotAllowed
                | ApiError::UnknownBot
                | ApiError::TooLarge
                | ApiError::Rejected
        )
    }
}

/// Parses a `Retry-After` value given in seconds (the only form the API sends).
pub fn parse_retry_after(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// The bot's public configuration, as the session endpoint returns it.
#[derive(Debug, Clone, Default)]
pub struct BotInfo {
    pub name: String,
    pub greeting: String,
    pub theme_color: String,
}

/// One stored message from the history endpoint.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub from_user: bool,
    pub content: String,
    pub interrupted: bool,
}

/// What the answer stream yields.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    Delta(String),
    Done { interrupted: bool },
    Failed(ApiError),
}

struct Token {
    value: String,
    expires_at_ms: f64,
}

/// A client bound to one API origin and one bot.
pub struct Client {
    origin: String,
    bot: String,
    token: RefCell<Option<Token>>,
    resume: RefCell<Option<String>>,
}

const REFRESH_MARGIN_MS: f64 = 30_000.0;

impl Client {
    pub fn new(origin: String, bot: String) -> Self {
        let resume = RefCell::new(load_resume(&bot));
        Client {
            origin,
            bot,
            token: RefCell::new(None),
            resume,
        }
    }

    /// Whether a stored conversation can be resumed (so its history is worth fetching).
    pub fn has_resume(&self) -> bool {
        self.resume.borrow().is_some()
    }

    /// Starts a session, resuming the stored conversation when there is one. A resume
    /// secret the server no longer accepts is dropped and a fresh conversation started.
    pub async fn start_session(&self) -> Result<BotInfo, ApiError> {
        match self.session_request().await {
            Err(ApiError::Auth) if self.has_resume() => {
                store_resume(&self.bot, None);
                *self.resume.borrow_mut() = None;
                self.session_request().await
            }
            other => other,
        }
    }

    async fn session_request(&self) -> Result<BotInfo, ApiError> {
        let body = Object::new();
        set(&body, "bot", &JsValue::from_str(&self.bot));
        let resume = self.resume.borrow().clone();
        set(
            &body,
            "resume",
            &resume.map_or(JsValue::NULL, |r| JsValue::from_str(&r)),
        );
        let response = self
            .fetch("POST", "/session", None, Some(json_body(&body)), true)
            .await?;
        let value = json(&response).await?;
        let token = get_str(&value, "token").ok_or(ApiError::Other)?;
        let expires_in = get(&value, "expires_in").as_f64().unwrap_or(900.0);
        *self.token.borrow_mut() = Some(Token {
            value: token,
            expires_at_ms: js_sys::Date::now() + expires_in * 1000.0,
        });
        if let Some(resume) = get_str(&value, "resume") {
            store_resume(&self.bot, Some(&resume));
            *self.resume.borrow_mut() = Some(resume);
        }
        let bot = get(&value, "bot");
        Ok(BotInfo {
            name: get_str(&bot, "name").unwrap_or_default(),
            greeting: get_str(&bot, "greeting").unwrap_or_default(),
            theme_color: get_str(&bot, "theme_color").unwrap_or_default(),
        })
    }

    /// Forgets the conversation on the server and locally; the next session starts fresh.
    pub async fn clear(&self) -> Result<(), ApiError> {
        if self.has_resume() {
            self.authed("DELETE", "/conversation", None, None).await?;
        }
        store_resume(&self.bot, None);
        *self.resume.borrow_mut() = None;
        *self.token.borrow_mut() = None;
        Ok(())
    }

    /// The conversation so far.
    pub async fn history(&self) -> Result<Vec<StoredMessage>, ApiError> {
        let response = self.authed("GET", "/messages", None, None).await?;
        let value = json(&response).await?;
        let list: js_sys::Array = get(&value, "messages").dyn_into().unwrap_or_default();
        Ok(list
            .iter()
            .map(|m| StoredMessage {
                from_user: get_str(&m, "role").as_deref() == Some("user"),
                content: get_str(&m, "content").unwrap_or_default(),
                interrupted: get_str(&m, "status").as_deref() == Some("interrupted"),
            })
            .collect())
    }

    /// Sends a message; the answer arrives as a stream.
    pub async fn send(&self, content: &str) -> Result<AnswerStream, ApiError> {
        let body = Object::new();
        set(&body, "content", &JsValue::from_str(content));
        let response = self
            .authed(
                "POST",
                "/messages",
                Some("application/json"),
                Some(json_body(&body)),
            )
            .await?;
        let reader = response
            .body()
            .ok_or(ApiError::Other)?
            .get_reader()
            .unchecked_into::<ReadableStreamDefaultReader>();
        Ok(AnswerStream {
            reader,
            parser: SseParser::new(),
            queue: VecDeque::new(),
            ended: false,
        })
    }

    /// Uploads an image or PDF; returns the file name the server recorded.
    pub async fn attach(&self, file: &web_sys::File) -> Result<String, ApiError> {
        let form = FormData::new().map_err(|_| ApiError::Other)?;
        form.append_with_blob_and_filename("file", file, &file.name())
            .map_err(|_| ApiError::Other)?;
        let response = self
            .authed("POST", "/attachments", None, Some(form.into()))
            .await?;
        let value = json(&response).await?;
        Ok(get_str(&get(&value, "attachment"), "file_name").unwrap_or_else(|| file.name()))
    }

    /// A request with the session token; an expired or rejected token is renewed once.
    async fn authed(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<JsValue>,
    ) -> Result<Response, ApiError> {
        let fresh = self
            .token
            .borrow()
            .as_ref()
            .is_some_and(|t| t.expires_at_ms - REFRESH_MARGIN_MS > js_sys::Date::now());
        if !fresh {
            self.start_session().await?;
        }
        let first = self
            .with_token(method, path, content_type, body.clone())
            .await;
        match first {
            Err(ApiError::Auth) => {
                self.start_session().await?;
                self.with_token(method, path, content_type, body).await
            }
            other => other,
        }
    }

    async fn with_token(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<JsValue>,
    ) -> Result<Response, ApiError> {
        let token = self
            .token
            .borrow()
            .as_ref()
            .map(|t| t.value.clone())
            .ok_or(ApiError::Auth)?;
        let headers = Headers::new().map_err(|_| ApiError::Other)?;
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .map_err(|_| ApiError::Other)?;
        if let Some(ct) = content_type {
            headers
                .set("Content-Type", ct)
                .map_err(|_| ApiError::Other)?;
        }
        self.fetch(method, path, Some(headers), body, false).await
    }

    async fn fetch(
        &self,
        method: &str,
        path: &str,
        headers: Option<Headers>,
        body: Option<JsValue>,
        json_content: bool,
    ) -> Result<Response, ApiError> {
        let init = RequestInit::new();
        init.set_method(method);
        init.set_mode(RequestMode::Cors);
        init.set_credentials(RequestCredentials::Omit);
        let headers = match headers {
            Some(h) => h,
            None => Headers::new().map_err(|_| ApiError::Other)?,
        };
        if json_content {
            headers
                .set("Content-Type", "application/json")
                .map_err(|_| ApiError::Other)?;
        }
        init.set_headers(&headers);
        if let Some(body) = body {
            init.set_body(&body);
        }
        let url = format!("{}/api/widget/v1{}", self.origin, path);
        let window = web_sys::window().ok_or(ApiError::Other)?;
        let response: Response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
            .await
            .map_err(|_| ApiError::Offline)?
            .unchecked_into();
        if response.ok() {
            return Ok(response);
        }
        let header_retry = response
            .headers()
            .get("Retry-After")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v));
        let value = json(&response).await.unwrap_or(JsValue::UNDEFINED);
        let error = get(&value, "error");
        let body_retry = get(&error, "retry_after").as_f64().map(|s| s as u32);
        Err(ApiError::classify(
            response.status(),
            get_str(&error, "code").as_deref(),
            header_retry.or(body_retry),
        ))
    }
}

/// The answer to one message, read event by event from the response body.
pub struct AnswerStream {
    reader: ReadableStreamDefaultReader,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    ended: bool,
}

impl AnswerStream {
    /// The next event; `None` when the body ended (without `done`, that means it broke).
    pub async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                if let Some(event) = interpret(&event) {
                    return Some(event);
                }
                continue;
            }
            if self.ended {
                return None;
            }
            let chunk = match JsFuture::from(self.reader.read()).await {
                Ok(chunk) => chunk,
                Err(_) => {
                    self.ended = true;
                    return Some(StreamEvent::Failed(ApiError::Offline));
                }
            };
            if get(&chunk, "done").as_bool().unwrap_or(true) {
                self.ended = true;
                continue;
            }
            let bytes: Uint8Array = get(&chunk, "value").unchecked_into();
            self.queue.extend(self.parser.push(&bytes.to_vec()));
        }
    }
}

fn interpret(event: &SseEvent) -> Option<StreamEvent> {
    let data = JSON::parse(&event.data).unwrap_or(JsValue::UNDEFINED);
    match event.event.as_str() {
        "delta" => get_str(&data, "text").map(StreamEvent::Delta),
        "done" => Some(StreamEvent::Done {
            interrupted: get_str(&data, "status").as_deref() == Some("interrupted"),
        }),
        "error" => {
            let retry = get(&data, "retry_after").as_f64().map(|s| s as u32);
            Some(StreamEvent::Failed(ApiError::classify(
                200,
                get_str(&data, "code").as_deref(),
                retry,
            )))
        }
        _ => None,
    }
}

async fn json(response: &Response) -> Result<JsValue, ApiError> {
    let promise = response.json().map_err(|_| ApiError::Other)?;
    JsFuture::from(promise).await.map_err(|_| ApiError::Other)
}

fn json_body(value: &Object) -> JsValue {
    JSON::stringify(value)
        .map(JsValue::from)
        .unwrap_or(JsValue::NULL)
}

fn get(value: &JsValue, key: &str) -> JsValue {
    if value.is_object() {
        Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

fn get_str(value: &JsValue, key: &str) -> Option<String> {
    get(value, key).as_string()
}

fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

fn resume_key(bot: &str) -> String {
    format!("parlo.resume.{bot}")
}

/// `localStorage` can be missing or throw (privacy modes, sandboxed frames): then the
/// conversation simply does not survive a reload.
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn load_resume(bot: &str) -> Option<String> {
    storage()?
        .get_item(&resume_key(bot))
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
}

fn store_resume(bot: &str, secret: Option<&str>) {
    if let Some(storage) = storage() {
        let _ = match secret {
            Some(s) => storage.set_item(&resume_key(bot), s),
            None => storage.remove_item(&resume_key(bot)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_win_over_statuses() {
        assert_eq!(
            ApiError::classify(403, Some("origin_not_allowed"), None),
            ApiError::OriginNotAllowed
        );
        assert_eq!(
            ApiError::classify(200, Some("no_api_key"), None),
            ApiError::NoApiKey
        );
        assert_eq!(
            ApiError::classify(200, Some("upstream_rate_limited"), Some(12)),
            ApiError::RateLimited(Some(12))
        );
        assert_eq!(
            ApiError::classify(401, Some("token_expired"), None),
            ApiError::Auth
        );
    }

    #[test]
    fn statuses_without_codes() {
        assert_eq!(
            ApiError::classify(429, None, Some(3)),
            ApiError::RateLimited(Some(3))
        );
        assert_eq!(ApiError::classify(413, None, None), ApiError::TooLarge);
        assert_eq!(
            ApiError::classify(422, Some("whatever"), None),
            ApiError::Rejected
        );
        assert_eq!(ApiError::classify(502, None, None), ApiError::Unavailable);
    }

    #[test]
    fn misconfiguration_is_not_retryable() {
        assert!(!ApiError::OriginNotAllowed.retryable());
        assert!(ApiError::RateLimited(None).retryable());
        assert!(ApiError::Offline.retryable());
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(" 30 "), Some(30));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
