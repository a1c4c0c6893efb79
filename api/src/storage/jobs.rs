//! The job lock that keeps one background job from running twice at once, across every
//! process on the database. Must never be held in a way a crashed process could leave
//! behind: a PostgreSQL session lock dies with its connection; the SQLite lock is an
//! in-process mutex (one process owns a SQLite file).

use std::sync::Arc;

use sqlx::Connection;

/// Background jobs that must not run concurrently, across every process on the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Retention,
    Backup,
    /// The trust page's live checks.
    TrustChecks,
}

impl Job {
    /// The PostgreSQL advisory lock key: "parlo" in ASCII followed by the job number.
    pub fn advisory_key(self) -> i64 {
        const PREFIX: i64 = 0x7061_726c_6f00_0000;
        PREFIX
            | match self {
                Job::Retention => 1,
                Job::Backup => 2,
                Job::TrustChecks => 3,
            }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Job::Retention => 0,
            Job::Backup => 1,
            Job::TrustChecks => 2,
        }
    }
}

/// In-process locks of the SQLite backend, one per [`Job`].
#[derive(Debug, Default, Clone)]
pub(super) struct JobMutexes([Arc<tokio::sync::Mutex<()>>; 3]);

impl JobMutexes {
    pub(super) fn try_lock(&self, job: Job) -> Option<JobLock> {
        self.0[job.index()]
            .clone()
            .try_lock_owned()
            .ok()
            .map(|g| JobLock(JobLockInner::InProcess(g)))
    }
}

/// Held while a job runs; dropping it releases the lock.
#[derive(Debug)]
pub struct JobLock(JobLockInner);

#[derive(Debug)]
enum JobLockInner {
    InProcess(tokio::sync::OwnedMutexGuard<()>),
    /// A connection taken out of the pool holding `pg_try_advisory_lock`: a session lock, so
    /// closing the connection (or the process dying) releases it.
    Postgres(sqlx::PgConnection, i64),
}

impl JobLock {
    pub(super) fn postgres(conn: sqlx::PgConnection, key: i64) -> Self {
        JobLock(JobLockInner::Postgres(conn, key))
    }

    /// Releases the lock now (dropping also releases it, when the connection closes).
    pub async fn release(self) {
        match self.0 {
            JobLockInner::InProcess(guard) => drop(guard),
            JobLockInner::Postgres(mut conn, key) => {
                // Unlock explicitly: the server notices a closed connection only a moment
                // later, and the next run may already be asking for the lock.
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
    }
}
