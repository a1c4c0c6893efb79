//! Request rate limits shared by every process on the database: fixed windows counted in the
//! `rate_limits` table, so two `parlo serve` instances behind one load balancer enforce one
//! limit. Keys are hashed before they are stored (they contain client IPs).

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::sha256;
use crate::storage::{Store, Timestamp};

#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
}

/// The limit is reached; try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub secs: u64,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Counts one request for `key` and refuses it when more than `limit` fell into the
    /// current `window`. A database error lets the request through (and is logged): the
    /// request will meet the same database next and fail there with a clear error.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), RetryAfter> {
        let window_ms = i64::try_from(window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1000);
        let now = Timestamp::now();
        let start = now.0 - now.0.rem_euclid(window_ms);
        let expires = Timestamp(start + window_ms);
        match self
            .store
            .hit_rate_limit(&sha256(key.as_bytes()), Timestamp(start), expires)
            .await
        {
            Ok(count) if count > i64::from(limit) => {
                let secs = ((expires.0 - now.0) as u64).div_ceil(1000).max(1);
                Err(RetryAfter { secs })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "rate limit check failed; allowing the request");
                Ok(())
            }
        }
    }
}
