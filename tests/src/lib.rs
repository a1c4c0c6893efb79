//! The shared test harness: fresh databases for both backends and `spawn_app`, which runs
//! the real application on port 0 and returns its address, as a client would see it.
//! Tenants, signed-in site clients and widget clients come from [`fixture`]; one test per
//! backend from [`both_backends!`].
//!
//! PostgreSQL is required, never skipped: the admin URL comes from `PARLO_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and an unreachable server fails
//! the test with a message saying so. Each test gets its own database cloned from a
//! migrated template, dropped when the test's handle is dropped.

use std::time::Duration;

use anyhow::Context;
use parlo::app::{self, RunningServer};
use parlo::config::{Config, DatabaseUrl, Settings};
use parlo::state::AppState;
use parlo::storage::{self, Store};
use sqlx::{Connection, PgConnection};

pub mod browser;
pub mod fake_mistral;
pub mod fixture;
pub mod host_page;
pub mod knowledge;
pub mod lifecycle;
pub mod smtp;

/// Lets `both_backends!` name its tests without every test file depending on `paste`.
#[doc(hidden)]
pub use paste;

pub const APP_ROLE: &str = "parlo_test_app";
pub const OWNER_ROLE: &str = "parlo_test_owner";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn admin_url() -> String {
    std::env::var("PARLO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_db(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("PARLO_TEST_PG_URL is a URL");
    u.set_path(db);
    u.to_string()
}

fn with_user(url: &str, user: &str) -> String {
    let mut u = url::Url::parse(url).expect("PARLO_TEST_PG_URL is a URL");
    u.set_username(user).expect("URL takes a user");
    u.set_password(None).expect("URL takes no password");
    u.to_string()
}

pub async fn admin_conn() -> PgConnection {
    let url = admin_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for these tests and is unreachable at {url}: {e}. \
             Start PostgreSQL or set PARLO_TEST_PG_URL."
        )
    })
}

/// A throwaway PostgreSQL database, migrated, with an owner role and an application role.
pub struct PgTestDb {
    pub name: String,
    /// Connects as the application role (RLS applies).
    pub app_url: String,
    /// Connects as the schema owner.
    pub owner_url: String,
    /// Connects as the superuser.
    pub admin_url: String,
}

async fn exec_ignoring_duplicates(conn: &mut PgConnection, sql: &str) {
    if let Err(e) = sqlx::query(sql).execute(&mut *conn).await {
        let dup = matches!(&e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("42710") | Some("23505") | Some("42P04")));
        assert!(dup, "{sql}: {e}");
    }
}

/// Names the template after the migrations compiled into this binary (not the files on
/// disk), so a template always matches the code that will check it.
fn migrations_fingerprint() -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for m in storage::PG_MIGRATOR.iter() {
        for b in m.version.to_le_bytes().iter().chain(m.checksum.iter()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

impl PgTestDb {
    pub async fn new() -> PgTestDb {
        let admin = admin_url();
        let mut conn = admin_conn().await;
        let template = format!("parlo_test_tpl_{}", &migrations_fingerprint()[..12]);
        // One process creates the roles and the template; the others wait on the lock.
        sqlx::query("SELECT pg_advisory_lock(4242424242)")
            .execute(&mut conn)
            .await
            .unwrap();
        exec_ignoring_duplicates(
            &mut conn,
            &format!("CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"),
        )
        .await;
        exec_ignoring_duplicates(
            &mut conn,
            &format!("CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT"),
        )
        .await;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if !exists {
            let building = format!("{template}_building");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {building} OWNER {OWNER_ROLE}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut tconn = PgConnection::connect(&with_db(&admin, &building))
                .await
                .unwrap();
            sqlx::query(&format!("ALTER SCHEMA public OWNER TO {OWNER_ROLE}"))
                .execute(&mut tconn)
                .await
                .unwrap();
            tconn.close().await.unwrap();
            storage::migrate(
                &DatabaseUrl::new(with_user(&with_db(&admin, &building), APP_ROLE)),
                Some(&DatabaseUrl::new(with_user(
                    &with_db(&admin, &building),
                    OWNER_ROLE,
                ))),
            )
            .await
            .expect("migrating the template database");
            sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query("SELECT pg_advisory_unlock(4242424242)")
            .execute(&mut conn)
            .await
            .unwrap();

        let name = format!("parlo_test_{}", uuid::Uuid::new_v4().simple());
        let mut attempts = 0;
        loop {
            match sqlx::query(&format!(
                "CREATE DATABASE {name} TEMPLATE {template} OWNER {OWNER_ROLE}"
            ))
            .execute(&mut conn)
            .await
            {
                Ok(_) => break,
                // Another test is cloning the template at this instant.
                Err(e)
                    if attempts < 50 && e.to_string().contains("being accessed by other users") =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50 + 10 * attempts)).await;
                }
                Err(e) => panic!("creating test database: {e}"),
            }
        }
        conn.close().await.ok();
        let db_url = with_db(&admin, &name);
        PgTestDb {
            app_url: with_user(&db_url, APP_ROLE),
            owner_url: with_user(&db_url, OWNER_ROLE),
            admin_url: db_url,
            name,
        }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; a short-lived runtime on its own thread does it.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A store on a fresh database of the given backend, plus what keeps that database alive.
pub struct TestStore {
    pub store: Store,
    pub db: TestDb,
}

pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PgTestDb),
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => TestDb::Postgres(PgTestDb::new().await),
        }
    }

    /// The URL the application connects with.
    pub fn app_url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("parlo.db").display()
            ),
            TestDb::Postgres(pg) => pg.app_url.clone(),
        }
    }

    pub fn pg(&self) -> Option<&PgTestDb> {
        match self {
            TestDb::Postgres(pg) => Some(pg),
            TestDb::Sqlite(_) => None,
        }
    }
}

pub async fn test_store(backend: Backend) -> TestStore {
    let db = TestDb::new(backend).await;
    let url = DatabaseUrl::new(db.app_url());
    let store: Store = match backend {
        Backend::Sqlite => Store::open_sqlite(&url).await.unwrap(),
        Backend::Postgres => Store::connect_postgres(&url).await.unwrap(),
    };
    TestStore { store, db }
}

/// The real application on 127.0.0.1:0 with its own database and keys.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The operator-only metrics listener, when the settings asked for one.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    server: Option<RunningServer>,
    pub db: TestDb,
    /// Where this app's mail arrives: the test SMTP server it was given, else the
    /// development outbox (`.eml` files in its data directory).
    pub mailbox: smtp::Mailbox,
    mail_worker: tokio::task::JoinHandle<()>,
    _data: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.mail_worker.abort();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub async fn stop(mut self) {
        self.mail_worker.abort();
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }
}

/// Test keys in the environment format (fixed, so tests can assert redaction of them).
pub const TEST_MASTER_KEYS: &str = "1:dGVzdC1tYXN0ZXIta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
pub const TEST_TOKEN_KEYS: &str = "t1:dGVzdC10b2tlbi1rZXktMDEyMzQ1Njc4OWFiY2RlZmc=";

pub fn test_env(name: &str) -> Option<String> {
    match name {
        "PARLO_MASTER_KEYS" => Some(TEST_MASTER_KEYS.to_owned()),
        "PARLO_TOKEN_KEYS" => Some(TEST_TOKEN_KEYS.to_owned()),
        _ => None,
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the settings first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(TestDb::new(backend).await, adjust).await
}

/// Like [`spawn_app_with`], sending mail to the test SMTP server `smtp` (the mail retry
/// pace is one second).
pub async fn spawn_app_with_smtp(
    backend: Backend,
    smtp: &smtp::SmtpServer,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let url = smtp.url();
    let mut app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(secrecy::SecretString::from(url));
        s.mail_retry_secs = Some(1);
        adjust(s);
    })
    .await;
    app.mailbox = smtp::Mailbox::Smtp(smtp.clone());
    app
}

/// [`spawn_app_with`] on a database prepared by the caller (e.g. with its own settings).
pub async fn spawn_app_on(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data.path().to_owned()),
        database_url: Some(db.app_url()),
        // The bundles built into the binary, as in production (`PARLO_DIST_DIR` unset).
        dist_dir: None,
        shutdown_grace_secs: Some(2),
        ..Settings::default()
    };
    adjust(&mut settings);
    let config = Config::load(&settings, None, &test_env).expect("test configuration");
    let (keys, _) =
        parlo::keyring::load(&config.key_source, &config.key_file, config.is_production())
            .expect("test keys");
    let store = storage::open(&config.database_url, None)
        .await
        .context("opening the test store")
        .unwrap();
    let outbox = config.mail.outbox_dir.clone();
    let state = AppState::new(config, store, keys);
    let mail_worker = state.mailer.spawn_worker();
    let server = app::spawn(state.clone()).await.unwrap();
    let addr = server.addr;
    TestApp {
        addr,
        metrics_addr: server.metrics_addr,
        base: format!("http://{addr}"),
        state,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        server: Some(server),
        db,
        mailbox: smtp::Mailbox::Files(outbox),
        mail_worker,
        _data: data,
    }
}

/// Declares one test per backend for each named `async fn name(backend: Backend)`:
/// `both_backends!(tenants_are_isolated, …);` expands to `tenants_are_isolated_sqlite` and
/// `tenants_are_isolated_postgres`. The bodies stay ordinary functions, so rustfmt formats
/// them and a failure points at a line of the test, not of a macro.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::paste::paste! {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<$name _sqlite>]() {
                    $name($crate::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<$name _postgres>]() {
                    $name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}
