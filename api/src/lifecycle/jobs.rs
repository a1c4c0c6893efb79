//! The background jobs inside `parlo serve`: the mail outbox (drained whenever mail is
//! queued, and polled for retries), retention every `PARLO_RETENTION_INTERVAL_SECS`, when
//! `PARLO_BACKUP_INTERVAL_HOURS` is set backups, and the knowledge ingestion worker polling
//! its queue every `PARLO_KNOWLEDGE_POLL_MS` (claims are per job, so every process runs
//! one). Each run takes its job lock, so
//! with several processes on one PostgreSQL only one runs it at a time. Must never stop the
//! server because a job failed: failures are logged and retried at the next interval.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::archive::{self, Progress};
use super::backup;
use super::records;
use super::retention::{self, RetentionOptions, RetentionOutcome};
use crate::config::Config;
use crate::keyring::KeyRing;
use crate::knowledge::ingest::Ingestor;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::mistral::MistralClient;
use crate::model::Timestamp;
use crate::storage::{Job, Store};

/// The running jobs; [`Jobs::stop`] (or dropping) cancels them between transactions.
pub struct Jobs(Vec<JoinHandle<()>>);

impl Jobs {
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts the configured jobs. Refuses scheduled backups that could not be written.
pub fn spawn(
    store: Store,
    config: Arc<Config>,
    keys: Arc<KeyRing>,
    mailer: &Mailer,
    metrics: Metrics,
) -> anyhow::Result<Jobs> {
    let mut tasks = vec![mailer.spawn_worker()];
    if let Some(every) = config.knowledge.poll {
        let mistral = MistralClient::new(config.mistral_base_url.clone(), config.upstream_timeouts);
        let ingestor = Ingestor::new(store.clone(), &config, keys, mistral)?;
        tasks.push(tokio::spawn(knowledge_loop(ingestor, every)));
    }
    tasks.push(tokio::spawn(queue_depth_loop(
        store.clone(),
        metrics.clone(),
    )));
    let l = &config.lifecycle;
    if let Some(every) = l.retention_interval {
        let opts = RetentionOptions {
            batch_rows: l.retention_batch_rows,
            pause: l.retention_pause,
        };
        tasks.push(tokio::spawn(retention_loop(
            store.clone(),
            every,
            opts,
            metrics.clone(),
        )));
    }
    if let Some(every) = l.backup_interval {
        archive::recipients(&l.backup_recipients)?;
        if config.database_url.is_postgres() && l.backup_database_url.is_none() {
            anyhow::bail!(
                "PARLO_BACKUP_INTERVAL_HOURS is set but PARLO_BACKUP_DATABASE_URL is not; \
                 backing up PostgreSQL needs a role with BYPASSRLS"
            );
        }
        tasks.push(tokio::spawn(backup_loop(
            store,
            config.clone(),
            every,
            metrics,
        )));
    }
    Ok(Jobs(tasks))
}

async fn retention_loop(store: Store, every: Duration, opts: RetentionOptions, metrics: Metrics) {
    loop {
        let started = std::time::Instant::now();
        let outcome = retention::run(&store, Timestamp::now(), opts).await;
        if !matches!(outcome, Ok(RetentionOutcome::AlreadyRunning)) {
            metrics.job("retention", outcome.is_ok(), started.elapsed());
        }
        match outcome {
            Ok(RetentionOutcome::Ran(r)) => tracing::info!(
                conversations = r.deleted.conversations,
                messages = r.deleted.messages,
                attachments = r.deleted.attachments,
                workspaces = r.workspaces,
                rate_limit_windows = r.rate_limit_windows,
                elapsed_ms = r.elapsed.as_millis() as u64,
                "retention run finished"
            ),
            Ok(RetentionOutcome::AlreadyRunning) => {
                tracing::debug!("retention is running in another process")
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "retention run failed"),
        }
        tokio::time::sleep(every).await;
    }
}

async fn knowledge_loop(ingestor: Ingestor, every: Duration) {
    loop {
        match ingestor.run_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "knowledge ingestion ran"),
            Err(e) => tracing::warn!(error = %e, "knowledge ingestion could not claim jobs"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Every 15 s, the depth of the durable queues for the metrics.
async fn queue_depth_loop(store: Store, metrics: Metrics) {
    loop {
        record_queue_depths(&store, &metrics).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

/// Sets the metrics' queue depths: knowledge ingestion jobs waiting (one count per
/// workspace) and mail waiting in the outbox.
pub async fn record_queue_depths(store: &Store, metrics: &Metrics) {
    match store.knowledge_queue_depth().await {
        Ok(n) => metrics.queue_depth("knowledge", n),
        Err(e) => tracing::warn!(error = %e, "counting the ingestion queue failed"),
    }
    match store.outbox_summary().await {
        Ok(s) => metrics.queue_depth("mail", s.pending),
        Err(e) => tracing::warn!(error = %e, "counting the mail outbox failed"),
    }
}

async fn backup_loop(store: Store, config: Arc<Config>, every: Duration, metrics: Metrics) {
    // A restart does not mean a new backup: wait until the newest one is `every` old, but
    // at least a minute so start-up is not slowed down.
    let since = backup::newest_backup(&config.lifecycle.backup_dir)
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    let mut wait = match since {
        Some(age) => every.saturating_sub(age),
        None => Duration::ZERO,
    }
    .max(Duration::from_secs(60));
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        let lock = match store.try_lock_job(Job::Backup).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!("a backup is running in another process");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take the backup lock");
                continue;
            }
        };
        let started = std::time::Instant::now();
        let result = backup::run(&config, Progress::Log).await;
        metrics.job("backup", result.is_ok(), started.elapsed());
        records::backup(&store, &result).await;
        match result {
            Ok(r) => tracing::info!(
                path = %r.path.display(),
                bytes = r.encrypted_bytes,
                pruned = r.pruned.len(),
                elapsed_ms = r.elapsed.as_millis() as u64,
                "backup written"
            ),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "backup failed"),
        }
        lock.release().await;
    }
}
