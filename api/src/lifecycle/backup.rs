//! `parlo backup`: a consistent snapshot of the whole database, row counts taken inside the
//! same snapshot, sealed with age to the configured recipients (see `archive`), written
//! atomically into the backup directory, optionally handed to an off-site command, and old
//! local backups pruned. Every backup is signed with the server's backup signing key
//! (derived from the newest master key; see `archive`).
//!
//! - SQLite: `VACUUM INTO` a private temporary file next to the backups (a transactionally
//!   consistent copy that does not block writers for long), counted, then encrypted.
//! - PostgreSQL: a REPEATABLE READ transaction exports its snapshot; the counts are taken in
//!   it and `pg_dump --format=custom --snapshot=…` dumps exactly that state, streamed into
//!   the encryptor (no plaintext on disk). Row-level security is forced even for the table
//!   owner, so the dumping role (`PARLO_BACKUP_DATABASE_URL`) must have BYPASSRLS.
//!
//! Must never write a backup without a recipient, nor pass a password on a command line.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use super::archive::{self, Manifest, Progress, Sealer};
use crate::config::{Config, DatabaseUrl};
use crate::keyring;
use crate::storage::census::{self, PgUnrestricted, SqliteFile};

#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub encrypted_bytes: u64,
    pub pruned: Vec<PathBuf>,
    pub elapsed: Duration,
}

/// Writes one backup as configured.
pub async fn run(config: &Config, progress: Progress) -> anyhow::Result<BackupReport> {
    let l = &config.lifecycle;
    let recipients = archive::recipients(&l.backup_recipients)?;
    let signer =
        keyring::backup_signing_key(&config.key_source, &config.key_file, config.is_production())?;
    let started = Instant::now();
    create_private_dir(&l.backup_dir)?;
    let backend = if config.database_url.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
        ))
        .expect("formattable");
    let final_path = l.backup_dir.join(format!("parlo-{backend}-{stamp}.age"));
    let mut manifest = Manifest {
        format: 1,
        backend: backend.to_owned(),
        created_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .expect("formattable"),
        parlo_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version: 0,
        tables: BTreeMap::new(),
        payload_bytes: 0,
        payload_sha256: String::new(),
        signing_key: String::new(),
    };
    progress.say(&format!("backup: writing {}", final_path.display()));
    let (path, manifest) = if config.database_url.is_postgres() {
        let url = l.backup_database_url.as_ref().context(
            "backing up PostgreSQL needs PARLO_BACKUP_DATABASE_URL: a role with BYPASSRLS \
             (row-level security is forced even for the table owner), e.g. \
             CREATE ROLE parlo_backup LOGIN BYPASSRLS; GRANT pg_read_all_data TO parlo_backup",
        )?;
        postgres_backup(url, &final_path, &recipients, manifest, signer, progress).await?
    } else {
        let snapshot_dir = tempfile::Builder::new()
            .prefix(".snapshot-")
            .tempdir_in(&l.backup_dir)
            .context("creating a private snapshot directory")?;
        let snapshot = snapshot_dir.path().join("snapshot.db");
        sqlite_snapshot(&config.database_url, &snapshot, &mut manifest).await?;
        let total = std::fs::metadata(&snapshot)?.len();
        tokio::task::spawn_blocking(move || {
            let mut sealer = Sealer::create(&final_path, &recipients, progress, Some(total))?;
            let copied =
                std::fs::File::open(&snapshot).and_then(|mut f| std::io::copy(&mut f, &mut sealer));
            match copied {
                Ok(_) => sealer.finish(manifest, &signer),
                Err(e) => {
                    sealer.abandon();
                    Err(e).context("encrypting the snapshot")
                }
            }
        })
        .await??
    };
    let encrypted_bytes = std::fs::metadata(&path)?.len();
    progress.say(&format!(
        "backup: wrote {} ({} tables, {} rows, {:.1} MiB encrypted)",
        path.display(),
        manifest.tables.len(),
        manifest.tables.values().sum::<i64>(),
        encrypted_bytes as f64 / (1024.0 * 1024.0)
    ));
    if let Some(cmd) = &l.backup_command {
        progress.say(&format!("backup: handing {} to {cmd:?}", path.display()));
        hand_off(cmd, &path).await?;
    }
    let pruned = match l.backup_keep_days {
        Some(days) => prune(
            &l.backup_dir,
            Duration::from_secs(u64::from(days) * 86_400),
            &path,
        )?,
        None => Vec::new(),
    };
    for p in &pruned {
        progress.say(&format!("backup: deleted old backup {}", p.display()));
    }
    Ok(BackupReport {
        path,
        manifest,
        encrypted_bytes,
        pruned,
        elapsed: started.elapsed(),
    })
}

/// Creates the backup directory readable by the server's user only (0700), and tightens an
/// existing one to 0700: a directory made earlier by hand, or by another tool, keeps no
/// looser permissions once backups are written into it.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .with_context(|| format!("creating the backup directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || {
                format!(
                    "making the backup directory {} private (mode 0700)",
                    dir.display()
                )
            },
        )?;
    }
    Ok(())
}

async fn sqlite_snapshot(
    url: &DatabaseUrl,
    snapshot: &Path,
    manifest: &mut Manifest,
) -> anyhow::Result<()> {
    let source = census::sqlite_path(url)?;
    if !source.exists() {
        bail!("there is no database at {} to back up", source.display());
    }
    census::sqlite_vacuum_into(&source, snapshot).await?;
    let mut snap = SqliteFile::open_read_only(snapshot).await?;
    let counted = snap.census().await?;
    snap.close().await?;
    manifest.tables = counted.tables;
    manifest.schema_version = counted.schema_version;
    Ok(())
}

/// The URL without its password, for libpq tools, and the password for `PGPASSWORD`.
pub fn libpq_target(url: &DatabaseUrl) -> anyhow::Result<(String, Option<String>)> {
    let mut u = url::Url::parse(url.expose()).context("parsing the PostgreSQL URL")?;
    let password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = u.set_password(None);
    Ok((u.to_string(), password))
}

/// A libpq tool (`pg_dump`, `pg_restore`) reaching `url`, its password in the environment.
pub fn pg_tool(tool: &str, url: &DatabaseUrl) -> anyhow::Result<Command> {
    let (target, password) = libpq_target(url)?;
    let mut cmd = Command::new(tool);
    without_parlo_secrets(&mut cmd);
    cmd.arg("--no-password").arg(format!("--dbname={target}"));
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    Ok(cmd)
}

async fn postgres_backup(
    url: &DatabaseUrl,
    final_path: &Path,
    recipients: &[age::x25519::Recipient],
    mut manifest: Manifest,
    signer: ed25519_dalek::SigningKey,
    progress: Progress,
) -> anyhow::Result<(PathBuf, Manifest)> {
    let mut conn = PgUnrestricted::connect(url).await?;
    let snapshot = conn.export_snapshot().await?;
    let counted = conn.census().await?;
    manifest.tables = counted.tables;
    manifest.schema_version = counted.schema_version;
    let mut cmd = pg_tool("pg_dump", url)?;
    cmd.arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let final_path = final_path.to_owned();
    let recipients = recipients.to_vec();
    // The exporting transaction stays open (conn is held here) until pg_dump is done.
    let sealed = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .spawn()
            .context("starting pg_dump (is the PostgreSQL client installed?)")?;
        let mut stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut stdout = child.stdout.take().expect("piped");
        let mut sealer = Sealer::create(&final_path, &recipients, progress, None)?;
        let copied = std::io::copy(&mut stdout, &mut sealer);
        let status = child.wait()?;
        let errors = errors.join().unwrap_or_default();
        match (copied, status.success()) {
            (Ok(_), true) => sealer.finish(manifest, &signer),
            (copied, _) => {
                sealer.abandon();
                bail!(
                    "pg_dump failed ({status}): {}{}",
                    errors.trim(),
                    copied.err().map(|e| format!(" ({e})")).unwrap_or_default()
                )
            }
        }
    })
    .await?;
    conn.end_snapshot().await;
    let _ = conn.close().await;
    sealed
}

/// Child processes get none of Parlo's own settings: the key variables and database URLs
/// are secrets they have no use for.
fn without_parlo_secrets(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PARLO_") {
            cmd.env_remove(key);
        }
    }
}

/// Runs the operator's command with the backup's path as `$1`, without Parlo's secrets in
/// its environment.
async fn hand_off(cmd: &str, path: &Path) -> anyhow::Result<()> {
    let cmd = cmd.to_owned();
    let path = path.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        let mut sh = Command::new("sh");
        without_parlo_secrets(&mut sh);
        sh.env_remove("PGPASSWORD")
            .arg("-c")
            .arg(&cmd)
            .arg("parlo-backup")
            .arg(&path)
            .stdin(Stdio::null())
            .status()
    })
    .await?
    .context("running PARLO_BACKUP_COMMAND")?;
    if !status.success() {
        bail!("PARLO_BACKUP_COMMAND failed ({status}); the local backup was kept");
    }
    Ok(())
}

/// Deletes this directory's backups (and abandoned partial files) older than `keep`, never
/// `current`. Returns what it deleted.
pub fn prune(dir: &Path, keep: Duration, current: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cutoff = SystemTime::now()
        .checked_sub(keep)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut deleted = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("parlo-")
            && (name.ends_with(".age") || name.ends_with(".age.partial"));
        if !ours || path == current || !entry.file_type()?.is_file() {
            continue;
        }
        if entry.metadata()?.modified()? < cutoff {
            std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
            deleted.push(path);
        }
    }
    deleted.sort();
    Ok(deleted)
}

/// When the newest backup in `dir` was written, if any.
pub fn newest_backup(dir: &Path) -> Option<SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("parlo-") && n.ends_with(".age")
        })
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::create_private_dir;

    #[cfg(unix)]
    #[test]
    fn an_existing_world_readable_backup_directory_is_tightened_to_0700() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("backups");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
        // A new one is private from the start.
        let fresh = root.path().join("a/b/backups");
        create_private_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
    }
}
