//! Request rate limits shared by every process on the database: fixed windows counted in the
//! `rate_limits` table, so two `parlo serve` instances behind one load balancer enforce one
//! limit. Keys contain client IPs, so only an HMAC of each is stored, keyed with a key
//! derived from the newest master key ([`RATE_LIMIT_KEY_LABEL`]): a plain hash of an IPv4
//! address is reversed by trying all 2^32 of them, an HMAC cannot be without the server's
//! key. Every process with the same master keys derives the same key, so they still share
//! one counter; rotating the master key starts every window afresh once. Expired windows
//! are deleted by retention (`lifecycle::retention`).

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keyring::{Key, MasterKeys};
use crate::model::{RateLimitHit, Timestamp};
use crate::storage::Store;

/// The purpose label of the rate-limit key derived from the master key.
pub const RATE_LIMIT_KEY_LABEL: &str = "rate-limit-keys";

#[derive(Clone)]
pub struct RateLimiter {
    store: Store,
    key: Arc<Key>,
}

/// One limit to count a request against: at most `limit` requests per `window` for `key`.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    pub key: &'a str,
    pub limit: u32,
    pub window: Duration,
}

/// The limit is reached; try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub secs: u64,
}

impl RateLimiter {
    pub fn new(store: Store, master: &MasterKeys) -> Self {
        Self {
            store,
            key: Arc::new(master.derive_current(RATE_LIMIT_KEY_LABEL)),
        }
    }

    /// What is stored for `key`: HMAC-SHA256 under the server's rate-limit key.
    pub fn stored_key(&self, key: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.bytes()).expect("any key length");
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Counts one request for `key` and refuses it when more than `limit` fell into the
    /// current `window`. A database error lets the request through (and is logged): the
    /// request will meet the same database next and fail there with a clear error.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), RetryAfter> {
        self.hit_all(&[Limit { key, limit, window }]).await
    }

    /// Counts one request against each limit, in one database round trip, and refuses it
    /// when any of them is exceeded (with the longest wait among those). Every counter is
    /// incremented either way, as separate [`Self::hit`] calls would. Keys must differ.
    pub async fn hit_all(&self, limits: &[Limit<'_>]) -> Result<(), RetryAfter> {
        debug_assert!(
            limits
                .iter()
                .enumerate()
                .all(|(i, a)| limits[..i].iter().all(|b| a.key != b.key)),
            "rate-limit keys of one request must differ"
        );
        let now = Timestamp::now();
        let hits: Vec<RateLimitHit> = limits
            .iter()
            .map(|l| {
                let window_ms = i64::try_from(l.window.as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1000);
                let start = now.0 - now.0.rem_euclid(window_ms);
                RateLimitHit {
                    key_hash: self.stored_key(l.key),
                    window_start: Timestamp(start),
                    expires_at: Timestamp(start + window_ms),
                }
            })
            .collect();
        let counts = match self.store.hit_rate_limits(&hits).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "rate limit check failed; allowing the request");
                return Ok(());
            }
        };
        let wait = limits
            .iter()
            .zip(&hits)
            .zip(counts)
            .filter(|((l, _), count)| *count > i64::from(l.limit))
            .map(|((_, h), _)| ((h.expires_at.0 - now.0) as u64).div_ceil(1000).max(1))
            .max();
        match wait {
            Some(secs) => Err(RetryAfter { secs }),
            None => Ok(()),
        }
    }
}
