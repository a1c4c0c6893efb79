//! Attachments (`POST /attachments`): an image or a PDF is checked by its first bytes (never
//! by its name or declared type), read by the upstream OCR with the tenant's key, and only
//! then recorded — metadata and the end user's message with its text, in one transaction.
//! The file itself is not kept.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::WidgetAuth;
use super::limits::limit_turn;
use super::session::scoped;
use super::turn::stored_api_key;
use crate::crypto::sha256;
use crate::error::{AppError, AppResult, Body as ErrorBody};
use crate::http::client_ip::ClientIp;
use crate::mistral::{OcrInput, UpstreamError};
use crate::model::NewAttachmentText;
use crate::state::AppState;

pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_attachment))
        .layer(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES + 64 * 1024))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttachmentAnswer {
    attachment: AttachmentRef,
    /// The text read from the file, stored as the end user's message.
    text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttachmentRef {
    id: String,
    file_name: String,
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Upload {
    /// PNG, JPEG, WebP or PDF (by content), at most 10 MiB.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
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

/// Attach an image or a PDF: its text is read by OCR and stored as the end user's message.
#[utoipa::path(
    post,
    path = "/api/widget/v1/attachments",
    tag = "widget",
    security(("session_token" = [])),
    request_body(content = Upload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The text read from the file", body = AttachmentAnswer),
        (status = 400, description = "`no_file`, `bad_upload` or `token_in_url`", body = ErrorBody),
        (status = 401, description = "`invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`origin_mismatch`", body = ErrorBody),
        (status = 404, description = "`conversation_gone`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 502, description = "The OCR upstream failed", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    )
)]
async fn upload_attachment(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
    multipart: Result<Multipart, MultipartRejection>,
) -> AppResult<Response> {
    limit_turn(&state, ip, claims.conversation).await?;
    // Not multipart/form-data at all: the documented JSON 415, not a plain-text 400.
    let mut multipart = multipart.map_err(|_| {
        AppError::UnsupportedMediaType(
            "Send the file as multipart/form-data in a field named \"file\".".into(),
        )
    })?;
    let t = claims.tenant;
    // Refuse a suspended workspace or a conversation that is not the token's bot's before
    // reading the upload; storing re-checks both in its own transaction.
    // An upload before the first message stores the conversation, as a message would.
    let start = claims.new_conversation();
    scoped(
        state
            .store
            .widget_scope_starting(t, claims.scope(), start.as_ref())
            .await?,
    )?;
    let unreadable = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            // A truncated or malformed body.
            AppError::BadRequest("bad_upload", "The upload could not be read.".into())
        }
    };
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() == Some("file") {
            let name = clean_file_name(field.file_name().unwrap_or("attachment"));
            let bytes = field.bytes().await.map_err(unreadable)?;
            file = Some((name, bytes));
            break;
        }
    }
    let (file_name, bytes) = file.ok_or_else(|| {
        AppError::BadRequest("no_file", "Choose an image or a PDF to attach.".into())
    })?;
    if bytes.len() > MAX_ATTACHMENT_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    let content_type = sniff(&bytes).ok_or_else(|| {
        AppError::UnsupportedMediaType(
            "Only images (PNG, JPEG, WebP) and PDF files can be attached.".into(),
        )
    })?;
    let key = stored_api_key(&state, t)
        .await
        .map_err(|f| AppError::Upstream(f.code(), f.message()))?;
    // Nothing is stored before OCR succeeded: a failed read leaves no row behind.
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
            UpstreamError::RateLimited { retry_after_secs } => AppError::UpstreamRateLimited {
                retry_after_secs: retry_after_secs.unwrap_or(30),
            },
            other => AppError::Upstream(other.code(), other.to_string()),
        })?;
    let attachment = scoped(
        state
            .store
            .widget_attach(
                t,
                claims.scope(),
                &NewAttachmentText {
                    file_name: file_name.clone(),
                    content_type: content_type.into(),
                    size_bytes: bytes.len() as i64,
                    sha256: sha256(&bytes),
                    content: format!("Attached {file_name}:\n\n{text}"),
                },
            )
            .await?,
    )?;
    Ok(axum::Json(AttachmentAnswer {
        attachment: AttachmentRef {
            id: attachment.id.to_string(),
            file_name: attachment.file_name,
        },
        text,
    })
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
