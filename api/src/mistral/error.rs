//! [`UpstreamError`]: every way an upstream call can fail, with a stable code and a message
//! a person can read, and the mapping from Mistral's statuses, `Retry-After` headers and
//! error bodies to it. Never carries a key, a URL, request headers or upstream text beyond
//! Mistral's own short error message.

use reqwest::StatusCode;

/// The longest upstream message passed on in [`UpstreamError::BadRequest`].
const MAX_MESSAGE_CHARS: usize = 300;

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

/// `Retry-After` is either delay-seconds or an HTTP date.
pub(super) fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(u64::try_from(secs).unwrap_or(0))
}

pub(super) fn error_for_status(
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

pub(super) fn describe_json_error(what: &str, e: &serde_json::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
