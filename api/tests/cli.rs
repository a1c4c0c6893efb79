//! The `parlo` binary as an operator runs it: zero-config first start, production refusals,
//! `config check`, and the guarantee that no secret reaches a log line.

mod support;

use std::process::{Command, Stdio};

use support::{Server, get, parlo};

#[test]
fn first_run_needs_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(parlo(dir.path()));
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let (status, body) = get(&format!("{}/healthz", server.url), &[], None);
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&format!("{}/readyz", server.url), &[], None);
    assert_eq!(status, 200);
    let (_, err) = server.stop();
    let _ = err;
    assert!(
        dir.path().join("data/parlo.db").exists(),
        "SQLite database in ./data"
    );
    let key_file = dir.path().join("data/keys.toml");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the generated key file is private");
    // A second start reuses the keys instead of generating new ones.
    let before = std::fs::read(&key_file).unwrap();
    let server = Server::start(parlo(dir.path()));
    server.stop();
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
}

#[test]
fn development_warns_loudly_about_generated_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(parlo(dir.path()));
    let (out, _) = server.stop();
    assert!(out.contains("generated development keys"), "{out}");
}

fn run_to_end(mut cmd: Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn production_requires_https_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_ENV", "production")
        .env("PARLO_PUBLIC_URL", "http://chat.example.com");
    let (ok, _, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("PARLO_PUBLIC_URL=https://"), "{err}");
}

#[test]
fn production_requires_keys_and_never_generates_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_ENV", "production")
        .env("PARLO_PUBLIC_URL", "https://chat.example.com");
    let (ok, _, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(
        err.contains("PARLO_MASTER_KEYS") && err.contains("PARLO_TOKEN_KEYS"),
        "{err}"
    );
    assert!(
        !dir.path().join("data/keys.toml").exists(),
        "production never generates keys"
    );
}

#[test]
fn production_rejects_a_key_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    // Generate a key file in development first, then loosen its mode.
    let server = Server::start(parlo(dir.path()));
    server.stop();
    let key_file = dir.path().join("data/keys.toml");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_ENV", "production")
        .env("PARLO_PUBLIC_URL", "https://chat.example.com")
        .env("PARLO_KEY_FILE", &key_file)
        .env("PARLO_SMTP_URL", "smtp://127.0.0.1:2525");
    let (ok, _, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("chmod 600"), "{err}");
    // Fixed mode: production starts with the key file.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_ENV", "production")
        .env("PARLO_PUBLIC_URL", "https://chat.example.com")
        .env("PARLO_KEY_FILE", &key_file);
    let (ok, _, err) = run_to_end(cmd);
    assert!(!ok, "production needs an SMTP server");
    assert!(err.contains("PARLO_SMTP_URL"), "{err}");
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_ENV", "production")
        .env("PARLO_PUBLIC_URL", "https://chat.example.com")
        .env("PARLO_KEY_FILE", &key_file)
        .env("PARLO_SMTP_URL", "smtp://127.0.0.1:2525");
    let server = Server::start(cmd);
    let (status, resp) = get(&format!("{}/healthz", server.url), &[], None);
    assert_eq!(status, 200);
    assert!(
        resp.to_lowercase().contains("strict-transport-security"),
        "HSTS with an https public URL:\n{resp}"
    );
    server.stop();
}

const MASTER: &str = "1:bWFzdGVyLWtleS1mb3ItcmVkYWN0aW9uLXRlc3QtMDE=";
const TOKEN: &str = "k9:dG9rZW4ta2V5LWZvci1yZWRhY3Rpb24tdGVzdC0wMTI=";

#[test]
fn config_check_prints_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("parlo.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9999\"\nlog = \"debug\"\n").unwrap();
    let mut cmd = parlo(dir.path());
    cmd.args(["config", "check", "--config"])
        .arg(&file)
        .env_remove("PARLO_LISTEN")
        .env(
            "PARLO_DATABASE_URL",
            "postgres://app:db-password-7777@db.internal/parlo",
        )
        .env("PARLO_MASTER_KEYS", MASTER)
        .env("PARLO_TOKEN_KEYS", TOKEN)
        .env(
            "PARLO_SMTP_URL",
            "smtps://mailer:smtp-password-5150@mail.example.com",
        )
        .env("PARLO_LOG", "info");
    let (ok, out, err) = run_to_end(cmd);
    assert!(out.contains("smtp_url = \"REDACTED (set)\""), "{out}");
    assert!(ok, "{err}");
    assert!(
        out.contains("listen = \"127.0.0.1:9999\""),
        "file value used:\n{out}"
    );
    assert!(
        out.contains("log = \"info\""),
        "environment overrides the file:\n{out}"
    );
    assert!(
        out.contains("postgres://app:REDACTED@db.internal/parlo"),
        "{out}"
    );
    for secret in [
        "db-password-7777",
        "smtp-password-5150",
        &MASTER[2..],
        &TOKEN[3..],
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} leaked:\n{out}\n{err}"
        );
    }
    assert!(
        out.contains("ids 1") && out.contains("ids k9"),
        "key ids are shown:\n{out}"
    );
}

#[test]
fn help_explains_each_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = parlo(dir.path());
    cmd.arg("--help");
    let (ok, out, _) = run_to_end(cmd);
    assert!(ok);
    for s in [
        "PARLO_DATABASE_URL",
        "PARLO_PUBLIC_URL",
        "PARLO_DATA_DIR",
        "PARLO_ENV",
        "PARLO_MASTER_KEYS",
        "PARLO_TOKEN_KEYS",
        "PARLO_MIGRATION_DATABASE_URL",
    ] {
        assert!(out.contains(s), "--help mentions {s}");
    }
}

/// Secrets of every kind travel through the server (headers, bodies, query strings, config)
/// at the most verbose log level; none may appear in anything the process writes.
#[test]
fn no_secret_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_MASTER_KEYS", MASTER)
        .env("PARLO_TOKEN_KEYS", TOKEN)
        .env("PARLO_LOG", "trace");
    let server = Server::start(cmd);
    let bearer = "v1.eyJ3b3Jrc3BhY2UiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA";
    let cookie = "parlo_session=cookie-secret-4f2a9c";
    let password = "correct horse battery staple";
    let api_key = "mistral-key-9Zq8Xw7Vu6";
    let query_token = "query-token-3e7d1b";
    for path in ["/healthz", "/readyz", "/api/widget/v1/messages", "/login"] {
        get(
            &format!("{}{path}?token={query_token}", server.url),
            &[
                ("Authorization", &format!("Bearer {bearer}")),
                ("Cookie", cookie),
                ("X-Api-Key", api_key),
            ],
            Some(&format!(
                r#"{{"password":"{password}","api_key":"{api_key}"}}"#
            )),
        );
    }
    let (out, err) = server.stop();
    let all = format!("{out}\n{err}");
    assert!(
        all.contains("finished processing request"),
        "requests were logged:\n{all}"
    );
    for secret in [
        bearer,
        "cookie-secret-4f2a9c",
        password,
        api_key,
        query_token,
        &MASTER[2..],
        &TOKEN[3..],
    ] {
        assert!(!all.contains(secret), "{secret:?} reached the logs:\n{all}");
    }
}

/// A start-up failure that mentions the database (here: refusing a superuser) must not
/// print the password of its URL.
#[test]
fn startup_errors_do_not_leak_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let admin = std::env::var("PARLO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_password(Some("pg-pass-6b1f0e")).unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_DATABASE_URL", url.as_str())
        .env("PARLO_LOG", "trace");
    let (ok, out, err) = run_to_end(cmd);
    assert!(!ok, "a superuser connection is refused");
    assert!(
        err.contains("could bypass row-level security") || err.contains("not migrated"),
        "{err}"
    );
    assert!(
        !out.contains("pg-pass-6b1f0e") && !err.contains("pg-pass-6b1f0e"),
        "{out}\n{err}"
    );
}

#[test]
fn render_writes_exactly_what_the_widget_would_insert() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let markdown = "# Title\n\nSee [docs](https://example.com) and $e^{i\\pi}+1=0$.\n\n<img src=x onerror=alert(1)>\n";
    let mut child = parlo(dir.path())
        .arg("render")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    assert_eq!(html, parlo_render::render(markdown));
    assert!(
        html.contains("<math") && html.contains("rel=\"noopener noreferrer nofollow\""),
        "{html}"
    );
    assert!(
        !html.contains("<img"),
        "raw HTML is shown as text, never as markup: {html}"
    );
}

/// A response's `Set-Cookie` value (name=value) and the `csrf` field of its form.
fn cookie_and_csrf(resp: &str) -> (Option<String>, Option<String>) {
    let cookie = resp.lines().find_map(|l| {
        l.strip_prefix("set-cookie: ")
            .or_else(|| l.strip_prefix("Set-Cookie: "))
            .map(|c| c.split(';').next().unwrap().to_owned())
    });
    let csrf = resp
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .map(|r| r.split('"').next().unwrap().to_owned());
    (cookie, csrf)
}

/// The path of the first link containing `needle` in the newest `.eml` file of the
/// development outbox.
fn mailed_link(dir: &std::path::Path, needle: &str, nth: usize) -> String {
    for _ in 0..200 {
        let mut files: Vec<_> = std::fs::read_dir(dir.join("data/outbox"))
            .map(|es| es.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        if let Some(f) = files.get(nth) {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "mail files are private");
            let raw = std::fs::read_to_string(f).unwrap();
            // Text parts are quoted-printable or 7bit; a link is never broken inside `/…/`.
            let text = raw.replace("=\r\n", "").replace("=3D", "=");
            let at = text
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} in {raw}"));
            let end = at + text[at..].find(|c: char| c.is_whitespace()).unwrap();
            return text[at..end].to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no mail {nth} in the outbox");
}

/// The links of account mail carry single-use tokens: at trace level, neither a token nor
/// a link reaches the logs (requests log their route template), and the development outbox
/// names the file, not the link.
#[test]
fn mail_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_MASTER_KEYS", MASTER)
        .env("PARLO_TOKEN_KEYS", TOKEN)
        .env("PARLO_LISTEN", format!("127.0.0.1:{port}"))
        .env("PARLO_PUBLIC_URL", &base)
        .env("PARLO_LOG", "trace");
    let server = Server::start(cmd);
    let origin = base.clone();
    let form_post = |path: &str, cookie: &str, csrf: &str, fields: &str| {
        get(
            &format!("{base}{path}"),
            &[("Cookie", cookie), ("Origin", &origin)],
            Some(&format!("csrf={csrf}&{fields}")),
        )
    };
    // Sign up: the confirmation link.
    let (_, resp) = get(&format!("{base}/signup"), &[], None);
    let (cookie, csrf) = cookie_and_csrf(&resp);
    let (cookie, csrf) = (cookie.unwrap(), csrf.unwrap());
    let (status, resp) = form_post(
        "/signup",
        &cookie,
        &csrf,
        "email=tom%40t.example&password=correct+horse+battery+staple&workspace=Tom",
    );
    assert_eq!(status, 303, "{resp}");
    let verify = mailed_link(dir.path(), "/verify/", 0);
    let verify_token = verify.rsplit('/').next().unwrap().to_owned();
    let (status, page) = get(&format!("{base}{verify}"), &[("Cookie", &cookie)], None);
    assert_eq!(status, 200, "{page}");
    let (status, resp) = form_post("/verify", &cookie, &csrf, &format!("token={verify_token}"));
    assert_eq!(status, 303, "{resp}");
    // Forgot password: the reset link.
    let (status, resp) = form_post("/password/forgot", &cookie, &csrf, "email=tom%40t.example");
    assert_eq!(status, 200, "{resp}");
    let reset = mailed_link(dir.path(), "/password/reset/", 1);
    let reset_token = reset.rsplit('/').next().unwrap().to_owned();
    let (status, page) = get(&format!("{base}{reset}"), &[("Cookie", &cookie)], None);
    assert_eq!(status, 200, "{page}");
    let (status, resp) = form_post(
        "/password/reset",
        &cookie,
        &csrf,
        &format!("token={reset_token}&password=another+long+password"),
    );
    assert_eq!(status, 303, "{resp}");
    let (out, err) = server.stop();
    let all = format!("{out}\n{err}");
    assert!(
        all.contains("/password/reset/{token}"),
        "requests log their route:\n{all}"
    );
    assert!(
        all.contains("development outbox") && all.contains(".eml"),
        "the outbox file is named:\n{all}"
    );
    for secret in [
        verify_token.as_str(),
        reset_token.as_str(),
        "another long password",
    ] {
        assert!(!all.contains(secret), "{secret:?} reached the logs:\n{all}");
    }
}

/// `parlo admin mail status` shows the queue; `parlo admin notify` refuses a subject with a
/// line break (header injection) and an unknown workspace, with clear errors.
#[test]
fn admin_mail_commands_show_the_queue_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = parlo(dir.path());
    cmd.args(["admin", "--actor", "ops", "mail", "status"]);
    let (ok, out, err) = run_to_end(cmd);
    assert!(ok, "{err}");
    assert!(out.contains("pending 0  sent 0  failed 0"), "{out}\n{err}");
    assert!(err.contains("recorded as operator audit entry"), "{err}");
    let body = dir.path().join("notice.txt");
    std::fs::write(&body, "Something happened.\n\nDetails follow.").unwrap();
    let mut cmd = parlo(dir.path());
    cmd.args([
        "admin",
        "notify",
        "--all",
        "--subject",
        "Incident\r\nBcc: x@evil.example",
    ])
    .arg("--body-file")
    .arg(&body);
    let (ok, _, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("one line"), "{err}");
    let mut cmd = parlo(dir.path());
    cmd.args([
        "admin",
        "notify",
        "--workspace",
        "0190b8a0-0000-7000-8000-000000000000",
        "--subject",
        "Incident",
    ])
    .arg("--body-file")
    .arg(&body);
    let (ok, _, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("no workspace"), "{err}");
}

/// The SQLite URL of the default database of a `parlo` run in `dir`.
fn sqlite_url(dir: &std::path::Path) -> parlo::config::DatabaseUrl {
    parlo::config::DatabaseUrl::new(format!(
        "sqlite://{}?mode=rwc",
        dir.join("data/parlo.db").display()
    ))
}

/// Attack: an invitation link is a credential, and request spans logged the raw path, so
/// every `/invite/{token}` reached the INFO log. After the whole journey (invitation created,
/// link opened, invitation accepted) at the most verbose level, the token appears nowhere;
/// the route template does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_tokens_never_reach_the_logs() {
    use parlo::keyring::{KeyRing, MasterKeys, TokenKeys};
    use parlo::model::*;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = parlo(dir.path());
    cmd.env("PARLO_MASTER_KEYS", MASTER)
        .env("PARLO_TOKEN_KEYS", TOKEN)
        .env("PARLO_LOG", "trace");
    let server = Server::start(cmd);
    let store = parlo::storage::open(&sqlite_url(dir.path()), None)
        .await
        .unwrap();
    let (owner, ws) = support::owner_of_acme(&store, "owner@example.com").await;
    let canary = "CanaryInvite7q9w8e7r6t5y4u3i2o1p0aSdFgHjKl";
    let token = format!("inv_{}_{canary}", ws.id.0.simple());
    store
        .create_invitation(
            ws.id,
            &NewInvitation {
                token_hash: parlo::crypto::sha256(token.as_bytes()),
                role: Role::Member,
                created_by: Some(owner.id),
                expires_at: Timestamp::now().plus_secs(3600),
                email: None,
            },
        )
        .await
        .unwrap();
    let carol = store
        .create_user(&Email::parse("carol@example.com").unwrap(), "h")
        .await
        .unwrap();
    store.mark_email_verified(carol.id).await.unwrap();
    let session = "carol-session-cookie-0123456789abcdefghijkl";
    store
        .create_login_session(&NewLoginSession {
            user_id: carol.id,
            token_hash: parlo::crypto::sha256(session.as_bytes()),
            mfa_verified: true,
            expires_at: Timestamp::now().plus_secs(3600),
        })
        .await
        .unwrap();
    let keys = KeyRing {
        master: MasterKeys::parse(MASTER).unwrap(),
        token: TokenKeys::parse(TOKEN).unwrap(),
    };
    let csrf = parlo::site::csrf::token(&keys, session);
    let cookie = format!("parlo_session={session}");
    let link = format!("{}/invite/{token}", server.url);

    let (status, page) = support::request(&link, &[("Cookie", &cookie)], None);
    assert_eq!(status, 200, "the link opens:\n{page}");
    let (status, resp) = support::post_form(&link, &[("Cookie", &cookie)], &format!("csrf={csrf}"));
    assert_eq!(status, 303, "the invitation is accepted:\n{resp}");
    assert!(
        store
            .members(ws.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.user_id == carol.id),
        "carol joined"
    );
    // A used link is opened once more (now a 404).
    let (status, _) = support::request(&link, &[], None);
    assert_eq!(status, 404);

    let (out, err) = server.stop();
    let all = format!("{out}\n{err}");
    assert!(
        all.contains("/invite/{token}"),
        "requests are logged by their route:\n{all}"
    );
    assert!(
        !all.contains(canary),
        "the invitation token reached the logs:\n{all}"
    );
}

/// Attack: `ps` (or /proc) shows every local user the command line, so a database URL with
/// its password given as a flag leaked it. The flags are refused, without repeating the
/// value; the environment and the config file still work.
#[test]
fn database_url_flags_are_refused_so_ps_never_shows_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "flag-pass-5c8e1d";
    let url = format!("postgres://app:{secret}@db.internal/parlo");
    for (flag, var) in [
        ("--database-url", "PARLO_DATABASE_URL"),
        ("--migration-database-url", "PARLO_MIGRATION_DATABASE_URL"),
        ("--backup-database-url", "PARLO_BACKUP_DATABASE_URL"),
    ] {
        for args in [
            vec![
                "config".to_owned(),
                "check".to_owned(),
                flag.to_owned(),
                url.clone(),
            ],
            vec![format!("{flag}={url}"), "migrate".to_owned()],
        ] {
            let mut cmd = parlo(dir.path());
            cmd.args(&args);
            let (ok, out, err) = run_to_end(cmd);
            assert!(!ok, "{args:?} was accepted:\n{out}");
            assert!(
                err.contains(&format!("{flag} is not accepted")) && err.contains(var),
                "{args:?}: {err}"
            );
            assert!(!out.contains(secret) && !err.contains(secret), "{err}");
        }
    }
    // From the config file: accepted, and shown redacted.
    let file = dir.path().join("parlo.toml");
    std::fs::write(&file, format!("database_url = \"{url}\"\n")).unwrap();
    let mut cmd = parlo(dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let (ok, out, err) = run_to_end(cmd);
    assert!(ok, "{err}");
    assert!(
        out.contains("postgres://app:REDACTED@db.internal/parlo") && !out.contains(secret),
        "{out}"
    );
    // The environment wins over the file.
    let mut cmd = parlo(dir.path());
    cmd.args(["config", "check", "--config"])
        .arg(&file)
        .env("PARLO_DATABASE_URL", "postgres://env@db.internal/parlo");
    let (ok, out, err) = run_to_end(cmd);
    assert!(ok, "{err}");
    assert!(out.contains("postgres://env@db.internal/parlo"), "{out}");
}

/// Attack: after the database's administrator deleted the newest operator-audit entries, the
/// next `parlo admin` command (even a listing) re-used their sequence numbers and overwrote
/// the head file, erasing the evidence. Now it refuses, says why, exits non-zero and changes
/// nothing; `audit verify` still reports the removal.
#[tokio::test]
async fn an_admin_command_after_deleted_audit_entries_refuses_and_keeps_the_evidence() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        let mut cmd = parlo(dir.path());
        cmd.arg("admin").args(args);
        run_to_end(cmd)
    };
    for _ in 0..3 {
        let (ok, _, err) = admin(&["workspaces", "list"]);
        assert!(ok, "{err}");
    }
    let head_file = dir.path().join("data/operator-audit.head");
    let head = std::fs::read_to_string(&head_file).unwrap();
    assert!(head.starts_with("3:"), "{head}");

    let mut db = sqlx::SqliteConnection::connect(sqlite_url(dir.path()).expose())
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER operator_audit_no_delete; DELETE FROM operator_audit WHERE seq >= 2",
    )
    .execute(&mut db)
    .await
    .unwrap();

    let (ok, out, err) = admin(&["workspaces", "list"]);
    assert!(!ok, "the command ran:\n{out}\n{err}");
    assert!(
        err.contains("refusing to append")
            && err.contains(&format!("entry {}", head.trim()))
            && err.contains("newest entry is 1:"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&head_file).unwrap(),
        head,
        "the head file is unchanged"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM operator_audit")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(left, 1, "nothing was appended");
    let (ok, _, err) = admin(&["audit", "verify"]);
    assert!(!ok);
    assert!(err.contains("the newest entries were removed"), "{err}");
}

/// `parlo keys rotate-master` as an operator runs it: re-seals a provider key sealed under
/// version 1, says how many, records itself in the operator audit log, and a second run
/// re-seals nothing. (Both backends and the server's view: tests/tests/lifecycle_keys.rs.)
#[tokio::test]
async fn keys_rotate_master_reseals_reports_and_is_recorded() {
    use parlo::keyring::MasterKeys;
    use parlo::model::*;
    let dir = tempfile::tempdir().unwrap();
    let store = parlo::storage::open(&sqlite_url(dir.path()), None)
        .await
        .unwrap();
    let (_, ws) = support::owner_of_acme(&store, "ann@example.com").await;
    let old = MasterKeys::parse(MASTER).unwrap();
    let purpose = parlo::crypto::Purpose::ProviderKey(ws.id, Provider::Mistral);
    store
        .put_provider_key(
            ws.id,
            &ProviderKey {
                provider: Provider::Mistral,
                sealed: parlo::crypto::seal(&old, purpose, b"mistral-key-0123456789"),
                last_four: "6789".into(),
                updated_at: Timestamp::now(),
            },
        )
        .await
        .unwrap();
    let new = "2:bmV3LW1hc3Rlci1rZXktZm9yLXJvdGF0aW9uLTAxMjM=";
    let rotate = || {
        let mut cmd = parlo(dir.path());
        cmd.args(["keys", "rotate-master"])
            .env("PARLO_MASTER_KEYS", format!("{new},{MASTER}"))
            .env("PARLO_TOKEN_KEYS", TOKEN);
        run_to_end(cmd)
    };
    let (ok, out, err) = rotate();
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["version"], 2, "{out}");
    assert_eq!(r["provider_keys"]["resealed"], 1, "{out}");
    assert!(
        err.contains("re-sealed 1 provider keys") && err.contains("operator audit entry 1"),
        "{err}"
    );
    let (ok, out, err) = rotate();
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["provider_keys"]["resealed"], 0, "idempotent: {out}");
    assert_eq!(r["provider_keys"]["already_current"], 1, "{out}");
    let stored = store
        .provider_key(ws.id, Provider::Mistral)
        .await
        .unwrap()
        .unwrap();
    let only_new = MasterKeys::parse(new).unwrap();
    assert!(parlo::crypto::open(&only_new, purpose, &stored.sealed).is_ok());
    let log = store.operator_audit().await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "keys.rotate_master");
}
