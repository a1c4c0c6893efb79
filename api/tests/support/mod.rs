//! Runs the real `parlo` binary for tests: start, wait for its URL, talk HTTP, stop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_parlo");

pub fn parlo(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PARLO_LISTEN", "127.0.0.1:0")
        .env("PARLO_SHUTDOWN_GRACE_SECS", "2");
    cmd
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub stderr_lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `cmd` and waits for the "serving on" line.
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("parlo: serving on ") {
                        let url = rest
                            .split_whitespace()
                            .next()
                            .unwrap()
                            .trim_end_matches('/')
                            .to_owned();
                        return Server {
                            child,
                            url,
                            stderr_lines: rx,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("parlo did not start; stderr so far:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Sends SIGTERM, waits for a clean exit and returns (stdout, stderr).
    pub fn stop(mut self) -> (String, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "parlo exits cleanly on SIGTERM: {status}");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let err: Vec<String> = self.stderr_lines.try_iter().collect();
        (out, err.join("\n"))
    }
}

pub fn get(url: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    request(url, headers, body.map(|b| ("application/json", b)))
}

/// A POST of an HTML form (`application/x-www-form-urlencoded`).
pub fn post_form(url: &str, headers: &[(&str, &str)], form: &str) -> (u16, String) {
    request(
        url,
        headers,
        Some(("application/x-www-form-urlencoded", form)),
    )
}

/// GET, or POST when there is a body (content type, body).
pub fn request(url: &str, headers: &[(&str, &str)], body: Option<(&str, &str)>) -> (u16, String) {
    // A tiny HTTP/1.1 client keeps the test free of async machinery.
    use std::io::Write;
    let u = url::Url::parse(url).unwrap();
    let mut s = std::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).unwrap();
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        u.host_str().unwrap()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((content_type, b)) = body {
        req.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.map_or("", |(_, b)| b));
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp)
}

/// A PostgreSQL database of its own with an owner role and an RLS-bound application role
/// (`NOINHERIT`), as an operator sets one up; [`PgDb::drop_all`] removes all three.
pub struct PgDb {
    pub app_url: String,
    pub owner_url: String,
    admin: sqlx::PgConnection,
    names: [String; 3],
}

fn url_for(admin: &str, user: &str, db: &str) -> String {
    let mut u = url::Url::parse(admin).unwrap();
    u.set_username(user).unwrap();
    u.set_password(None).unwrap();
    u.set_path(db);
    u.to_string()
}

impl PgDb {
    pub async fn create(prefix: &str) -> PgDb {
        use sqlx::Connection;
        let admin = std::env::var("PARLO_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin}: {e}"));
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let (owner, app, db) = (
            format!("{prefix}_owner_{}", &suffix[..8]),
            format!("{prefix}_app_{}", &suffix[..8]),
            format!("parlo_{prefix}_{suffix}"),
        );
        for sql in [
            format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE ROLE {app} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT"),
            format!("CREATE DATABASE {db} OWNER {owner}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        let mut dbconn = sqlx::PgConnection::connect(&url_for(&admin, "postgres", &db))
            .await
            .unwrap();
        sqlx::query(&format!("ALTER SCHEMA public OWNER TO {owner}"))
            .execute(&mut dbconn)
            .await
            .unwrap();
        dbconn.close().await.unwrap();
        PgDb {
            app_url: url_for(&admin, &app, &db),
            owner_url: url_for(&admin, &owner, &db),
            admin: conn,
            names: [db, owner, app],
        }
    }

    pub async fn drop_all(mut self) {
        let [db, owner, app] = &self.names;
        sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .execute(&mut self.admin)
            .await
            .unwrap();
        for role in [owner, app] {
            let _ = sqlx::query(&format!("DROP ROLE {role}"))
                .execute(&mut self.admin)
                .await;
        }
    }
}

/// `parlo migrate` on `url` (as `owner_url` on PostgreSQL), as an operator runs it.
pub fn migrate(dir: &Path, url: &str, owner_url: Option<&str>) {
    let mut cmd = parlo(dir);
    cmd.arg("migrate").env("PARLO_DATABASE_URL", url);
    if let Some(o) = owner_url {
        cmd.env("PARLO_MIGRATION_DATABASE_URL", o);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A user `email` (placeholder password hash) owning a new workspace "Acme".
pub async fn owner_of_acme(
    store: &parlo::storage::Store,
    email: &str,
) -> (parlo::model::User, parlo::model::Workspace) {
    use parlo::model::{Email, WorkspaceName};
    let user = store
        .create_user(&Email::parse(email).unwrap(), "h")
        .await
        .unwrap();
    let ws = store
        .create_workspace(&WorkspaceName::parse("Acme").unwrap(), user.id)
        .await
        .unwrap();
    (user, ws)
}

/// A user owning the workspace "Acme" with the bot "Help", allowed on `origin`.
pub async fn workspace_with_bot(
    store: &parlo::storage::Store,
    origin: &str,
) -> (parlo::model::TenantId, parlo::model::Bot) {
    use parlo::model::{BotInput, BotSettings};
    let (_, ws) = owner_of_acme(store, "ann@example.com").await;
    let bot = store
        .create_bot(
            ws.id,
            &BotSettings::parse(&BotInput {
                name: "Help".into(),
                allowed_origins: origin.into(),
                ..BotInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    (ws.id, bot)
}
