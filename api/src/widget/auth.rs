//! [`WidgetAuth`]: the extractor every widget endpoint after `session` takes. It reads the
//! token from the Authorization header only (a token in the URL is refused), verifies it
//! with the token key ring, and checks the request's Origin against the token's origin — so
//! a handler's signature says it gets verified claims, and workspace, bot and conversation
//! come from those claims, never from the path, the query or the body.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::cors::{RequestOrigin, invalid_origin, origin_refused, own_origin, request_origin};
use super::token::{self, TokenError, WidgetClaims};
use crate::error::AppError;
use crate::model::Timestamp;
use crate::state::AppState;

/// A verified widget token whose origin matches the request.
pub struct WidgetAuth(pub WidgetClaims);

impl FromRequestParts<AppState> for WidgetAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(q) = parts.uri.query()
            && q.split('&').any(|kv| {
                let k = kv.split('=').next().unwrap_or("");
                matches!(k, "token" | "access_token" | "auth" | "authorization")
            })
        {
            return Err(AppError::BadRequest(
                "token_in_url",
                "Tokens are accepted only in the Authorization header, never in a URL.".into(),
            )
            .into_response());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "invalid_token",
                    "A widget session token is required.".into(),
                )
                .into_response()
            })?;
        let claims =
            token::verify(&state.keys.token, token.trim(), Timestamp::now()).map_err(|e| {
                let (code, msg) = match e {
                    TokenError::Expired => (
                        "token_expired",
                        "The chat session has expired; start a new one.",
                    ),
                    _ => ("invalid_token", "The chat session token is not valid."),
                };
                AppError::Unauthorized(code, msg.into()).into_response()
            })?;
        let origin_ok = match request_origin(&parts.headers) {
            RequestOrigin::Valid(o) => o == claims.origin,
            // Same-origin GETs carry no Origin header; only the dashboard preview on Parlo
            // itself does that, with a token the site issued to a signed-in member.
            RequestOrigin::Absent => claims.origin == own_origin(state),
            RequestOrigin::Invalid => return Err(invalid_origin()),
        };
        if !origin_ok {
            return Err(origin_refused(
                "origin_mismatch",
                "This chat session belongs to another website.".into(),
            ));
        }
        Ok(WidgetAuth(claims))
    }
}
