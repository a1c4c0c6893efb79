//! The embedded backend: one SQLite file in WAL mode. There is no row-level security in
//! SQLite; tenant scope comes from the queries, every one of which filters by the tenant its
//! transaction binds as `$1`, and from composite foreign keys.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqlitePool, Transaction};

use super::error::StoreResult;
use super::jobs::{Job, JobLock, JobMutexes};
use crate::config::DatabaseUrl;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Keeps the database readable by the server's user only: a missing directory is created
/// with mode 0700, a missing database file is created empty with 0600 before SQLite opens
/// it (SQLite gives its `-wal` and `-shm` files the database file's mode), and files that an
/// older version created 0644 are tightened to 0600. An existing directory is left as it is
/// (it may be shared, like `/tmp`); a file that cannot be tightened is warned about.
fn make_private(db: &Path) -> anyhow::Result<()> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
            .with_context(|| format!("creating the database directory {}", dir.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the database file {}", db.display()));
            }
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            let Ok(meta) = std::fs::metadata(file) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0
                && let Err(e) =
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(
                    file = %file.display(),
                    error = %e,
                    "the database file is readable by others and could not be made private"
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(super) struct SqliteDb {
    pool: SqlitePool,
    /// One process owns a SQLite file, so job locks are in-process.
    jobs: JobMutexes,
}

impl SqliteDb {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url.expose())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .disable_statement_logging();
        let in_memory = url.expose().contains(":memory:") || url.expose().contains("mode=memory");
        if !in_memory {
            make_private(opts.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // An open SQLite connection cannot go stale (no server, no network): no ping
            // round trip to the connection's worker thread before each unit of work.
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            jobs: JobMutexes::default(),
        })
    }

    /// Every unit of work but a chat turn: tenant, user and global alike (SQLite has no
    /// session settings to scope them by). `BEGIN IMMEDIATE` would serialise readers too;
    /// deferred transactions plus the busy timeout are enough because every unit of work is
    /// short.
    pub async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    /// For units of work that read and then write: `BEGIN IMMEDIATE` takes the write lock
    /// first, so the transaction cannot fail with `SQLITE_BUSY` when it upgrades from reading
    /// to writing (the busy timeout covers waiting for the lock, not an upgrade).
    pub async fn begin_immediate(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Rate-limit counters: one autocommit statement, no explicit transaction.
    pub async fn acquire(&self) -> StoreResult<PoolConnection<Sqlite>> {
        Ok(self.pool.acquire().await?)
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn try_lock_job(&self, job: Job) -> Option<JobLock> {
        self.jobs.try_lock(job)
    }
}
