//! Rate-limit counters (global, keys hashed; the policy is `crate::ratelimit`).

use super::ids::Timestamp;

/// One hit on a rate-limit counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHit {
    pub key_hash: Vec<u8>,
    pub window_start: Timestamp,
    /// When the counter row may be purged.
    pub expires_at: Timestamp,
}
