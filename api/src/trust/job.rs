//! Runs the checks at start and then every interval, under the trust-check job lock so that
//! with several processes on one database only one measures at a time; the others show what
//! it stored. Must never stop the server: a failed run is logged and retried.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;

use super::checks::{Inputs, run_all};
use crate::config::Config;
use crate::dist::Dist;
use crate::metrics::Metrics;
use crate::model::Timestamp;
use crate::storage::{Job, Store};

/// The running schedule; dropping it stops it.
pub struct TrustJob(JoinHandle<()>);

impl Drop for TrustJob {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ran {
        checks: usize,
    },
    /// Another process holds the lock; it stores the results.
    AlreadyRunning,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "Parlo/",
            env!("CARGO_PKG_VERSION"),
            " (trust check)"
        ))
        .build()
        .unwrap_or_default()
}

/// Runs every check once under the job lock and stores the results.
pub async fn run_once(
    store: &Store,
    config: &Config,
    dist: &Dist,
    now: Timestamp,
) -> anyhow::Result<RunOutcome> {
    let Some(lock) = store.try_lock_job(Job::TrustChecks).await? else {
        return Ok(RunOutcome::AlreadyRunning);
    };
    let http = client();
    let inputs = Inputs {
        store,
        config,
        dist,
        http: &http,
        now,
    };
    let results = run_all(&inputs).await;
    let mut saved = Ok(());
    for r in &results {
        if let Err(e) = store.save_check(r).await {
            saved = Err(e);
        }
    }
    lock.release().await;
    saved?;
    Ok(RunOutcome::Ran {
        checks: results.len(),
    })
}

/// Starts the schedule: a run now, then one every `config.trust_check_interval`.
pub fn spawn(store: Store, config: Arc<Config>, dist: Dist, metrics: Metrics) -> TrustJob {
    TrustJob(tokio::spawn(async move {
        let every = config.trust_check_interval;
        loop {
            let started = Instant::now();
            match run_once(&store, &config, &dist, Timestamp::now()).await {
                Ok(RunOutcome::Ran { checks }) => {
                    metrics.job("trust_checks", true, started.elapsed());
                    tracing::debug!(checks, "trust checks ran");
                }
                Ok(RunOutcome::AlreadyRunning) => {
                    tracing::debug!("trust checks are running in another process")
                }
                Err(e) => {
                    metrics.job("trust_checks", false, started.elapsed());
                    tracing::warn!(error = %format!("{e:#}"), "trust checks failed");
                }
            }
            tokio::time::sleep(every).await;
        }
    }))
}
