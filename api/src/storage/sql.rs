//! The runtime-dispatch layer that lets every query be written once, in plain Rust, for both
//! backends: a unit of work ([`Tx`], [`TenantTx`], [`Conn`]) holds the connection of one
//! backend, and a statement made from it ([`Query`], [`QueryAs`], [`QueryScalar`]) is the
//! matching sqlx statement bound to that very connection, so a SQLite statement can never
//! run on a PostgreSQL connection. The `match` on the backend happens once per statement,
//! next to a database round trip.
//!
//! [`Param`], [`Row`] and [`Scalar`] name "works on both backends" once, as supertraits with
//! blanket impls, so no query needs a where-clause.
//!
//! A [`TenantTx`] binds its own tenant as `$1` of every statement it makes; there is no other
//! way to bind a tenant (a `TenantId` is not a `Param`), so a statement cannot name another
//! tenant than its transaction's.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Encode, FromRow, PgConnection, Postgres, Sqlite, SqliteConnection, Type};

use super::backend::Db;
use super::error::StoreResult;
use crate::model::TenantId;

/// A value a statement can bind on either backend.
pub(super) trait Param<'q>:
    Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres> + Send + 'q
{
}

impl<'q, T> Param<'q> for T where
    T: Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres> + Send + 'q
{
}

/// A row type either backend can read (`#[derive(sqlx::FromRow)]`).
pub(super) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// A single column value either backend can read.
pub(super) trait Scalar:
    for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + Send
    + Unpin
{
}

impl<T> Scalar for T where
    T: for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Send
        + Unpin
{
}

/// A transaction on either backend. Dropping it without [`Tx::commit`] rolls it back.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    fn conn(&mut self) -> On<'_, (), ()> {
        match self {
            Tx::Sqlite(tx) => On::Sqlite(tx, ()),
            Tx::Postgres(tx) => On::Postgres(tx, ()),
        }
    }

    pub fn query<'q>(&mut self, sql: &'q str) -> Query<'_, 'q> {
        self.conn().query(sql)
    }

    pub fn query_as<'q, R: Row>(&mut self, sql: &'q str) -> QueryAs<'_, 'q, R> {
        self.conn().query_as(sql)
    }

    pub fn query_scalar<'q, O: Scalar>(&mut self, sql: &'q str) -> QueryScalar<'_, 'q, O> {
        self.conn().query_scalar(sql)
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// A transaction scoped to one tenant (on PostgreSQL also by `app.tenant_id`). Every
/// statement it makes has the tenant bound as `$1` already; the caller binds from `$2` on.
pub(super) struct TenantTx {
    tx: Tx,
    tenant: TenantId,
}

impl TenantTx {
    /// Begins a transaction scoped to tenant `t`; the only way to make a `TenantTx`, so the
    /// tenant it binds is the tenant PostgreSQL scoped it to.
    pub(super) async fn begin(db: &Db, t: TenantId) -> StoreResult<Self> {
        let tx = match db {
            Db::Sqlite(db) => Tx::Sqlite(db.begin().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin_tenant(t).await?),
        };
        Ok(Self { tx, tenant: t })
    }

    /// The same for work that reads before it writes: SQLite takes the write lock at `BEGIN`.
    pub(super) async fn begin_write(db: &Db, t: TenantId) -> StoreResult<Self> {
        let tx = match db {
            Db::Sqlite(db) => Tx::Sqlite(db.begin_immediate().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin_tenant(t).await?),
        };
        Ok(Self { tx, tenant: t })
    }

    pub fn query<'q>(&mut self, sql: &'q str) -> Query<'_, 'q> {
        let t = self.tenant.0;
        self.tx.query(sql).bind(t)
    }

    pub fn query_as<'q, R: Row>(&mut self, sql: &'q str) -> QueryAs<'_, 'q, R> {
        let t = self.tenant.0;
        self.tx.query_as(sql).bind(t)
    }

    pub fn query_scalar<'q, O: Scalar>(&mut self, sql: &'q str) -> QueryScalar<'_, 'q, O> {
        let t = self.tenant.0;
        self.tx.query_scalar(sql).bind(t)
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// A pooled connection without a transaction: each statement commits by itself.
pub(super) enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Conn {
    pub fn query_as<'q, R: Row>(&mut self, sql: &'q str) -> QueryAs<'_, 'q, R> {
        match self {
            Conn::Sqlite(c) => On::Sqlite(c, ()),
            Conn::Postgres(c) => On::Postgres(c, ()),
        }
        .query_as(sql)
    }
}

/// A connection of one backend paired with something of the same backend (a statement).
enum On<'c, S, P> {
    Sqlite(&'c mut SqliteConnection, S),
    Postgres(&'c mut PgConnection, P),
}

impl<'c> On<'c, (), ()> {
    fn query<'q>(self, sql: &'q str) -> Query<'c, 'q> {
        Query(match self {
            On::Sqlite(c, ()) => On::Sqlite(c, sqlx::query(sql)),
            On::Postgres(c, ()) => On::Postgres(c, sqlx::query(sql)),
        })
    }

    fn query_as<'q, R: Row>(self, sql: &'q str) -> QueryAs<'c, 'q, R> {
        QueryAs(match self {
            On::Sqlite(c, ()) => On::Sqlite(c, sqlx::query_as(sql)),
            On::Postgres(c, ()) => On::Postgres(c, sqlx::query_as(sql)),
        })
    }

    fn query_scalar<'q, O: Scalar>(self, sql: &'q str) -> QueryScalar<'c, 'q, O> {
        QueryScalar(match self {
            On::Sqlite(c, ()) => On::Sqlite(c, sqlx::query_scalar(sql)),
            On::Postgres(c, ()) => On::Postgres(c, sqlx::query_scalar(sql)),
        })
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
type SqliteQueryAs<'q, R> = sqlx::query::QueryAs<'q, Sqlite, R, SqliteArguments<'q>>;
type PgQueryAs<'q, R> = sqlx::query::QueryAs<'q, Postgres, R, PgArguments>;
type SqliteQueryScalar<'q, O> = sqlx::query::QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>;
type PgQueryScalar<'q, O> = sqlx::query::QueryScalar<'q, Postgres, O, PgArguments>;

/// A statement whose result is how many rows it changed.
pub(super) struct Query<'c, 'q>(On<'c, SqliteQuery<'q>, PgQuery<'q>>);

/// A statement whose rows are read as `R`.
pub(super) struct QueryAs<'c, 'q, R>(On<'c, SqliteQueryAs<'q, R>, PgQueryAs<'q, R>>);

/// A statement whose rows are one column each, read as `O`.
pub(super) struct QueryScalar<'c, 'q, O>(On<'c, SqliteQueryScalar<'q, O>, PgQueryScalar<'q, O>>);

impl<'c, 'q> Query<'c, 'q> {
    pub fn bind(self, v: impl Param<'q>) -> Self {
        Self(match self.0 {
            On::Sqlite(c, q) => On::Sqlite(c, q.bind(v)),
            On::Postgres(c, q) => On::Postgres(c, q.bind(v)),
        })
    }

    /// Runs the statement; returns the number of rows it changed.
    pub async fn execute(self) -> Result<u64, sqlx::Error> {
        Ok(match self.0 {
            On::Sqlite(c, q) => q.execute(c).await?.rows_affected(),
            On::Postgres(c, q) => q.execute(c).await?.rows_affected(),
        })
    }
}

impl<'c, 'q, R: Row> QueryAs<'c, 'q, R> {
    pub fn bind(self, v: impl Param<'q>) -> Self {
        Self(match self.0 {
            On::Sqlite(c, q) => On::Sqlite(c, q.bind(v)),
            On::Postgres(c, q) => On::Postgres(c, q.bind(v)),
        })
    }

    pub async fn fetch_one(self) -> Result<R, sqlx::Error> {
        match self.0 {
            On::Sqlite(c, q) => q.fetch_one(c).await,
            On::Postgres(c, q) => q.fetch_one(c).await,
        }
    }

    pub async fn fetch_optional(self) -> Result<Option<R>, sqlx::Error> {
        match self.0 {
            On::Sqlite(c, q) => q.fetch_optional(c).await,
            On::Postgres(c, q) => q.fetch_optional(c).await,
        }
    }

    pub async fn fetch_all(self) -> Result<Vec<R>, sqlx::Error> {
        match self.0 {
            On::Sqlite(c, q) => q.fetch_all(c).await,
            On::Postgres(c, q) => q.fetch_all(c).await,
        }
    }
}

impl<'c, 'q, O: Scalar> QueryScalar<'c, 'q, O> {
    pub fn bind(self, v: impl Param<'q>) -> Self {
        Self(match self.0 {
            On::Sqlite(c, q) => On::Sqlite(c, q.bind(v)),
            On::Postgres(c, q) => On::Postgres(c, q.bind(v)),
        })
    }

    pub async fn fetch_optional(self) -> Result<Option<O>, sqlx::Error> {
        match self.0 {
            On::Sqlite(c, q) => q.fetch_optional(c).await,
            On::Postgres(c, q) => q.fetch_optional(c).await,
        }
    }

    pub async fn fetch_all(self) -> Result<Vec<O>, sqlx::Error> {
        match self.0 {
            On::Sqlite(c, q) => q.fetch_all(c).await,
            On::Postgres(c, q) => q.fetch_all(c).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::Param;

    /// Autoref specialisation: `Probe<T>` has `bindable() == true` only if `T` is a `Param`;
    /// otherwise method lookup falls through to the impl on `&Probe<T>`.
    struct Probe<T>(PhantomData<T>);

    trait Bindable {
        fn bindable(&self) -> bool {
            true
        }
    }

    impl<T: for<'q> Param<'q>> Bindable for Probe<T> {}

    trait NotBindable {
        fn bindable(&self) -> bool {
            false
        }
    }

    impl<T> NotBindable for &Probe<T> {}

    macro_rules! bindable {
        ($t:ty) => {
            (&Probe::<$t>(PhantomData)).bindable()
        };
    }

    #[test]
    fn a_tenant_id_cannot_be_bound_by_a_query() {
        // Only `TenantTx` binds a tenant (its own, as `$1`); see `storage/codec.rs`.
        assert!(!bindable!(crate::model::TenantId));
        // The probe tells the difference: other ids, uuids and timestamps bind.
        assert!(bindable!(crate::model::BotId));
        assert!(bindable!(uuid::Uuid));
        assert!(bindable!(crate::model::Timestamp));
    }
}
