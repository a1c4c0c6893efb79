//! Brute-force limits of the site (login per address and per account, MFA codes per
//! account, password re-checks, sign-ups per address), counted by the shared,
//! database-backed `crate::ratelimit` so every `parlo serve` process enforces one limit.

use std::time::Duration;

use crate::state::AppState;

use super::page::PageError;

pub const LOGIN_PER_ACCOUNT: (u32, Duration) = (10, Duration::from_secs(15 * 60));
pub const LOGIN_PER_IP: (u32, Duration) = (100, Duration::from_secs(15 * 60));
pub const MFA_PER_ACCOUNT: (u32, Duration) = (10, Duration::from_secs(15 * 60));
pub const SIGNUP_PER_IP: (u32, Duration) = (20, Duration::from_secs(3600));

/// Counts one attempt against `key`; a 429 page once more than `limit` came within `window`.
pub async fn hit(
    state: &AppState,
    key: &str,
    (limit, window): (u32, Duration),
) -> Result<(), PageError> {
    state
        .limiter
        .hit(&format!("site:{key}"), limit, window)
        .await
        .map_err(|retry| {
            tracing::warn!(
                limit_key = key.split(':').next().unwrap_or(""),
                "site rate limit reached"
            );
            PageError::RateLimited(retry.secs)
        })
}
