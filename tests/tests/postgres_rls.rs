//! Row-level security on PostgreSQL, checked with raw SQL as the application role so the
//! policies themselves (not the application's WHERE clauses) are under test. Each test is
//! able to fail: it first proves the rows exist (as the superuser) and then that the app
//! role cannot see or touch them.

use parlo::config::DatabaseUrl;
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::fixture::{self, NewTenant};
use parlo_tests::{APP_ROLE, PgTestDb, admin_conn};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

/// Every table holding tenant data (with its tenant column).
const TENANT_TABLES: &[(&str, &str)] = &[
    ("workspace_profiles", "tenant_id"),
    ("memberships", "tenant_id"),
    ("bots", "tenant_id"),
    ("provider_keys", "tenant_id"),
    ("conversations", "tenant_id"),
    ("messages", "tenant_id"),
    ("attachments", "tenant_id"),
    ("audit_log", "tenant_id"),
    ("knowledge_libraries", "tenant_id"),
    ("knowledge_bot_settings", "tenant_id"),
    ("knowledge_bot_libraries", "tenant_id"),
    ("knowledge_sources", "tenant_id"),
    ("knowledge_jobs", "tenant_id"),
    ("knowledge_chunks", "tenant_id"),
    ("message_citations", "tenant_id"),
    ("knowledge_gaps", "tenant_id"),
];

struct Fixture {
    db: PgTestDb,
    a: TenantId,
    b: TenantId,
}

/// Two tenants with at least one row in every tenant table, written through the store.
async fn fixture() -> Fixture {
    let db = PgTestDb::new().await;
    let store = Store::connect_postgres(&DatabaseUrl::new(db.app_url.clone()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (email, name) in [("ann@a.example", "Acme"), ("bob@b.example", "Bolt")] {
        let t = NewTenant::owned_by(email)
            .workspace(name)
            .with_key("sk-rls-test-abcd")
            .create(&store)
            .await;
        let (w, u, bot) = (t.tenant, t.user, t.bot);
        let secret = format!("secret of {name}");
        let (c, m) = fixture::chat(&store, w, bot.id, &[(MessageRole::User, &secret)]).await;
        parlo_tests::knowledge::stage_rows(&store, w, bot.id, c.id, m[0].id).await;
        fixture::attachment(&store, w, c.id, None, "a.png").await;
        fixture::audit_entry(&store, w, Some(u), "test", "t").await;
        ids.push(w);
    }
    store.close().await;
    Fixture {
        db,
        a: ids[0],
        b: ids[1],
    }
}

async fn app_pool(f: &Fixture, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .connect(&f.db.app_url)
        .await
        .unwrap()
}

async fn as_tenant(conn: &mut PgConnection, t: TenantId) {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(t.0.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
}

fn sqlstate(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => format!("not a database error: {other}"),
    }
}

async fn count(conn: &mut PgConnection, sql: &str, bind: Option<Uuid>) -> i64 {
    let q = sqlx::query_scalar::<_, i64>(sql);
    let q = match bind {
        Some(b) => q.bind(b),
        None => q,
    };
    q.fetch_one(&mut *conn).await.unwrap()
}

/// Rows of `table` whose tenant column `col` holds `tenant`, as `conn` can see them.
async fn rows_of(conn: &mut PgConnection, table: &str, col: &str, tenant: TenantId) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE {col} = $1");
    count(conn, &sql, Some(tenant.0)).await
}

#[tokio::test]
async fn fixture_rows_exist_for_both_tenants() {
    // The control for every test below: as the superuser, each table holds both tenants.
    let f = fixture().await;
    let mut admin = PgConnection::connect(&f.db.admin_url).await.unwrap();
    for (table, col) in TENANT_TABLES {
        for t in [f.a, f.b] {
            let n = rows_of(&mut admin, table, col, t).await;
            assert!(n >= 1, "{table} has no row for tenant {t}");
        }
    }
}

#[tokio::test]
async fn each_table_shows_and_changes_only_the_current_tenants_rows() {
    let f = fixture().await;
    let pool = app_pool(&f, 2).await;
    for (table, col) in TENANT_TABLES {
        let mut tx = pool.begin().await.unwrap();
        as_tenant(&mut tx, f.a).await;
        let visible: Vec<Uuid> = sqlx::query_scalar(&format!("SELECT {col} FROM {table}"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(!visible.is_empty(), "{table}: tenant A sees its own rows");
        assert!(
            visible.iter().all(|t| *t == f.a.0),
            "{table}: tenant A sees only its rows"
        );
        assert_eq!(
            rows_of(&mut tx, table, col, f.b).await,
            0,
            "{table}: B invisible"
        );
        if *table != "audit_log" {
            let updated = sqlx::query(&format!(
                "UPDATE {table} SET {col} = {col} WHERE {col} = $1"
            ))
            .bind(f.b.0)
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
            assert_eq!(updated, 0, "{table}: UPDATE reaches no row of B");
            let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
                .bind(f.b.0)
                .execute(&mut *tx)
                .await
                .unwrap()
                .rows_affected();
            assert_eq!(deleted, 0, "{table}: DELETE reaches no row of B");
        }
        tx.rollback().await.unwrap();
    }
    // B's rows survived all of that.
    let mut admin = PgConnection::connect(&f.db.admin_url).await.unwrap();
    for (table, col) in TENANT_TABLES {
        let n = rows_of(&mut admin, table, col, f.b).await;
        assert!(n >= 1, "{table}: tenant B's rows still exist");
    }
}

#[tokio::test]
async fn writing_another_tenants_id_is_rejected() {
    let f = fixture().await;
    let pool = app_pool(&f, 1).await;
    for (table, col) in TENANT_TABLES {
        // INSERT: copy one of A's rows with B's tenant id.
        let cols: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        let select: Vec<String> = cols
            .iter()
            .map(|c| {
                if c == col {
                    "$1::uuid".to_owned()
                } else {
                    c.clone()
                }
            })
            .collect();
        let mut tx = pool.begin().await.unwrap();
        as_tenant(&mut tx, f.a).await;
        let err = sqlx::query(&format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE {col} = $2 LIMIT 1",
            cols.join(", "),
            select.join(", ")
        ))
        .bind(f.b.0)
        .bind(f.a.0)
        .execute(&mut *tx)
        .await
        .unwrap_err();
        assert_eq!(
            sqlstate(&err),
            "42501",
            "{table}: INSERT with B's tenant id must violate RLS: {err}"
        );
        tx.rollback().await.unwrap();

        if *table != "audit_log" {
            let mut tx = pool.begin().await.unwrap();
            as_tenant(&mut tx, f.a).await;
            let err = sqlx::query(&format!("UPDATE {table} SET {col} = $1 WHERE {col} = $2"))
                .bind(f.b.0)
                .bind(f.a.0)
                .execute(&mut *tx)
                .await
                .unwrap_err();
            assert_eq!(
                sqlstate(&err),
                "42501",
                "{table}: moving a row to B must violate RLS: {err}"
            );
            tx.rollback().await.unwrap();
        }
    }
    // The registry: A can neither create another tenant's entry nor change or delete B's.
    let mut tx = pool.begin().await.unwrap();
    as_tenant(&mut tx, f.a).await;
    let err = sqlx::query("INSERT INTO workspaces (id, created_at) VALUES ($1, 0)")
        .bind(Uuid::new_v4())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    as_tenant(&mut tx, f.a).await;
    assert_eq!(
        sqlx::query("UPDATE workspaces SET created_at = 1 WHERE id = $1")
            .bind(f.b.0)
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected(),
        0
    );
    assert_eq!(
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(f.b.0)
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected(),
        0
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn no_tenant_means_no_rows() {
    let f = fixture().await;
    let pool = app_pool(&f, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    for (table, _) in TENANT_TABLES {
        assert_eq!(
            count(&mut conn, &format!("SELECT count(*) FROM {table}"), None).await,
            0,
            "{table} without a tenant"
        );
    }
    drop(conn);
    // An empty tenant setting is the same as none.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', '', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        count(&mut tx, "SELECT count(*) FROM messages", None).await,
        0
    );
}

#[tokio::test]
async fn a_pooled_connection_forgets_the_tenant_after_its_transaction() {
    let f = fixture().await;
    let pool = app_pool(&f, 1).await; // one connection: the second use must reuse it
    let pid_a: i32;
    {
        let mut tx = pool.begin().await.unwrap();
        as_tenant(&mut tx, f.a).await;
        pid_a = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(count(&mut tx, "SELECT count(*) FROM messages", None).await >= 1);
        tx.commit().await.unwrap();
    }
    let mut tx = pool.begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(pid, pid_a, "the same pooled connection was reused");
    assert_eq!(
        count(&mut tx, "SELECT count(*) FROM messages", None).await,
        0
    );
    assert_eq!(count(&mut tx, "SELECT count(*) FROM bots", None).await, 0);
    let setting: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(setting, None);
}

/// Tables that lack ENABLE + FORCE row-level security or any policy, among those that hold
/// a `tenant_id` column or are not declared global.
async fn rls_gaps(conn: &mut PgConnection) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, c.relrowsecurity, c.relforcerowsecurity, \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant, \
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies \
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')")
        .fetch_all(&mut *conn).await.unwrap();
    let mut gaps = Vec::new();
    for r in rows {
        let name: String = r.get("name");
        let has_tenant: bool = r.get("has_tenant");
        if !has_tenant && GLOBAL_TABLES.contains(&name.as_str()) {
            continue;
        }
        let (enabled, forced, policies): (bool, bool, i64) =
            (r.get(1), r.get(2), r.get("policies"));
        if !(enabled && forced && policies > 0) {
            gaps.push(format!(
                "{name} (enabled={enabled}, forced={forced}, policies={policies})"
            ));
        }
    }
    gaps
}

#[tokio::test]
async fn catalog_every_tenant_table_has_forced_rls() {
    let f = fixture().await;
    let mut owner = PgConnection::connect(&f.db.owner_url).await.unwrap();
    assert_eq!(rls_gaps(&mut owner).await, Vec::<String>::new());
    // The check itself catches each way of getting it wrong.
    sqlx::query("CREATE TABLE leaky_a (tenant_id uuid)")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE leaky_b (tenant_id uuid)")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE leaky_b ENABLE ROW LEVEL SECURITY")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE unlisted (x int)")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE messages NO FORCE ROW LEVEL SECURITY")
        .execute(&mut owner)
        .await
        .unwrap();
    let gaps = rls_gaps(&mut owner).await.join("\n");
    for name in ["leaky_a", "leaky_b", "unlisted", "messages"] {
        assert!(gaps.contains(name), "{name} should be reported:\n{gaps}");
    }
}

#[tokio::test]
async fn audit_log_is_append_only_for_the_app_role() {
    let f = fixture().await;
    let pool = app_pool(&f, 1).await;
    let mut tx = pool.begin().await.unwrap();
    as_tenant(&mut tx, f.a).await;
    let err = sqlx::query("UPDATE audit_log SET action = 'forged'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    as_tenant(&mut tx, f.a).await;
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
}

async fn connect_err(url: &str) -> String {
    match Store::connect_postgres(&DatabaseUrl::new(url.to_owned())).await {
        Ok(_) => "connected".to_owned(),
        Err(e) => format!("{e:#}"),
    }
}

fn url_as(base: &str, user: &str) -> String {
    let mut u = url::Url::parse(base).unwrap();
    u.set_username(user).unwrap();
    u.to_string()
}

#[tokio::test]
async fn server_refuses_roles_that_could_bypass_rls() {
    let f = fixture().await;
    let mut admin = admin_conn().await;
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    let bypass = format!("parlo_test_bypass_{suffix}");
    let climber = format!("parlo_test_climber_{suffix}");
    sqlx::query(&format!("CREATE ROLE {bypass} LOGIN NOSUPERUSER BYPASSRLS"))
        .execute(&mut admin)
        .await
        .unwrap();
    // NOINHERIT, but a member of a superuser role: it could SET ROLE.
    sqlx::query(&format!(
        "CREATE ROLE {climber} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT IN ROLE postgres"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(&format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {bypass}, {climber}"
    ))
    .execute(&mut PgConnection::connect(&f.db.owner_url).await.unwrap())
    .await
    .unwrap();

    let superuser = connect_err(&f.db.admin_url).await;
    let bypassing = connect_err(&url_as(&f.db.admin_url, &bypass)).await;
    let climbing = connect_err(&url_as(&f.db.admin_url, &climber)).await;
    let owner = connect_err(&f.db.owner_url).await;
    let app = connect_err(&f.db.app_url).await;

    for role in [&bypass, &climber] {
        let _ = sqlx::query(&format!("DROP OWNED BY {role}"))
            .execute(&mut PgConnection::connect(&f.db.admin_url).await.unwrap())
            .await;
        let _ = sqlx::query(&format!("DROP ROLE {role}"))
            .execute(&mut admin)
            .await;
    }
    for (who, result) in [
        ("superuser", &superuser),
        ("bypassrls", &bypassing),
        ("member of superuser", &climbing),
        ("table owner", &owner),
    ] {
        assert!(
            result.contains("could bypass row-level security"),
            "{who}: {result}"
        );
    }
    assert_eq!(
        app, "connected",
        "the NOSUPERUSER NOBYPASSRLS NOINHERIT app role ({APP_ROLE}) is accepted"
    );
}
