//! The open database of one backend: what a unit of work begins on. Knows nothing of queries.

use super::postgres::PgDb;
use super::sqlite::SqliteDb;

/// The backend's pools (cheap to clone).
#[derive(Debug, Clone)]
pub(super) enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}
