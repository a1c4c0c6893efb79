//! The queries of the trust page's live checks: their stored results, the recorded outcomes
//! of operations (backups, restore drills, retention, audit verification), what the database
//! says about tenant isolation (PostgreSQL's catalog), retention's progress and whether the
//! schema is current. Owns no policy: what counts as ok, warn or fail is in `crate::trust`.

use sqlx::Row as _;

use super::backend::Db;
use super::error::StoreResult;
use super::postgres::{GLOBAL_TABLES, MIGRATOR as PG_MIGRATOR};
use super::sqlite::MIGRATOR as SQLITE_MIGRATOR;
use super::store::Store;
use crate::model::{
    CheckResult, CheckStatus, IsolationReport, Operation, OperationKind, RetentionSample, TenantId,
    Timestamp,
};

#[derive(sqlx::FromRow)]
struct CheckRow {
    name: String,
    status: String,
    value: String,
    checked_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct OperationRow {
    at: Timestamp,
    outcome: String,
    details: String,
}

#[derive(sqlx::FromRow)]
struct RetentionRow {
    retention_days: i64,
    oldest_activity: Option<Timestamp>,
    oldest_message: Option<Timestamp>,
}

impl Store {
    /// Replaces the stored result of `c.name`.
    pub async fn save_check(&self, c: &CheckResult) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query(
                "INSERT INTO trust_checks (name, status, value, checked_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET status = excluded.status, \
                 value = excluded.value, checked_at = excluded.checked_at",
            )
            .bind(c.name.as_str())
            .bind(c.status.as_str())
            .bind(c.value.as_str())
            .bind(c.checked_at)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Every stored check result, by name.
    pub async fn checks(&self) -> StoreResult<Vec<CheckResult>> {
        self.in_global(async |tx| {
            let rows: Vec<CheckRow> = tx
                .query_as("SELECT name, status, value, checked_at FROM trust_checks ORDER BY name")
                .fetch_all()
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| CheckResult {
                    status: CheckStatus::parse(&r.status).unwrap_or(CheckStatus::Fail),
                    name: r.name,
                    value: r.value,
                    checked_at: r.checked_at,
                })
                .collect())
        })
        .await
    }

    /// Records the latest outcome of an operation (replacing the one before).
    pub async fn record_operation(&self, kind: OperationKind, op: &Operation) -> StoreResult<()> {
        let details = op.details.to_string();
        self.in_global(async |tx| {
            tx.query(
                "INSERT INTO operations (kind, at, outcome, details) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind) DO UPDATE SET at = excluded.at, \
                 outcome = excluded.outcome, details = excluded.details",
            )
            .bind(kind.as_str())
            .bind(op.at)
            .bind(if op.passed { "passed" } else { "failed" })
            .bind(details.as_str())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The latest recorded outcome of `kind`, if any.
    pub async fn operation(&self, kind: OperationKind) -> StoreResult<Option<Operation>> {
        self.in_global(async |tx| {
            let row: Option<OperationRow> = tx
                .query_as("SELECT at, outcome, details FROM operations WHERE kind = $1")
                .bind(kind.as_str())
                .fetch_optional()
                .await?;
            Ok(row.map(|r| Operation {
                at: r.at,
                passed: r.outcome == "passed",
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            }))
        })
        .await
    }

    /// Per bot of tenant `t`: its retention, the oldest last activity of its conversations
    /// and its oldest stored message.
    pub async fn retention_samples(&self, t: TenantId) -> StoreResult<Vec<RetentionSample>> {
        self.in_tenant(t, async |tx| {
            let rows: Vec<RetentionRow> = tx
                .query_as(
                    "SELECT CAST(b.retention_days AS BIGINT) AS retention_days, \
                       (SELECT min(c.last_activity_at) FROM conversations c \
                        WHERE c.tenant_id = $1 AND c.bot_id = b.id) AS oldest_activity, \
                       (SELECT min(m.created_at) FROM messages m \
                        JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id \
                        WHERE m.tenant_id = $1 AND c.bot_id = b.id) AS oldest_message \
                     FROM bots b WHERE b.tenant_id = $1",
                )
                .fetch_all()
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| RetentionSample {
                    retention_days: r.retention_days,
                    oldest_activity: r.oldest_activity,
                    oldest_message: r.oldest_message,
                })
                .collect())
        })
        .await
    }

    /// Migrations compiled into this binary that the database has not applied.
    pub async fn missing_migrations(&self) -> StoreResult<Vec<i64>> {
        let migrator = match &self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
            Db::Postgres(_) => &PG_MIGRATOR,
        };
        let applied: Vec<i64> = self
            .in_global(async |tx| {
                Ok(tx
                    .query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(migrator
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    /// PostgreSQL only (`None` on SQLite): row-level security of every tenant table, the
    /// attributes, ownerships and memberships of the role this server connects as, and
    /// whether its connection is encrypted — read from the catalog as it is now.
    pub async fn isolation_report(&self) -> StoreResult<Option<IsolationReport>> {
        let Db::Postgres(db) = &self.db else {
            return Ok(None);
        };
        let mut tx = db.begin().await?;
        let globals: Vec<String> = GLOBAL_TABLES.iter().map(|s| (*s).to_owned()).collect();
        let tables = sqlx::query(
            "SELECT c.relname::text AS name, c.relrowsecurity AS enabled, \
               c.relforcerowsecurity AS forced \
             FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace \
               AND c.relkind IN ('r', 'p') AND NOT (c.relname::text = ANY($1)) \
             ORDER BY 1",
        )
        .bind(&globals)
        .fetch_all(&mut *tx)
        .await?;
        let mut report = IsolationReport {
            tenant_tables: tables.len(),
            ..IsolationReport::default()
        };
        for t in &tables {
            let name: String = t.try_get("name")?;
            if !t.try_get::<bool, _>("enabled")? {
                report.not_enabled.push(name.clone());
            }
            if !t.try_get::<bool, _>("forced")? {
                report.not_forced.push(name);
            }
        }
        let role = sqlx::query(
            "SELECT rolname::text AS name, rolsuper, rolbypassrls, rolinherit \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *tx)
        .await?;
        report.role = role.try_get("name")?;
        report.superuser = role.try_get("rolsuper")?;
        report.bypass_rls = role.try_get("rolbypassrls")?;
        report.inherit = role.try_get("rolinherit")?;
        report.owns = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
               AND pg_has_role(current_user, c.relowner, 'MEMBER') ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await?;
        report.member_of = sqlx::query_scalar(
            "SELECT r.rolname::text FROM pg_roles r \
             WHERE r.rolname <> current_user AND pg_has_role(current_user, r.oid, 'MEMBER') \
               AND (r.rolsuper OR r.rolbypassrls OR EXISTS (SELECT 1 FROM pg_class c \
                    WHERE c.relowner = r.oid AND c.relnamespace = 'public'::regnamespace)) \
             ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await?;
        report.ssl = sqlx::query_scalar::<_, Option<bool>>(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .fetch_optional(&mut *tx)
        .await?
        .flatten()
        .unwrap_or(false);
        tx.commit().await?;
        Ok(Some(report))
    }
}
