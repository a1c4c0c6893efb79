//! Storage types for the data lifecycle (retention, erasure, suspension, the operator audit
//! log) and the job lock that keeps one background job from running twice at once. Owns no
//! policy: what to purge, hash or refuse is decided in `crate::lifecycle`. Must never hold a
//! lock in a way a crashed process could leave behind (a PostgreSQL session lock dies with
//! its connection; the SQLite lock is an in-process mutex).

use std::sync::Arc;

use sqlx::Connection;

use super::types::Timestamp;

/// Background jobs that must not run concurrently, across every process on the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Retention,
    Backup,
}

impl Job {
    /// The PostgreSQL advisory lock key: "parlo" in ASCII followed by the job number.
    pub fn advisory_key(self) -> i64 {
        const PREFIX: i64 = 0x7061_726c_6f00_0000;
        PREFIX
            | match self {
                Job::Retention => 1,
                Job::Backup => 2,
            }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Job::Retention => 0,
            Job::Backup => 1,
        }
    }
}

/// In-process locks of the SQLite backend, one per [`Job`].
#[derive(Debug, Default, Clone)]
pub(super) struct JobMutexes([Arc<tokio::sync::Mutex<()>>; 2]);

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

/// What one purge transaction deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeCounts {
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.conversations + self.messages + self.attachments
    }

    pub fn add(&mut self, other: PurgeCounts) {
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.attachments += other.attachments;
    }
}

/// Row budget of one purge transaction.
#[derive(Debug, Clone, Copy)]
pub struct PurgeLimits {
    /// Most messages plus attachments deleted in one transaction.
    pub rows: u32,
    /// Most conversations handled in one transaction (their messages first).
    pub conversations: u32,
}

/// One workspace's size, for `parlo admin workspaces usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkspaceUsage {
    pub members: i64,
    pub bots: i64,
    pub conversations: i64,
    pub messages: i64,
    pub attachments: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub last_activity_at: Option<Timestamp>,
}

/// An entry of the operator audit log (global, append-only, hash-chained).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct OperatorAuditEntry {
    pub seq: i64,
    pub created_at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// A JSON object.
    pub details: String,
    #[serde(with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}
