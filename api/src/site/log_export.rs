//! Chat-log exports for data-subject requests and the customer's own records: one
//! conversation as JSON or CSV, and the whole workspace's messages as CSV or JSON streamed
//! page by page (keyset on the message id), so memory does not grow with the export.
//!
//! CSV cells are quoted as RFC 4180 says, and a cell that a spreadsheet would run as a
//! formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) is prefixed with `'`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{ExportedMessage, MessageId, TenantId};
use crate::state::AppState;
use crate::storage::Store;

use super::page::{PageError, PageResult};
use super::workspace::{Manager, Member, find_conversation};

/// Messages fetched per page of the streamed export.
pub const EXPORT_PAGE: u32 = 500;

const CSV_HEADER: &str = "conversation_reference,conversation_id,bot_id,origin,message_id,role,status,created_at,content\r\n";

#[derive(Deserialize)]
pub(super) struct FormatQuery {
    #[serde(default)]
    format: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

impl FormatQuery {
    fn format(&self) -> PageResult<Format> {
        match self.format.as_str() {
            "csv" => Ok(Format::Csv),
            "json" | "" => Ok(Format::Json),
            _ => Err(PageError::BadRequest(
                "Choose the export format csv or json.".into(),
            )),
        }
    }
}

/// One CSV cell: neutralised against formula injection, then quoted when it must be.
pub fn csv_cell(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let v = if formula {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) || v != v.trim() {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn csv_row(m: &ExportedMessage) -> String {
    let cells = [
        m.conversation_reference.clone(),
        m.conversation_id.to_string(),
        m.bot_id.to_string(),
        m.origin.clone(),
        m.message_id.to_string(),
        m.role.as_str().to_owned(),
        m.status.as_str().to_owned(),
        m.created_at.to_rfc3339(),
        m.content.clone(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn json_message(m: &ExportedMessage) -> Value {
    json!({
        "conversation_reference": m.conversation_reference,
        "conversation_id": m.conversation_id,
        "bot_id": m.bot_id,
        "origin": m.origin,
        "message_id": m.message_id,
        "role": m.role,
        "status": m.status,
        "created_at": m.created_at.to_rfc3339(),
        "content": m.content,
    })
}

fn download(body: Body, format: Format, name: &str) -> Response {
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Json => "application/json",
    };
    let ext = format.as_str();
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One conversation with every message, for a data-subject request.
pub(super) async fn one(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, conversation)): Path<(String, String)>,
    Query(q): Query<FormatQuery>,
) -> PageResult<Response> {
    let format = q.format()?;
    let (c, bot_name) = find_conversation(&state, &ws, &conversation).await?;
    let reference = c.reference();
    let messages: Vec<ExportedMessage> = state
        .store
        .messages(ws.id, c.id)
        .await?
        .into_iter()
        .map(|m| ExportedMessage {
            conversation_id: c.id,
            conversation_reference: reference.clone(),
            bot_id: c.bot_id,
            origin: c.origin.clone(),
            message_id: m.id,
            role: m.role,
            status: m.status,
            created_at: m.created_at,
            content: m.content,
        })
        .collect();
    ws.audit(
        &state,
        "conversation.export",
        &reference,
        json!({"conversation": c.id, "format": format.as_str()}),
    )
    .await;
    let body = match format {
        Format::Csv => {
            let mut out = String::from(CSV_HEADER);
            out.extend(messages.iter().map(csv_row));
            out
        }
        Format::Json => json!({
            "format": "parlo-conversation-v1",
            "conversation": {
                "id": c.id,
                "reference": reference,
                "bot_id": c.bot_id,
                "bot_name": bot_name,
                "origin": c.origin,
                "created_at": c.created_at.to_rfc3339(),
                "last_activity_at": c.last_activity_at.to_rfc3339(),
            },
            "messages": messages.iter().map(json_message).collect::<Vec<_>>(),
        })
        .to_string(),
    };
    Ok(download(
        Body::from(body),
        format,
        &format!("parlo-conversation-{reference}"),
    ))
}

/// Where the streamed export is: before its first page, after a message id, or done.
enum Cursor {
    Start,
    After(MessageId),
    Done,
}

/// The workspace's messages as a stream of byte chunks, one chunk per page of
/// [`EXPORT_PAGE`] messages: at most one page is held at a time. A storage error ends the
/// stream with an error, so the download is cut off rather than silently short (a JSON
/// export then does not parse).
pub fn export_stream(
    store: Store,
    tenant: TenantId,
    csv: bool,
    page: u32,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream::unfold(Cursor::Start, move |cursor| {
        let store = store.clone();
        async move {
            let after = match cursor {
                Cursor::Done => return None,
                Cursor::Start => None,
                Cursor::After(id) => Some(id),
            };
            let rows = match store.export_messages(tenant, after, page).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "log export page failed");
                    return Some((Err(std::io::Error::other("export failed")), Cursor::Done));
                }
            };
            let mut chunk = String::new();
            if after.is_none() {
                chunk.push_str(if csv { CSV_HEADER } else { "[" });
            }
            for (i, m) in rows.iter().enumerate() {
                if csv {
                    chunk.push_str(&csv_row(m));
                } else {
                    if after.is_some() || i > 0 {
                        chunk.push(',');
                    }
                    chunk.push('\n');
                    chunk.push_str(&json_message(m).to_string());
                }
            }
            let next = match rows.last() {
                Some(last) if rows.len() == page as usize => Cursor::After(last.message_id),
                _ => {
                    if !csv {
                        chunk.push_str("\n]\n");
                    }
                    Cursor::Done
                }
            };
            Some((Ok(Bytes::from(chunk)), next))
        }
    })
}

/// The whole workspace's chat logs, streamed.
pub(super) async fn workspace(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Query(q): Query<FormatQuery>,
) -> PageResult<Response> {
    let format = q.format()?;
    ws.audit(
        &state,
        "logs.export",
        &ws.name,
        json!({"format": format.as_str()}),
    )
    .await;
    let body = Body::from_stream(export_stream(
        state.store.clone(),
        ws.id,
        format == Format::Csv,
        EXPORT_PAGE,
    ));
    Ok(download(body, format, &format!("parlo-logs-{}", ws.id)))
}
