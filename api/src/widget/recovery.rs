//! Answers that outlive their process. While an answer streams, the driver (`turn.rs`)
//! saves the text so far into the `pending` row about every [`SAVE_EVERY`], and at least
//! every [`HEARTBEAT_EVERY`] even when no new text came (that write is the answer's
//! heartbeat, `messages.saved_at`). A process killed mid-stream (`kill -9`, OOM, power)
//! therefore leaves a `pending` row holding what the visitor had already seen, and a
//! heartbeat that stops.
//!
//! [`spawn`] runs at start-up and then periodically: every `pending` answer whose last save
//! (or, before the first, its creation) is older than [`stale_after`] becomes `interrupted`
//! with the saved text (`failed` if nothing was saved), exactly as if the stream had broken.
//!
//! Why a heartbeat and not an owner id: several `parlo serve` processes can share one
//! PostgreSQL, and a process starting up cannot tell whether another owner id is alive
//! without some sign of life — which the heartbeat is on its own. A live answer is saved
//! at least every two seconds, so no process ever ends another live process's answer, and
//! a restarted process needs to know nothing about the one that died. The limit is the
//! upstream read timeout (a live stream that is silent longer has failed anyway) but at
//! least three heartbeats, plus one heartbeat of margin.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::model::Timestamp;
use crate::storage::{Store, StoreResult};

/// How often a streaming answer's new text is saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How often a streaming answer is saved even without new text (its sign of life).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// How long a `pending` answer may go without a save before its process counts as gone.
pub fn stale_after(read_timeout: Duration) -> Duration {
    read_timeout.max(HEARTBEAT_EVERY * 3) + HEARTBEAT_EVERY
}

/// Ends every tenant's stale `pending` answers; returns how many.
pub async fn interrupt_stale(store: &Store, stale_after: Duration) -> StoreResult<u64> {
    let cutoff = Timestamp(Timestamp::now().0 - stale_after.as_millis() as i64);
    let mut ended = 0;
    for t in store.tenant_ids().await? {
        ended += store.interrupt_stale_answers(t, cutoff).await?;
    }
    Ok(ended)
}

/// Sweeps at once (answers left by a previous run of this process) and then every
/// `stale_after` (answers left by another process on the same database).
pub fn spawn(store: Store, read_timeout: Duration) -> JoinHandle<()> {
    let stale = stale_after(read_timeout);
    tokio::spawn(async move {
        loop {
            match interrupt_stale(&store, stale).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(answers = n, "ended answers whose process is gone"),
                Err(e) => tracing::warn!(error = %e, "ending stale answers failed"),
            }
            tokio::time::sleep(stale).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_answer_is_saved_several_times_before_it_counts_as_stale() {
        for read in [1, 5, 30, 300] {
            let stale = stale_after(Duration::from_secs(read));
            assert!(stale >= HEARTBEAT_EVERY * 3 + HEARTBEAT_EVERY);
            assert!(stale >= Duration::from_secs(read));
        }
    }
}
