//! The concrete [`Store`] handlers and jobs hold: opening either backend, and how a unit of
//! work begins (tenant, user, global, counter) and ends (commit on success, roll back on
//! error). The queries themselves live in one file per aggregate.

use super::backend::Db;
use super::error::StoreResult;
use super::postgres::{self, PgDb};
use super::sql::{Conn, TenantTx, Tx};
use super::sqlite::SqliteDb;
use crate::config::DatabaseUrl;
use crate::model::{TenantId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: cheap to clone (it holds the backend's pools).
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) db: Db,
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
    pub(super) async fn tenant_tx(&self, t: TenantId) -> StoreResult<TenantTx> {
        TenantTx::begin(&self.db, t).await
    }

    /// The same for work that reads before it writes: SQLite takes the write lock at `BEGIN`.
    pub(super) async fn tenant_write_tx(&self, t: TenantId) -> StoreResult<TenantTx> {
        TenantTx::begin_write(&self.db, t).await
    }

    /// A transaction that may read user `u`'s own memberships across tenants.
    pub(super) async fn user_tx(&self, u: UserId) -> StoreResult<Tx> {
        Ok(match &self.db {
            Db::Sqlite(db) => Tx::Sqlite(db.begin().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin_user(u).await?),
        })
    }

    /// A transaction with no tenant: global tables only.
    pub(super) async fn global_tx(&self) -> StoreResult<Tx> {
        Ok(match &self.db {
            Db::Sqlite(db) => Tx::Sqlite(db.begin().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin().await?),
        })
    }

    /// Where rate-limit counters run as single autocommit statements (on PostgreSQL their
    /// commits may be lost in a crash).
    pub(super) async fn counter_conn(&self) -> StoreResult<Conn> {
        Ok(match &self.db {
            Db::Sqlite(db) => Conn::Sqlite(db.acquire().await?),
            Db::Postgres(db) => Conn::Postgres(db.acquire_counter().await?),
        })
    }

    /// Runs `work` as one unit of work in tenant `t`: commits if it succeeds, rolls back if
    /// it fails.
    pub(super) async fn in_tenant<T>(
        &self,
        t: TenantId,
        work: impl AsyncFnOnce(&mut TenantTx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.tenant_tx(t).await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// [`Store::in_tenant`] in a tenant write transaction ([`Store::tenant_write_tx`]): for
    /// work that reads before it writes.
    pub(super) async fn in_tenant_write<T>(
        &self,
        t: TenantId,
        work: impl AsyncFnOnce(&mut TenantTx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.tenant_write_tx(t).await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Runs `work` as one unit of work on global tables: commits if it succeeds, rolls back
    /// if it fails.
    pub(super) async fn in_global<T>(
        &self,
        work: impl AsyncFnOnce(&mut Tx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.global_tx().await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }
}
