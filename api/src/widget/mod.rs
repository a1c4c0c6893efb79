//! The widget API (`/api/widget/v1/…`) and the published widget bundles.
//!
//! Claims, not URLs: every endpoint after `session` takes workspace, bot and conversation
//! from the verified token in the Authorization header — never from the path, the query or
//! the body — and checks the request's Origin against the origin in the token.

mod api;
pub mod assets;
mod chat;
pub mod token;

use axum::Router;

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(api::router())
        .merge(assets::router(state))
}
