//! Records the outcome of lifecycle operations in the database, where every server process
//! can read them for the trust page's live checks: backups (from the serve job and `parlo
//! backup`), restore drills (`parlo restore --verify`) and retention runs (both). Recording
//! never fails the operation itself: a database that cannot be reached is logged and
//! skipped. Details hold counts, sizes and dates only — never a path, URL or error text with
//! an address in it.

use serde_json::json;

use super::backup::BackupReport;
use super::restore::CheckReport;
use crate::config::Config;
use crate::model::{Operation, OperationKind, PurgeCounts, Timestamp};
use crate::storage::{self, Store};

/// For the command line: the configured database to record in, or `None` (with a warning
/// on stderr) when it cannot be opened — the operation's own outcome stands either way.
pub async fn open_store(config: &Config) -> Option<Store> {
    match storage::open(&config.database_url, None).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "parlo: warning: could not record the outcome for the trust page ({e:#}); \
                 the server will not see it"
            );
            None
        }
    }
}

/// Records `details` as a passed operation, or a failed one when there are none.
async fn record(store: &Store, kind: OperationKind, details: Option<serde_json::Value>) {
    let op = Operation {
        at: Timestamp::now(),
        passed: details.is_some(),
        details: details.unwrap_or_else(|| json!({})),
    };
    if let Err(e) = store.record_operation(kind, &op).await {
        tracing::warn!(error = %e, kind = kind.as_str(), "could not record the operation's outcome");
    }
}

pub async fn backup(store: &Store, result: &anyhow::Result<BackupReport>) {
    let details = result.as_ref().ok().map(|r| {
        json!({
            "bytes": r.encrypted_bytes,
            "tables": r.manifest.tables.len(),
            "rows": r.manifest.tables.values().sum::<i64>(),
            "created_at": r.manifest.created_at,
        })
    });
    record(store, OperationKind::Backup, details).await
}

pub async fn restore_drill(store: &Store, result: &anyhow::Result<CheckReport>) {
    let details = result.as_ref().ok().map(|r| {
        json!({
            "tables": r.tables.len(),
            "rows": r.tables.iter().filter_map(|t| t.found).sum::<i64>(),
            "backup_created_at": r.created_at,
        })
    });
    record(store, OperationKind::RestoreDrill, details).await
}

/// A retention run: what it deleted in how many workspaces, `None` when it failed.
pub async fn retention(store: &Store, outcome: Option<(&PurgeCounts, usize)>) {
    let details = outcome.map(|(d, workspaces)| {
        json!({
            "conversations": d.conversations,
            "messages": d.messages,
            "attachments": d.attachments,
            "rows": d.conversations + d.messages + d.attachments,
            "workspaces": workspaces,
        })
    });
    record(store, OperationKind::Retention, details).await
}
