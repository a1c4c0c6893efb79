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
//! | `assets.rs` | the published bundles from `dist/` |

pub mod assets;
mod attachments;
mod auth;
mod chat;
mod cors;
mod json;
mod limits;
mod rating;
pub mod recovery;
mod session;
pub mod token;
mod turn;

pub use session::preview_session;

use axum::Router;
use axum::routing::{delete, post, put};

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/api/widget/v1/session", post(session::start_session))
        .route(
            "/api/widget/v1/messages",
            post(chat::send_message).get(session::history),
        )
        .route(
            "/api/widget/v1/messages/{id}/rating",
            put(rating::rate_answer),
        )
        .route(
            "/api/widget/v1/conversation",
            delete(session::clear_conversation),
        )
        .merge(attachments::router())
        .layer(axum::middleware::from_fn(cors::cors));
    Router::new().merge(api).merge(assets::router(state))
}
