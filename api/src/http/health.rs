//! Liveness and readiness for load balancers and orchestrators: `/healthz` says the process
//! is up; `/readyz` says it can serve — the database answers and has every migration this
//! binary was built with (a rolling upgrade that has not migrated yet is not ready).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

fn unavailable(reason: &str) -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": "unavailable", "reason": reason})),
    )
}

/// The process can serve: the database answers and its migrations are current.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return unavailable("database unreachable");
    }
    match state.store.missing_migrations().await {
        Ok(missing) if missing.is_empty() => (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "database": "ok", "migrations": "current"})),
        ),
        Ok(missing) => {
            tracing::warn!(?missing, "readiness check: migrations missing");
            unavailable("database migrations are not current")
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check could not read the migrations");
            unavailable("database migrations could not be read")
        }
    }
}
