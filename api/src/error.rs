//! One error type for every JSON endpoint. Clients get a status, a stable code and a message
//! written for a person; internal causes are logged with the request id and never returned.
//! Domain errors (storage, validation, suspension) are mapped to statuses here, in one place,
//! so the modules below HTTP never build a response.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::lifecycle::suspension::SuspensionError;
use crate::model::Invalid;
use crate::storage::{StoreError, StoreErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{1}")]
    Unauthorized(&'static str, String),
    #[error("{1}")]
    Forbidden(&'static str, String),
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Invalid(String),
    /// Parlo's own limiter (`rate_limited`).
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The upstream provider answered 429 (`upstream_rate_limited`): another cause, another
    /// code, so a client and an operator can tell them apart.
    #[error("upstream rate limited")]
    UpstreamRateLimited { retry_after_secs: u64 },
    #[error("{1}")]
    Upstream(&'static str, String),
    #[error("service unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Every JSON error: `{"error": {"code", "message", "retry_after"?}}` (also the OpenAPI
/// document's `ErrorBody`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub struct Detail<'a> {
    /// Stable, machine-readable (`invalid_token`, `rate_limited`, …).
    code: &'a str,
    /// Written for the person in front of the widget.
    message: &'a str,
    /// Seconds to wait (rate limits), also in `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(..) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(..) => StatusCode::FORBIDDEN,
            AppError::NotFound(..) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } | AppError::UpstreamRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Upstream(..) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(c, _)
            | AppError::Unauthorized(c, _)
            | AppError::Forbidden(c, _)
            | AppError::NotFound(c, _)
            | AppError::Upstream(c, _) => c,
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Invalid(_) => "invalid",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::UpstreamRateLimited { .. } => "upstream_rate_limited",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The message a person sees.
    pub fn public_message(&self) -> String {
        match self {
            AppError::PayloadTooLarge => {
                "The request body is larger than this endpoint accepts.".to_owned()
            }
            AppError::UnsupportedMediaType(m) => m.clone(),
            AppError::RateLimited { retry_after_secs } => {
                format!("Too many requests. Try again in {retry_after_secs} seconds.")
            }
            AppError::UpstreamRateLimited { retry_after_secs } => format!(
                "The AI provider is busy (rate limited). Try again in {retry_after_secs} seconds."
            ),
            AppError::Unavailable => "The service is temporarily unavailable.".to_owned(),
            AppError::Internal(_) => {
                "Something went wrong on our side. Please try again later.".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(cause) = &self {
            // `{:#}` prints the context chain; causes never hold secrets by construction
            // and the log writer redacts credential-shaped text anyway.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        } else if status.is_server_error() {
            tracing::warn!(code = self.code(), "request failed");
        }
        let retry_after = match &self {
            AppError::RateLimited { retry_after_secs }
            | AppError::UpstreamRateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let message = self.public_message();
        let mut resp = (
            status,
            Json(Body {
                error: Detail {
                    code: self.code(),
                    message: &message,
                    retry_after,
                },
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            StoreErrorKind::NotFound => AppError::NotFound("not_found", "Not found.".into()),
            StoreErrorKind::Conflict(sentence) => AppError::Conflict(sentence),
            StoreErrorKind::Internal(cause) => AppError::Internal(cause),
        }
    }
}

impl From<SuspensionError> for AppError {
    fn from(e: SuspensionError) -> Self {
        match e {
            // The same words whatever the operator's reason: the reason is not the visitor's.
            SuspensionError::Suspended => AppError::Forbidden(
                "workspace_suspended",
                "This assistant is currently unavailable: its workspace has been suspended.".into(),
            ),
            SuspensionError::Store(e) => e.into(),
        }
    }
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        AppError::Invalid(e.0)
    }
}

/// `Json<T>` whose rejections become [`AppError`]s with a clear message.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
                "Send JSON with the header Content-Type: application/json.".into(),
            ),
            JsonRejection::JsonSyntaxError(e) => AppError::BadRequest(
                "malformed_json",
                format!("The body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => AppError::Invalid(format!(
                "The JSON does not have the expected fields: {}",
                e.body_text()
            )),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::PayloadTooLarge
            }
            other => AppError::BadRequest("bad_request", other.body_text()),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
