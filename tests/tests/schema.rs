//! The schema itself, as the migrations leave it: SQLite and PostgreSQL have the same tables
//! with the same columns (one query text serves both, so a column on one backend only is a
//! bug waiting for the other), and the audit tables are append-only on both.

use std::collections::{BTreeMap, BTreeSet};

use parlo::lifecycle::admin::Operator;
use parlo::model::NewAuditEntry;
use parlo_tests::fixture::NewTenant;
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, TestDb, both_backends, test_store};

/// Each table's columns and whether each may be NULL.
type Schema = BTreeMap<String, BTreeMap<String, bool>>;

async fn schema(db: &TestDb) -> Schema {
    let raw = RawDb::of(db).await;
    let rows: Vec<(String, String, bool)> = match &raw {
        RawDb::Sqlite(p) => sqlx::query_as(
            "SELECT m.name, c.name, c.\"notnull\" = 0 AND c.pk = 0 \
             FROM pragma_table_list m JOIN pragma_table_info(m.name) c \
             WHERE m.schema = 'main' AND m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        RawDb::Postgres(p) => sqlx::query_as(
            "SELECT table_name::text, column_name::text, is_nullable = 'YES' \
             FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
    };
    raw.close().await;
    let mut out = Schema::new();
    for (table, column, nullable) in rows {
        out.entry(table).or_default().insert(column, nullable);
    }
    out
}

/// Differences the migrations make on purpose, as (table, column, why): an entry here must
/// say why the backends differ. (SQLite's FTS5 tables and their shadow tables are not
/// compared: they are the SQLite side of the same full-text index.)
const INTENDED_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "knowledge_chunks",
    "tsv",
    "PostgreSQL's full-text vector (a trigger fills it in the library's language); SQLite \
     indexes the same chunks in the FTS5 table knowledge_chunks_fts",
)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_make_the_same_tables_and_columns() {
    let sqlite = test_store(Backend::Sqlite).await;
    let postgres = test_store(Backend::Postgres).await;
    let (lite, pg) = (schema(&sqlite.db).await, schema(&postgres.db).await);
    // The comparison can fail: both schemas hold the tables every query needs.
    for s in [&lite, &pg] {
        for table in [
            "workspaces",
            "bots",
            "messages",
            "audit_log",
            "operator_audit",
        ] {
            assert!(s.contains_key(table), "{table} missing: {s:#?}");
        }
    }
    let intended = |table: &str, column: &str| {
        INTENDED_DIFFERENCES
            .iter()
            .any(|(t, c, _)| *t == table && *c == column)
    };
    let mut differences = Vec::new();
    let tables: BTreeSet<&String> = lite.keys().chain(pg.keys()).collect();
    for table in tables {
        let (l, p) = (lite.get(table), pg.get(table));
        let columns: BTreeSet<&String> = l.into_iter().chain(p).flat_map(BTreeMap::keys).collect();
        for column in columns {
            let (in_lite, in_pg) = (l.and_then(|c| c.get(column)), p.and_then(|c| c.get(column)));
            let what = match (in_lite, in_pg) {
                (Some(_), None) => "only on SQLite",
                (None, Some(_)) => "only on PostgreSQL",
                (Some(a), Some(b)) if a != b => "NULL allowed on one backend only",
                _ => continue,
            };
            if !intended(table, column) {
                differences.push(format!("{table}.{column}: {what}"));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "the migrations differ between the backends:\n{}",
        differences.join("\n")
    );
}

both_backends!(audit_tables_refuse_update_and_delete);

/// Through the application's own connection, UPDATE and DELETE on `audit_log` and
/// `operator_audit` fail: on SQLite the migrations' triggers refuse them, on PostgreSQL the
/// application role holds neither privilege. Only deleting a whole workspace takes its
/// `audit_log` rows with it (the documented exception of the SQLite trigger).
async fn audit_tables_refuse_update_and_delete(backend: Backend) {
    let ts = test_store(backend).await;
    let t = NewTenant::owned_by("ann@a.example").create(&ts.store).await;
    ts.store
        .append_audit(
            t.tenant,
            &NewAuditEntry {
                actor: Some(t.user),
                action: "bot.create".into(),
                target: t.bot.public_id.clone(),
                details: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    Operator::new(ts.store.clone(), "ops", None)
        .list_workspaces()
        .await
        .unwrap();
    // Counted as the superuser (PostgreSQL) so row-level security hides nothing.
    let raw = RawDb::of(&ts.db).await;
    let app = RawDb::as_app(&ts.db).await;
    for table in ["audit_log", "operator_audit"] {
        assert_eq!(raw.count(table).await, 1, "{table} has an entry to protect");
        let column = if table == "audit_log" {
            "action"
        } else {
            "actor"
        };
        for sql in [
            format!("UPDATE {table} SET {column} = 'forged'"),
            format!("DELETE FROM {table}"),
        ] {
            let err = app.try_exec(&sql).await.expect_err(&sql).to_string();
            let refused = match backend {
                Backend::Sqlite => format!("{table} is append-only"),
                Backend::Postgres => "permission denied".to_owned(),
            };
            assert!(err.contains(&refused), "{sql}: {err}");
        }
        assert_eq!(raw.count(table).await, 1, "{table} keeps its entry");
    }
    assert!(ts.store.delete_workspace(t.tenant).await.unwrap());
    assert_eq!(raw.count("audit_log").await, 0);
    assert_eq!(raw.count("operator_audit").await, 1);
    app.close().await;
    raw.close().await;
}
