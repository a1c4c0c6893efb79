//! The PostgreSQL backend, for many `parlo serve` processes on one database.
//!
//! Tenant isolation is enforced by the database: every tenant table has row-level security
//! enabled and forced (migrations/postgres), the server connects as an application role
//! that owns nothing and cannot bypass RLS (checked at connect, refusing to start
//! otherwise), and each unit of work is a transaction that first runs
//! `set_config('app.tenant_id', …, true)` — transaction-local, so a pooled connection
//! carries no tenant into its next use.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres, Transaction};

use super::error::StoreResult;
use super::jobs::{Job, JobLock};
use crate::config::DatabaseUrl;
use crate::model::{TenantId, UserId};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Tables that hold no tenant data and therefore have no row-level security.
pub const GLOBAL_TABLES: &[&str] = &[
    "users",
    "login_sessions",
    "rate_limits",
    "operator_audit",
    "account_tokens",
    "mail_outbox",
    "trust_checks",
    "operations",
    "_sqlx_migrations",
];

#[derive(Debug, Clone)]
pub(super) struct PgDb {
    pool: PgPool,
    /// A few connections with `synchronous_commit = off` for rate-limit counters only: one
    /// autocommit statement per hit, whose commit does not wait for the WAL flush. These
    /// connections never set a tenant and touch no tenant table.
    counters: PgPool,
}

/// A pooled connection idle for longer than this is pinged before it is used again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Checks a pooled connection before use only when it has sat idle: one used moments ago is
/// alive, and skipping sqlx's default ping saves a round trip on every unit of work (a chat
/// turn has two). An idle one may have outlived a database restart, so it is pinged and, if
/// dead, replaced. A restart within the last few seconds can still fail the requests that
/// were using the pool at that moment, once per connection; they get a clean 503.
fn ping_if_idle(
    conn: &mut PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for > PING_AFTER_IDLE {
            conn.ping().await?;
        }
        Ok(true)
    })
}

fn options(url: &DatabaseUrl) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url.expose())
        .context("parsing the PostgreSQL URL")?
        .application_name("parlo")
        .disable_statement_logging())
}

impl PgDb {
    /// Connects as the application role and refuses if that role could bypass row-level
    /// security or if the schema is not migrated.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .before_acquire(ping_if_idle)
            .connect_with(options(url)?)
            .await
            .with_context(|| format!("connecting to {}", url.redacted()))?;
        check_role_cannot_bypass_rls(&pool).await?;
        check_migrated(&pool).await?;
        let counters = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .before_acquire(ping_if_idle)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(conn, "SET synchronous_commit = off")
                        .await
                        .map(drop)
                })
            })
            .connect_lazy_with(options(url)?);
        Ok(Self { pool, counters })
    }

    /// `BEGIN` and the transaction-local tenant in one round trip (one simple-query message).
    /// The id is interpolated, not bound: a formatted UUID is hex digits and dashes only.
    /// PostgreSQL locks rows as they are written, so this also serves work that reads before
    /// it writes.
    pub async fn begin_tenant(&self, t: TenantId) -> StoreResult<Transaction<'static, Postgres>> {
        let begin = format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
            t.0.hyphenated()
        );
        Ok(self.pool.begin_with(begin).await?)
    }

    /// A transaction in which the policies let user `u` read their own memberships.
    pub async fn begin_user(&self, u: UserId) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('app.user_id', $1, true)")
            .bind(u.0.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// No tenant: the policies show global tables (and the workspace registry) only.
    pub async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// For counters whose last increments may be lost in a crash (rate limits): a single
    /// autocommit statement (one round trip, the row locked only inside the server) whose
    /// commit does not wait for the WAL flush.
    pub async fn acquire_counter(&self) -> StoreResult<PoolConnection<Postgres>> {
        Ok(self.counters.acquire().await?)
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.counters.close().await;
    }

    /// A session-level advisory lock on a connection taken out of the pool: it lives exactly
    /// as long as that connection, so a crashed job cannot leave it behind.
    pub async fn try_lock_job(&self, job: Job) -> StoreResult<Option<JobLock>> {
        let mut conn = self.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(job.advisory_key())
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(JobLock::postgres(conn, job.advisory_key())))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }
}

/// Refuses a role that is superuser, has BYPASSRLS, owns (or can become the owner of) any
/// table, or can SET ROLE to a role that could do any of that.
pub async fn check_role_cannot_bypass_rls(pool: &PgPool) -> anyhow::Result<()> {
    let dangerous: Vec<String> = sqlx::query_scalar(
        "SELECT r.rolname::text FROM pg_roles r \
         WHERE pg_has_role(current_user, r.oid, 'MEMBER') AND (r.rolsuper OR r.rolbypassrls) \
         UNION \
         SELECT 'owner of ' || c.relname FROM pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
           AND pg_has_role(current_user, c.relowner, 'MEMBER')",
    )
    .fetch_all(pool)
    .await
    .context("checking the database role")?;
    if !dangerous.is_empty() {
        let user: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(pool)
            .await?;
        bail!(
            "refusing to start: database role {user:?} could bypass row-level security ({}). \
             Connect PARLO_DATABASE_URL as an application role created with \
             NOSUPERUSER NOBYPASSRLS NOINHERIT that owns no table, and run migrations as the \
             owner via PARLO_MIGRATION_DATABASE_URL (see README, \"Running on PostgreSQL\")",
            dangerous.join(", ")
        );
    }
    Ok(())
}

async fn check_migrated(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "the database is not migrated or the role may not read it ({e}); run `parlo migrate` \
             with PARLO_MIGRATION_DATABASE_URL set to the schema owner"
        )
    })?;
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the database lacks migrations {missing:?}; run `parlo migrate` with \
             PARLO_MIGRATION_DATABASE_URL set to the schema owner"
        );
    }
    Ok(())
}

/// Runs migrations as the owner and grants the application role exactly what it needs:
/// data privileges on every table, INSERT and SELECT only on the append-only audit logs,
/// read-only on the migration history.
pub async fn migrate(owner: &DatabaseUrl, app_role: Option<&str>) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&options(owner)?)
        .await
        .with_context(|| format!("connecting to {}", owner.redacted()))?;
    MIGRATOR
        .run(&mut conn)
        .await
        .context("applying migrations")?;
    if let Some(role) = app_role {
        let owner_role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut conn)
            .await?;
        if owner_role == role {
            bail!(
                "PARLO_DATABASE_URL and PARLO_MIGRATION_DATABASE_URL use the same role {role:?}; \
                 the server's role must not own the tables"
            );
        }
        let role = quote_ident(role);
        let mut tx = conn.begin().await?;
        for stmt in [
            format!("GRANT USAGE ON SCHEMA public TO {role}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
            ),
            format!("REVOKE UPDATE, DELETE ON audit_log FROM {role}"),
            format!("REVOKE UPDATE, DELETE ON operator_audit FROM {role}"),
            format!("REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM {role}"),
            format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
            format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}"),
        ] {
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// An SQL identifier in double quotes (a table or role name read from the database).
pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
