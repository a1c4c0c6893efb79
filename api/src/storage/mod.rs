//! Storage: every query of the product, for both backends, behind one concrete [`Store`].
//! Handlers and jobs call `store.method(…)` with model types (`crate::model`) and never see a
//! driver. Owns the SQL, the transactions and the database encoding of the model; must never
//! import axum or decide what an error means to a client beyond [`StoreError::kind`], and
//! must never run a statement on a tenant table outside a [`sql::TenantTx`] of that tenant.
//!
//! - `sql.rs`: the runtime dispatch that lets a query be written once for both backends, and
//!   the transaction types (a tenant transaction binds its own tenant as `$1`);
//! - one file per aggregate, its row types next to its SQL: `accounts.rs`, `workspaces.rs`
//!   (with members, invitations and the workspace audit log), `bots.rs` (with provider keys),
//!   `conversations.rs` (with attachments), `messages.rs` (with the chat turn), `limits.rs`,
//!   `lifecycle.rs` (retention, suspension, usage, job locks, operator audit); `census.rs`
//!   counts and checks whole databases for backup and restore;
//! - `sqlite.rs`, `postgres.rs`: connecting, migrating and beginning units of work — the only
//!   code that differs between the backends (PostgreSQL: row-level security, advisory locks);
//! - `codec.rs`: how ids and timestamps are stored.
//!
//! Timestamps are unix milliseconds (UTC) in both backends so that one query text serves both.

mod accounts;
mod bots;
pub mod census;
mod codec;
mod conversations;
mod lifecycle;
mod limits;
mod messages;
mod postgres;
mod sql;
mod sqlite;
mod workspaces;

pub use lifecycle::{Job, JobLock};
pub use postgres::{GLOBAL_TABLES, MIGRATOR as PG_MIGRATOR};

use postgres::PgDb;
use sql::{Conn, TenantTx, Tx};
use sqlite::SqliteDb;

use crate::config::DatabaseUrl;
use crate::model::{TenantId, UserId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. e-mail already registered).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsafe(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a [`StoreError`] means to the person who asked. The JSON API (`AppError`) and the
/// site (`PageError`) both translate from this, so they cannot disagree.
#[derive(Debug)]
pub enum StoreErrorKind {
    /// The row does not exist (or is another tenant's, which looks the same).
    NotFound,
    /// A uniqueness rule was violated; a sentence safe to show, e.g. "Email already
    /// registered."
    Conflict(String),
    /// Anything else: the cause is for the log, never for the client.
    Internal(anyhow::Error),
}

impl StoreError {
    pub fn kind(self) -> StoreErrorKind {
        match self {
            StoreError::NotFound => StoreErrorKind::NotFound,
            StoreError::Conflict(what) => StoreErrorKind::Conflict(sentence(what)),
            other => StoreErrorKind::Internal(other.into()),
        }
    }
}

/// "email already registered" → "Email already registered."
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict_on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

/// An SQL identifier in double quotes (a table or role name read from the database).
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A stored value the model refuses (the database was changed behind Parlo's back).
fn corrupt(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("unexpected value in {what}").into(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: cheap to clone (it holds the backend's pools).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

/// Opens the backend named by the URL. On PostgreSQL, `migration_url` (the owner role)
/// applies migrations first and grants the application role its privileges; the application
/// connection then refuses to run if its role could bypass row-level security.
pub async fn open(url: &DatabaseUrl, migration_url: Option<&DatabaseUrl>) -> anyhow::Result<Store> {
    if url.is_postgres() {
        if let Some(owner) = migration_url {
            postgres::migrate(owner, url.user().as_deref()).await?;
        }
        Store::connect_postgres(url).await
    } else {
        Store::open_sqlite(url).await
    }
}

/// Applies migrations only (`parlo migrate`).
pub async fn migrate(url: &DatabaseUrl, migration_url: Option<&DatabaseUrl>) -> anyhow::Result<()> {
    if url.is_postgres() {
        let owner = migration_url.unwrap_or(url);
        let app_role = if migration_url.is_some() {
            url.user()
        } else {
            None
        };
        postgres::migrate(owner, app_role.as_deref()).await
    } else {
        Store::open_sqlite(url).await.map(drop)
    }
}

impl Store {
    /// Opens (creating if needed) a SQLite database file and applies migrations.
    pub async fn open_sqlite(url: &DatabaseUrl) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::Sqlite(SqliteDb::open(url).await?),
        })
    }

    /// Connects to PostgreSQL as the application role; refuses a role that could bypass
    /// row-level security, and a database that is not migrated.
    pub async fn connect_postgres(url: &DatabaseUrl) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::Postgres(PgDb::connect(url).await?),
        })
    }

    pub fn backend(&self) -> Backend {
        match &self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite(db) => db.ping().await,
            Db::Postgres(db) => db.ping().await,
        }
    }

    /// Closes every pooled connection, waiting for those in use to come back.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(db) => db.close().await,
            Db::Postgres(db) => db.close().await,
        }
    }

    /// A transaction scoped to tenant `t` (PostgreSQL sets `app.tenant_id`).
    async fn tenant_tx(&self, t: TenantId) -> StoreResult<TenantTx> {
        TenantTx::begin(&self.db, t).await
    }

    /// The same for work that reads before it writes: SQLite takes the write lock at `BEGIN`.
    async fn tenant_write_tx(&self, t: TenantId) -> StoreResult<TenantTx> {
        TenantTx::begin_write(&self.db, t).await
    }

    /// A transaction that may read user `u`'s own memberships across tenants.
    async fn user_tx(&self, u: UserId) -> StoreResult<Tx> {
        Ok(match &self.db {
            Db::Sqlite(db) => Tx::Sqlite(db.begin().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin_user(u).await?),
        })
    }

    /// A transaction with no tenant: global tables only.
    async fn global_tx(&self) -> StoreResult<Tx> {
        Ok(match &self.db {
            Db::Sqlite(db) => Tx::Sqlite(db.begin().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin().await?),
        })
    }

    /// Where rate-limit counters run as single autocommit statements (on PostgreSQL their
    /// commits may be lost in a crash).
    async fn counter_conn(&self) -> StoreResult<Conn> {
        Ok(match &self.db {
            Db::Sqlite(db) => Conn::Sqlite(db.acquire().await?),
            Db::Postgres(db) => Conn::Postgres(db.acquire_counter().await?),
        })
    }

    /// Runs `work` as one unit of work in tenant `t`: commits if it succeeds, rolls back if
    /// it fails.
    async fn in_tenant<T>(
        &self,
        t: TenantId,
        work: impl AsyncFnOnce(&mut TenantTx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.tenant_tx(t).await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Runs `work` as one unit of work on global tables: commits if it succeeds, rolls back
    /// if it fails.
    async fn in_global<T>(
        &self,
        work: impl AsyncFnOnce(&mut Tx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.global_tx().await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }
}
