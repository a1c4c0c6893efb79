//! `parlo restore`: the restore drill (`--verify`) and the real restore.
//!
//! Both decrypt a backup into a private temporary directory (see `archive::open`), refuse
//! it unless its signature verifies with a trusted key ([`trusted_keys`]), then:
//! - `--verify` restores it into an isolated temporary database (SQLite: the decrypted file
//!   itself; PostgreSQL: a database created for the purpose and dropped afterwards), checks
//!   integrity (`PRAGMA integrity_check` and `foreign_key_check`; `pg_restore
//!   --exit-on-error` succeeding) and compares every table's row count with the counts
//!   recorded in the backup, then cleans up;
//! - a real restore writes into an empty target only (refusing one that has any table),
//!   then runs the same checks on the target.
//!
//! Must never touch a non-empty target, nor leave decrypted data behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};

use super::archive::{self, Manifest, Opened, Progress};
use super::backup::pg_tool;
use crate::config::{Config, DatabaseUrl};
use crate::keyring::{self, BackupVerifyKey};
use crate::storage::census::{self, PgUnrestricted, SqliteFile, sqlite_path};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected: Option<i64>,
    pub found: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub backend: String,
    pub created_at: String,
    /// Where the data was restored (a temporary database for `--verify`).
    pub restored_into: String,
    pub integrity: String,
    pub tables: Vec<TableCheck>,
}

impl CheckReport {
    pub fn mismatches(&self) -> Vec<&TableCheck> {
        self.tables
            .iter()
            .filter(|t| t.expected != t.found)
            .collect()
    }

    pub fn ok(&self) -> bool {
        self.integrity == "ok" && self.mismatches().is_empty()
    }

    /// Fails unless integrity and every count check out.
    pub fn into_result(self) -> anyhow::Result<CheckReport> {
        if self.integrity != "ok" {
            bail!("integrity check failed: {}", self.integrity);
        }
        let bad = self.mismatches();
        if !bad.is_empty() {
            bail!(
                "row counts differ from the backup's manifest: {}",
                bad.iter()
                    .map(|t| format!("{} expected {:?} found {:?}", t.table, t.expected, t.found))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(self)
    }
}

fn compare(
    manifest: &Manifest,
    found: &BTreeMap<String, i64>,
    integrity: String,
    restored_into: String,
) -> CheckReport {
    let mut names: Vec<&String> = manifest.tables.keys().chain(found.keys()).collect();
    names.sort();
    names.dedup();
    CheckReport {
        backend: manifest.backend.clone(),
        created_at: manifest.created_at.clone(),
        restored_into,
        integrity,
        tables: names
            .into_iter()
            .map(|n| TableCheck {
                table: n.clone(),
                expected: manifest.tables.get(n).copied(),
                found: found.get(n).copied(),
            })
            .collect(),
    }
}

/// The keys whose backup signatures are trusted: `PARLO_BACKUP_VERIFY_KEY`, and this
/// machine's own signing keys (`keyring::own_backup_verify_keys`). Never generates a key file.
pub fn trusted_keys(config: &Config) -> anyhow::Result<Vec<BackupVerifyKey>> {
    let mut trusted = config.lifecycle.backup_verify_keys.clone();
    trusted.extend(keyring::own_backup_verify_keys(
        &config.key_source,
        &config.key_file,
        config.is_production(),
    )?);
    Ok(trusted)
}

async fn open(
    config: &Config,
    backup: &Path,
    identity: &Path,
    progress: Progress,
) -> anyhow::Result<Opened> {
    let trusted = trusted_keys(config)?;
    let (backup, identity) = (backup.to_owned(), identity.to_owned());
    tokio::task::spawn_blocking(move || archive::open(&backup, &identity, &trusted, progress))
        .await?
}

/// The restore drill. Fails if integrity or any row count does not check out.
pub async fn verify(
    config: &Config,
    backup: &Path,
    identity: &Path,
    progress: Progress,
) -> anyhow::Result<CheckReport> {
    let opened = open(config, backup, identity, progress).await?;
    let report = match opened.manifest.backend.as_str() {
        "sqlite" => {
            let mut file = SqliteFile::open_read_only(&opened.payload).await?;
            let integrity = file.integrity().await?;
            let found = file.census().await?.tables;
            file.close().await?;
            compare(
                &opened.manifest,
                &found,
                integrity,
                "a temporary SQLite file".into(),
            )
        }
        "postgres" => {
            let server = config.lifecycle.backup_database_url.as_ref().context(
                "verifying a PostgreSQL backup needs PARLO_BACKUP_DATABASE_URL (a role with \
                 BYPASSRLS and CREATEDB) to create the temporary database on",
            )?;
            postgres_verify(server, &opened, progress).await?
        }
        other => bail!("unknown backend {other:?} in the backup"),
    };
    drop(opened);
    report.into_result()
}

fn database_named(server: &DatabaseUrl, db: &str) -> anyhow::Result<DatabaseUrl> {
    let mut u = url::Url::parse(server.expose()).context("parsing the PostgreSQL URL")?;
    u.set_path(db);
    Ok(DatabaseUrl::new(u.to_string()))
}

async fn pg_restore(target: &DatabaseUrl, payload: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let mut cmd = pg_tool("pg_restore", target)?;
    cmd.arg("--exit-on-error")
        .args(extra)
        .arg(payload)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("starting pg_restore (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "pg_restore failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn postgres_verify(
    server: &DatabaseUrl,
    opened: &Opened,
    progress: Progress,
) -> anyhow::Result<CheckReport> {
    let mut admin = PgUnrestricted::connect(server).await?;
    let mut rand = [0u8; 6];
    getrandom::fill(&mut rand).expect("OS random number generator");
    let name = format!("parlo_restore_verify_{}", hex::encode(rand));
    admin
        .create_database(&name)
        .await
        .context("creating the temporary database (the role needs CREATEDB)")?;
    progress.say(&format!(
        "restore: restoring into temporary database {name}"
    ));
    let result = async {
        let target = database_named(server, &name)?;
        // Owners and grants name roles of the source server; the drill checks data only.
        pg_restore(&target, &opened.payload, &["--no-owner", "--no-acl"]).await?;
        let mut conn = PgUnrestricted::connect(&target).await?;
        let found = conn.census().await?.tables;
        conn.close().await?;
        Ok::<_, anyhow::Error>(compare(
            &opened.manifest,
            &found,
            "ok".into(),
            format!("temporary database {name}"),
        ))
    }
    .await;
    let dropped = admin.drop_database(&name).await;
    let _ = admin.close().await;
    let report = result?;
    dropped.with_context(|| format!("dropping the temporary database {name}"))?;
    progress.say(&format!("restore: dropped temporary database {name}"));
    Ok(report)
}

/// Restores into an empty target: `into` (a SQLite path or URL, or a PostgreSQL URL), else
/// the configured database (SQLite) or `PARLO_BACKUP_DATABASE_URL` (PostgreSQL).
pub async fn restore(
    config: &Config,
    backup: &Path,
    identity: &Path,
    into: Option<&str>,
    progress: Progress,
) -> anyhow::Result<CheckReport> {
    let opened = open(config, backup, identity, progress).await?;
    let report = match opened.manifest.backend.as_str() {
        "sqlite" => {
            let target = match into {
                Some(t) if t.starts_with("sqlite:") => sqlite_path(&DatabaseUrl::new(t))?,
                Some(t) => PathBuf::from(t),
                None if !config.database_url.is_postgres() => sqlite_path(&config.database_url)?,
                None => bail!("this is a SQLite backup; name the target file with --into"),
            };
            sqlite_restore(&opened, &target).await?
        }
        "postgres" => {
            let target = match into {
                Some(u) => DatabaseUrl::new(u),
                None => config.lifecycle.backup_database_url.clone().context(
                    "name the target database with --into postgres://… (or set PARLO_BACKUP_DATABASE_URL)",
                )?,
            };
            if !target.is_postgres() {
                bail!("this is a PostgreSQL backup; --into must be a postgres:// URL");
            }
            let mut conn = PgUnrestricted::connect(&target).await?;
            let objects = conn.public_objects().await?;
            if objects > 0 {
                bail!(
                    "refusing to restore into {}: it is not empty ({objects} tables or sequences in schema public)",
                    target.redacted()
                );
            }
            progress.say(&format!("restore: restoring into {}", target.redacted()));
            // One transaction: a failure leaves the target empty. Owners and grants are
            // restored, so the roles must exist and the restoring role must be able to
            // assign them (a superuser).
            pg_restore(&target, &opened.payload, &["--single-transaction"]).await?;
            let found = conn.census().await?.tables;
            conn.close().await?;
            compare(&opened.manifest, &found, "ok".into(), target.redacted())
        }
        other => bail!("unknown backend {other:?} in the backup"),
    };
    drop(opened);
    report.into_result()
}

async fn sqlite_restore(opened: &Opened, target: &Path) -> anyhow::Result<CheckReport> {
    if target.exists() && std::fs::metadata(target)?.len() > 0 {
        let tables = census::sqlite_table_count(target).await?;
        if tables > 0 {
            bail!(
                "refusing to restore into {}: it is not empty ({tables} tables)",
                target.display()
            );
        }
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", target.display()));
        if side.exists() {
            std::fs::remove_file(&side)?;
        }
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let staging = PathBuf::from(format!("{}.restoring", target.display()));
    std::fs::copy(&opened.payload, &staging)
        .with_context(|| format!("writing {}", staging.display()))?;
    std::fs::File::open(&staging)?.sync_all()?;
    std::fs::rename(&staging, target)
        .with_context(|| format!("moving the restored database to {}", target.display()))?;
    let mut file = SqliteFile::open(target).await?;
    let integrity = file.integrity().await?;
    let found = file.census().await?.tables;
    file.close().await?;
    Ok(compare(
        &opened.manifest,
        &found,
        integrity,
        target.display().to_string(),
    ))
}
