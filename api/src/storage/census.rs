//! Whole-database work for backup and restore (`crate::lifecycle::{backup, restore}`): a
//! snapshot, the census of every table's rows and the schema version, integrity checks, and
//! creating or dropping a scratch database. These run on their own connections, not the
//! store's pools: on a snapshot file, or as a role that row-level security does not restrict
//! (a census must see every tenant's rows). Owns no policy: what to back up, where, and when
//! a count is wrong is decided in `lifecycle`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, SqliteConnection};

use super::postgres::quote_ident;
use crate::config::DatabaseUrl;

/// Every table's row count and the highest applied migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub tables: BTreeMap<String, i64>,
    pub schema_version: i64,
}

/// The SQLite database file a `sqlite://` URL names.
pub fn sqlite_path(url: &DatabaseUrl) -> anyhow::Result<PathBuf> {
    Ok(SqliteConnectOptions::from_str(url.expose())
        .context("parsing the SQLite URL")?
        .get_filename()
        .to_owned())
}

/// Writes a transactionally consistent copy of the database at `source` to `snapshot`
/// (`VACUUM INTO`), which blocks writers only briefly.
pub async fn sqlite_vacuum_into(source: &Path, snapshot: &Path) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::new()
        .filename(source)
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("opening {}", source.display()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(snapshot.display().to_string())
        .execute(&mut conn)
        .await
        .context("taking the snapshot (VACUUM INTO)")?;
    conn.close().await?;
    Ok(())
}

/// How many tables the SQLite file at `path` has (zero for a file about to be restored into).
pub async fn sqlite_table_count(path: &Path) -> anyhow::Result<i64> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await?;
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(tables)
}

/// A SQLite database file opened by itself: a snapshot, a backup's payload or a restored file.
pub struct SqliteFile(SqliteConnection);

impl SqliteFile {
    pub async fn open_read_only(path: &Path) -> anyhow::Result<Self> {
        let conn = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .disable_statement_logging()
            .connect()
            .await?;
        Ok(Self(conn))
    }

    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .disable_statement_logging()
            .connect()
            .await?;
        Ok(Self(conn))
    }

    /// `"ok"`, or what `PRAGMA integrity_check` or the foreign key check found.
    pub async fn integrity(&mut self) -> anyhow::Result<String> {
        let conn = &mut self.0;
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut *conn)
            .await?;
        let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut *conn)
            .await?;
        if rows != ["ok"] {
            return Ok(rows.join("; "));
        }
        if !fk.is_empty() {
            return Ok(format!(
                "foreign key violations in {}",
                fk.into_iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok("ok".into())
    }

    pub async fn census(&mut self) -> anyhow::Result<Census> {
        let conn = &mut self.0;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut tables = BTreeMap::new();
        for name in names {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote_ident(&name)))
                    .fetch_one(&mut *conn)
                    .await?;
            tables.insert(name, n);
        }
        let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or(None);
        Ok(Census {
            tables,
            schema_version: version.unwrap_or(0),
        })
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.0.close().await?)
    }
}

/// A PostgreSQL connection as a role row-level security does not restrict (superuser or
/// BYPASSRLS): the backup role.
pub struct PgUnrestricted(PgConnection);

impl PgUnrestricted {
    /// Connects with `url` and refuses a role that row-level security would hide rows from.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let mut conn = PgConnectOptions::from_str(url.expose())
            .context("parsing PARLO_BACKUP_DATABASE_URL")?
            .application_name("parlo-backup")
            .disable_statement_logging()
            .connect()
            .await
            .with_context(|| format!("connecting to {}", url.redacted()))?;
        let unrestricted: bool = sqlx::query_scalar(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await?;
        if !unrestricted {
            bail!(
                "the role of PARLO_BACKUP_DATABASE_URL ({}) is subject to row-level security and \
                 would see no tenant rows; give it BYPASSRLS (ALTER ROLE … BYPASSRLS) or use a \
                 superuser",
                url.redacted()
            );
        }
        Ok(Self(conn))
    }

    /// Opens a read-only REPEATABLE READ transaction and exports its snapshot, for
    /// `pg_dump --snapshot`; the snapshot lives until [`Self::end_snapshot`] (or the
    /// connection closes).
    pub async fn export_snapshot(&mut self) -> anyhow::Result<String> {
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut self.0)
            .await?;
        Ok(sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut self.0)
            .await?)
    }

    pub async fn end_snapshot(&mut self) {
        let _ = sqlx::query("COMMIT").execute(&mut self.0).await;
    }

    /// Every public table's row count (as seen by this role and transaction) and the highest
    /// applied migration.
    pub async fn census(&mut self) -> anyhow::Result<Census> {
        let conn = &mut self.0;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut tables = BTreeMap::new();
        for name in names {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM public.{}",
                quote_ident(&name)
            ))
            .fetch_one(&mut *conn)
            .await?;
            tables.insert(name, n);
        }
        let version: Option<i64> = if tables.contains_key("_sqlx_migrations") {
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
                .fetch_one(&mut *conn)
                .await?
        } else {
            None
        };
        Ok(Census {
            tables,
            schema_version: version.unwrap_or(0),
        })
    }

    /// Tables, views and sequences in schema `public` (zero for a database to restore into).
    pub async fn public_objects(&mut self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')",
        )
        .fetch_one(&mut self.0)
        .await?)
    }

    pub async fn create_database(&mut self, name: &str) -> anyhow::Result<()> {
        sqlx::query(&format!("CREATE DATABASE {}", quote_ident(name)))
            .execute(&mut self.0)
            .await?;
        Ok(())
    }

    pub async fn drop_database(&mut self, name: &str) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .execute(&mut self.0)
        .await?;
        Ok(())
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.0.close().await?)
    }
}
