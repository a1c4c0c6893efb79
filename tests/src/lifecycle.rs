//! Direct database access for the lifecycle tests: row counts of every table and the few
//! writes a test needs to stage (backdating activity, tampering with the operator log). On
//! PostgreSQL it connects as the superuser, so row-level security hides nothing; on SQLite it
//! opens the same file beside the store.

use std::str::FromStr;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use crate::TestDb;

/// Runs the same sqlx code on whichever pool a [`RawDb`] holds: the two arms differ only in
/// the pool's type.
macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            RawDb::Sqlite($p) => $body,
            RawDb::Postgres($p) => $body,
        }
    };
}

pub enum RawDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl RawDb {
    pub async fn of(db: &TestDb) -> RawDb {
        match db {
            TestDb::Sqlite(_) => {
                let opts = SqliteConnectOptions::from_str(&db.app_url())
                    .unwrap()
                    .busy_timeout(std::time::Duration::from_secs(10));
                RawDb::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts)
                        .await
                        .unwrap(),
                )
            }
            TestDb::Postgres(pg) => RawDb::Postgres(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&pg.admin_url)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Like [`RawDb::of`], but on PostgreSQL as the application role (grants and row-level
    /// security apply), as the server connects.
    pub async fn as_app(db: &TestDb) -> RawDb {
        match db {
            TestDb::Sqlite(_) => RawDb::of(db).await,
            TestDb::Postgres(pg) => RawDb::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&pg.app_url)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Runs one statement; its error, if any, for the test to inspect.
    pub async fn try_exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self {
            RawDb::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
            RawDb::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        }
    }

    /// Every table of the schema, migrations history included. On SQLite, full-text
    /// (FTS5) tables and their shadow tables are left out: they index rows of an ordinary
    /// table (kept in sync by triggers), which is counted.
    pub async fn tables(&self) -> Vec<String> {
        match self {
            RawDb::Sqlite(p) => sqlx::query_scalar(
                "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            RawDb::Postgres(p) => sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            )
            .fetch_all(p)
            .await
            .unwrap(),
        }
    }

    pub async fn has_column(&self, table: &str, column: &str) -> bool {
        match self {
            RawDb::Sqlite(p) => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pragma_table_info($1) WHERE name = $2",
                )
                .bind(table)
                .bind(column)
                .fetch_one(p)
                .await
                .unwrap();
                n > 0
            }
            RawDb::Postgres(p) => sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2)",
            )
            .bind(table)
            .bind(column)
            .fetch_one(p)
            .await
            .unwrap(),
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM \"{table}\"");
        match self {
            RawDb::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap(),
            RawDb::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap(),
        }
    }

    /// The single number a `SELECT COUNT(*) …` answers.
    pub async fn count_sql(&self, sql: &str) -> i64 {
        match self {
            RawDb::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            RawDb::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// Rows of `table` whose `column` is `id`.
    pub async fn count_where(&self, table: &str, column: &str, id: Uuid) -> i64 {
        let sql = format!("SELECT count(*) FROM \"{table}\" WHERE \"{column}\" = $1");
        on_pool!(self, p => sqlx::query_scalar(&sql).bind(id).fetch_one(p).await.unwrap())
    }

    /// Sets a conversation's last activity (tests stage old conversations this way).
    pub async fn set_last_activity(&self, tenant: Uuid, conversation: Uuid, at_millis: i64) {
        let sql = "UPDATE conversations SET last_activity_at = $3 WHERE tenant_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql)
            .bind(tenant)
            .bind(conversation)
            .bind(at_millis)
            .execute(p)
            .await
            .unwrap()
            .rows_affected());
        assert_eq!(n, 1, "conversation {conversation} not found");
    }

    /// Runs statements with no parameters.
    pub async fn exec(&self, sql: &str) {
        match self {
            RawDb::Sqlite(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
            RawDb::Postgres(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
        }
    }

    /// Runs one statement with byte-string and integer parameters (`$1…`), in that order.
    pub async fn exec_with(&self, sql: &str, blobs: &[Vec<u8>], ints: &[i64]) {
        on_pool!(self, p => {
            let mut q = sqlx::query(sql);
            for b in blobs {
                q = q.bind(b.clone());
            }
            for i in ints {
                q = q.bind(*i);
            }
            q.execute(p).await.unwrap();
        })
    }

    pub async fn close(self) {
        match self {
            RawDb::Sqlite(p) => p.close().await,
            RawDb::Postgres(p) => p.close().await,
        }
    }
}
