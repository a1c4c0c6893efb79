//! The data lifecycle's configuration (`crate::lifecycle`): the retention job's interval,
//! batch and pause, backups (directory, age recipients, post-backup command, local
//! retention, interval, the PostgreSQL role that dumps, the keys that verify a backup's
//! signature) and the operator audit head file. Checks what can be checked before anything
//! runs: recipients must be age X25519 keys, verify keys Ed25519 public keys and the backup
//! database a PostgreSQL URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;

use super::database_url::DatabaseUrl;
use super::settings::Settings;
use crate::keyring::BackupVerifyKey;

/// Retention, backups and the operator audit log (`crate::lifecycle`).
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `None`: `parlo serve` runs no retention job.
    pub retention_interval: Option<Duration>,
    pub retention_batch_rows: u32,
    pub retention_pause: Duration,
    pub backup_dir: PathBuf,
    /// Validated `age1…` X25519 recipients.
    pub backup_recipients: Vec<String>,
    /// Public keys whose backup signatures `parlo restore` trusts (`PARLO_BACKUP_VERIFY_KEY`),
    /// besides those derived from the master keys where they are present.
    pub backup_verify_keys: Vec<BackupVerifyKey>,
    pub backup_command: Option<String>,
    /// `None`: keep every local backup.
    pub backup_keep_days: Option<u32>,
    /// `None`: `parlo serve` writes no backups.
    pub backup_interval: Option<Duration>,
    pub backup_database_url: Option<DatabaseUrl>,
    pub audit_head_file: PathBuf,
}

impl LifecycleConfig {
    pub(super) fn from_settings(
        s: &Settings,
        data_dir: &Path,
        postgres: bool,
    ) -> anyhow::Result<Self> {
        let recipients: Vec<String> = s
            .backup_recipients
            .iter()
            .flatten()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        for r in &recipients {
            r.parse::<age::x25519::Recipient>().map_err(|e| {
                anyhow::anyhow!(
                    "PARLO_BACKUP_RECIPIENTS: {r:?} is not an age X25519 recipient (age1…): {e}"
                )
            })?;
        }
        let backup_verify_keys = s
            .backup_verify_key
            .iter()
            .flatten()
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                k.parse::<BackupVerifyKey>()
                    .map_err(|e| anyhow::anyhow!("PARLO_BACKUP_VERIFY_KEY: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Also meaningful with a SQLite PARLO_DATABASE_URL: an operator's machine drilling a
        // PostgreSQL backup against a scratch server.
        let backup_database_url = s.backup_database_url.clone().map(DatabaseUrl::new);
        if backup_database_url
            .as_ref()
            .is_some_and(|u| !u.is_postgres())
        {
            bail!("PARLO_BACKUP_DATABASE_URL must be a postgres:// URL");
        }
        Ok(LifecycleConfig {
            retention_interval: Some(s.retention_interval_secs.unwrap_or(3600))
                .filter(|&n| n > 0)
                .map(Duration::from_secs),
            retention_batch_rows: s.retention_batch_rows.unwrap_or(1000).clamp(1, 100_000),
            // SQLite has one writer and waiting writers poll for the lock in steps of up to
            // 100 ms: without a pause that long the purge starves requests (see
            // docs/bench-lifecycle.md). PostgreSQL needs only a breather.
            retention_pause: Duration::from_millis(s.retention_pause_ms.unwrap_or(if postgres {
                5
            } else {
                100
            })),
            backup_dir: s
                .backup_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("backups")),
            backup_recipients: recipients,
            backup_verify_keys,
            backup_command: s.backup_command.clone().filter(|c| !c.trim().is_empty()),
            backup_keep_days: Some(s.backup_keep_days.unwrap_or(14)).filter(|&d| d > 0),
            backup_interval: s
                .backup_interval_hours
                .filter(|&h| h > 0)
                .map(|h| Duration::from_secs(h * 3600)),
            backup_database_url,
            audit_head_file: s
                .audit_head_file
                .clone()
                .unwrap_or_else(|| data_dir.join("operator-audit.head")),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Settings};

    #[test]
    fn backup_recipients_must_be_age_keys() {
        let cli = Settings {
            backup_recipients: Some(vec!["ssh-ed25519 AAAA".into()]),
            ..Settings::default()
        };
        let err = Config::load(&cli, None, &|_| None).unwrap_err().to_string();
        assert!(err.contains("PARLO_BACKUP_RECIPIENTS"), "{err}");
        let key = age::x25519::Identity::generate().to_public().to_string();
        let cli = Settings {
            backup_recipients: Some(vec![key.clone()]),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &|_| None).unwrap();
        assert_eq!(c.lifecycle.backup_recipients, vec![key]);
        assert_eq!(c.lifecycle.backup_keep_days, Some(14));
        assert_eq!(c.lifecycle.backup_interval, None);
    }
}
