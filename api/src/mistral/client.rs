//! [`MistralClient`]: the one operator-configured endpoint (every URL derived from the base
//! URL when the client is built, redirects never followed), its timeouts, streamed chat
//! requests and the key check. The key travels only in an `Authorization` header value
//! marked sensitive ([`bearer`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::error::{UpstreamError, error_for_status, parse_retry_after};
use super::stream::ChatStream;

/// How much of an error response is read to find Mistral's message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much of a JSON response (OCR of a long PDF, the model list) is accepted.
pub(super) const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

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

pub(super) struct Endpoints {
    base: Url,
    chat: Url,
    pub(super) ocr: Url,
    pub(super) embeddings: Url,
    models: Url,
}

/// A client for one operator-configured Mistral endpoint. Cheap to clone: clones share
/// the connection pool.
#[derive(Clone)]
pub struct MistralClient {
    pub(super) http: reqwest::Client,
    pub(super) endpoints: Arc<Endpoints>,
    pub(super) timeouts: Timeouts,
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
            embeddings: join("v1/embeddings"),
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

    pub(super) async fn check_status(&self, response: Response) -> Result<Response, UpstreamError> {
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

impl MistralClient {
    /// POSTs `body` as JSON to `url` with `auth` and a total time of `timeout`, and reads
    /// the 200 answer's body (up to [`MAX_JSON_BODY`]); any other status is an error.
    pub(super) async fn post_json(
        &self,
        url: &Url,
        auth: HeaderValue,
        timeout: Duration,
        body: &impl Serialize,
    ) -> Result<Bytes, UpstreamError> {
        let response = self
            .http
            .post(url.clone())
            .header(AUTHORIZATION, auth)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(request_error)?;
        let response = self.check_status(response).await?;
        read_limited(response, MAX_JSON_BODY).await
    }
}

pub(super) fn bearer(api_key: &SecretString) -> Result<HeaderValue, UpstreamError> {
    let key = api_key.expose_secret();
    if key.trim().is_empty() {
        return Err(UpstreamError::NoApiKey);
    }
    let mut value =
        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| UpstreamError::InvalidKey)?;
    value.set_sensitive(true);
    Ok(value)
}

pub(super) fn request_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unavailable { status: None }
    }
}

pub(super) async fn read_limited(response: Response, limit: usize) -> Result<Bytes, UpstreamError> {
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
}
