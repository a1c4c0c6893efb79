//! Thumbs up or down on an answer (`PUT /messages/{id}/rating`): stored on the answer, shown
//! in the customer's logs and counted per bot. Only an answer of the token's conversation
//! can be rated; the path's id selects a message *within* it, never the conversation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::WidgetAuth;
use super::json::WidgetJson;
use super::limits::limit_ip;
use super::session::scoped;
use crate::error::{AppError, AppResult, Body as ErrorBody};
use crate::http::client_ip::ClientIp;
use crate::model::{MessageId, Rating};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// `"up"`, `"down"`, or `null` to take the rating back; required (an empty body is a
    /// mistake, not a take-back), which `deserialize_with` makes serde insist on.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(value_type = Option<String>, example = "up")]
    rating: Option<Rating>,
}

fn unknown_answer() -> AppError {
    AppError::NotFound(
        "unknown_message",
        "There is no such answer in this conversation.".into(),
    )
}

/// Rate an answer of the token's conversation: thumbs `up`, `down`, or `null` to take the
/// rating back.
#[utoipa::path(
    put,
    path = "/api/widget/v1/messages/{id}/rating",
    tag = "widget",
    security(("session_token" = [])),
    params(("id" = String, Path, description = "The answer's message id")),
    request_body = RatingRequest,
    responses(
        (status = 204, description = "The rating is stored"),
        (status = 401, description = "`invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`origin_mismatch`, `origin_invalid` or `workspace_suspended`", body = ErrorBody),
        (status = 404, description = "`unknown_message` or `conversation_gone`", body = ErrorBody),
        (status = 422, description = "`invalid`: not a JSON object with exactly `rating`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    )
)]
pub async fn rate_answer(
    State(state): State<AppState>,
    ip: ClientIp,
    WidgetAuth(claims): WidgetAuth,
    Path(id): Path<String>,
    WidgetJson(req): WidgetJson<RatingRequest>,
) -> AppResult<StatusCode> {
    limit_ip(&state, ip).await?;
    let message: MessageId = id.parse().map_err(|_| unknown_answer())?;
    let rated = state
        .store
        .widget_rate(claims.tenant, claims.scope(), message, req.rating)
        .await?;
    if scoped(rated)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(unknown_answer())
    }
}
