//! Retention: deletes conversations (with their messages and attachments) whose last
//! activity is older than their bot's `retention_days` (never more than 365). Works tenant by
//! tenant in small transactions so the API keeps getting the database between them, and
//! runs at most once at a time across processes (`Job::Retention`). Must never delete a
//! conversation that was active within its bot's retention, and never reads the clock
//! itself: callers pass `now`, so tests can travel in time. Each run also deletes the
//! rate-limit windows that have ended (they would otherwise pile up forever).

use std::time::{Duration, Instant};

use crate::model::{PurgeCounts, PurgeLimits, Timestamp};
use crate::storage::{Job, Store};

/// The longest retention a bot may have, whatever its row says.
pub const MAX_RETENTION_DAYS: i64 = 365;

#[derive(Debug, Clone, Copy)]
pub struct RetentionOptions {
    /// Most messages and attachments per transaction.
    pub batch_rows: u32,
    /// Sleep between transactions.
    pub pause: Duration,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        Self {
            batch_rows: 1000,
            pause: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RetentionReport {
    pub workspaces: usize,
    pub bots: usize,
    pub transactions: u64,
    pub deleted: PurgeCounts,
    /// Ended rate-limit windows deleted.
    pub rate_limit_windows: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl std::fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "deleted {} conversations, {} messages and {} attachments in {} workspaces, and {} ended rate-limit windows ({} bots, {} transactions, {:.1} s)",
            self.deleted.conversations,
            self.deleted.messages,
            self.deleted.attachments,
            self.workspaces,
            self.rate_limit_windows,
            self.bots,
            self.transactions,
            self.elapsed.as_secs_f64()
        )
    }
}

#[derive(Debug)]
pub enum RetentionOutcome {
    Ran(RetentionReport),
    /// Another process (or task) holds the retention lock; nothing was done.
    AlreadyRunning,
}

/// Runs retention once as of `now`, unless another run holds the lock.
pub async fn run(
    store: &Store,
    now: Timestamp,
    opts: RetentionOptions,
) -> anyhow::Result<RetentionOutcome> {
    let Some(lock) = store.try_lock_job(Job::Retention).await? else {
        return Ok(RetentionOutcome::AlreadyRunning);
    };
    let result = purge(store, now, opts).await;
    let outcome = result.as_ref().ok().map(|r| (&r.deleted, r.workspaces));
    super::records::retention(store, outcome).await;
    lock.release().await;
    result.map(RetentionOutcome::Ran)
}

/// The purge itself, without the lock (callers hold it).
async fn purge(
    store: &Store,
    now: Timestamp,
    opts: RetentionOptions,
) -> anyhow::Result<RetentionReport> {
    let started = Instant::now();
    let limits = PurgeLimits {
        rows: opts.batch_rows.max(1),
        conversations: (opts.batch_rows / 10).max(1),
    };
    let mut report = RetentionReport::default();
    for t in store.tenant_ids().await? {
        report.workspaces += 1;
        for bot in store.bots(t).await? {
            report.bots += 1;
            let days = i64::from(bot.settings.retention_days).clamp(1, MAX_RETENTION_DAYS);
            let cutoff = now.minus_days(days);
            loop {
                let n = store.purge_expired(t, bot.id, cutoff, limits).await?;
                report.transactions += 1;
                if n.total() == 0 {
                    break;
                }
                report.deleted.add(n);
                if !opts.pause.is_zero() {
                    tokio::time::sleep(opts.pause).await;
                }
            }
        }
    }
    report.rate_limit_windows = store.purge_rate_limits(now).await?;
    report.elapsed = started.elapsed();
    Ok(report)
}
