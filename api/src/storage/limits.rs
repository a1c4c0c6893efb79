//! Rate-limit counters: global, keyed by an HMAC of the key (keys contain client IPs; see
//! `crate::ratelimit`), one autocommit statement per request (see `Store::counter_conn`).
//! Expired windows are deleted by retention (`purge_rate_limits`).

use super::error::{StoreError, StoreResult};
use super::store::Store;
use crate::model::{RateLimitHit, Timestamp};

/// `INSERT INTO rate_limits … VALUES ($1, $2, 1, $3), ($4, $5, 1, $6), …` for `n` hits.
fn rate_limit_upsert(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("(${}, ${}, 1, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    format!(
        "INSERT INTO rate_limits (key_hash, window_start, count, expires_at) VALUES {} \
         ON CONFLICT (key_hash, window_start) DO UPDATE SET count = rate_limits.count + 1 \
         RETURNING key_hash, count",
        values.join(", ")
    )
}

impl Store {
    /// Adds one to each counter (one statement, one transaction) and returns the new counts
    /// in the order of `hits`. The key hashes must be distinct.
    pub async fn hit_rate_limits(&self, hits: &[RateLimitHit]) -> StoreResult<Vec<i64>> {
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let sql = rate_limit_upsert(hits.len());
        let mut conn = self.counter_conn().await?;
        let mut q = conn.query_as::<(Vec<u8>, i32)>(&sql);
        for h in hits {
            q = q.bind(&h.key_hash).bind(h.window_start).bind(h.expires_at);
        }
        let rows = q.fetch_all().await?;
        hits.iter()
            .map(|h| {
                rows.iter()
                    .find(|(k, _)| *k == h.key_hash)
                    .map(|(_, n)| i64::from(*n))
                    .ok_or(StoreError::NotFound)
            })
            .collect()
    }

    /// Deletes every window that ended before `now`; returns how many.
    pub async fn purge_rate_limits(&self, now: Timestamp) -> StoreResult<u64> {
        self.in_global(async |tx| {
            Ok(tx
                .query("DELETE FROM rate_limits WHERE expires_at < $1")
                .bind(now)
                .execute()
                .await?)
        })
        .await
    }
}
