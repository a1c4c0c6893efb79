//! The widget API (`/api/widget/v1/…`) and the published widget bundles.
//!
//! Claims, not URLs: every endpoint after `session` takes workspace, bot and conversation
//! from the verified token in the Authorization header ([`auth::WidgetAuth`]) — never from
//! the path, the query or the body — and checks the request's Origin against the origin in
//! the token. See docs/widget-api.md.
//!
//! | file | holds |
//! |---|---|
//! | `session.rs` | start or resume a session, history, clear |
//! | `chat.rs` | sending a message: limits, the turn's transaction, the SSE response |
//! | `turn.rs` | the turn between storage and upstream: key, context, streaming, finishing |
//! | `attachments.rs` | uploads read by OCR |
//! | `rating.rs` | thumbs up or down on an answer |
//! | `auth.rs`, `token.rs` | the `WidgetAuth` extractor and the HMAC session tokens |
//! | `cors.rs`, `limits.rs` | CORS and origins; per-IP and per-conversation rate limits |
//! | `json.rs` | request bodies: a JSON object with exactly the expected fields |
//! | `recovery.rs` | pending answers of a process that is gone become `interrupted` |
//! | `assets.rs` | the published bundles (built in, or `PARLO_DIST_DIR`) |
//! | `openapi.rs` | the OpenAPI 3.1 document, generated from the handlers and served |

pub mod assets;
mod attachments;
mod auth;
mod chat;
mod cors;
mod json;
mod limits;
pub mod openapi;
mod rating;
pub mod recovery;
mod session;
pub mod token;
mod turn;

pub use session::preview_session;

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The widget API's routes and its OpenAPI document, from the same registrations.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::WidgetApi::openapi())
        .routes(routes!(session::start_session))
        .routes(routes!(chat::send_message, session::history))
        .routes(routes!(session::clear_conversation))
        .routes(routes!(rating::rate_answer))
        .merge(attachments::router())
        .split_for_parts()
}

pub fn router(state: &AppState) -> Router<AppState> {
    let (api, doc) = api();
    let api = api.layer(axum::middleware::from_fn(cors::cors));
    Router::new()
        .merge(api)
        .route("/api/widget/v1/openapi.json", get(openapi::serve(&doc)))
        .merge(assets::router(state))
}
