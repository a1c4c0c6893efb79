//! Rate limits of the widget API, counted in the database (`crate::ratelimit`) so every
//! process enforces one limit: requests per end-user IP on every endpoint, and on top of it
//! messages per conversation for a turn or an attachment.

use std::time::Duration;

use crate::error::{AppError, AppResult};
use crate::http::client_ip::ClientIp;
use crate::model::ConversationId;
use crate::ratelimit::Limit;
use crate::state::AppState;

/// The rate-limit key of an end user's IP (hashed before it is stored).
pub fn ip_limit_key(ip: ClientIp) -> String {
    format!("widget-ip:{}", ip.0)
}

pub async fn limit_ip(state: &AppState, ip: ClientIp) -> AppResult<()> {
    state
        .limiter
        .hit(
            &ip_limit_key(ip),
            state.config.rate_limit_ip_per_minute,
            Duration::from_secs(60),
        )
        .await
        .map_err(|r| AppError::RateLimited {
            retry_after_secs: r.secs,
        })
}

/// The end user's IP and conversation limits, counted in one round trip.
pub async fn limit_turn(
    state: &AppState,
    ip: ClientIp,
    conversation: ConversationId,
) -> AppResult<()> {
    let minute = Duration::from_secs(60);
    let (ip_key, conversation_key) = (ip_limit_key(ip), format!("widget-conv:{conversation}"));
    state
        .limiter
        .hit_all(&[
            Limit {
                key: &ip_key,
                limit: state.config.rate_limit_ip_per_minute,
                window: minute,
            },
            Limit {
                key: &conversation_key,
                limit: state.config.rate_limit_conversation_per_minute,
                window: minute,
            },
        ])
        .await
        .map_err(|r| AppError::RateLimited {
            retry_after_secs: r.secs,
        })
}
