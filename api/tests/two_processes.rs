//! Two `parlo serve` processes on one PostgreSQL database, migrated by `parlo migrate` as the
//! owner and served as the RLS-bound application role: a widget token issued by one process
//! is accepted by the other, and a rate limit is shared between them.

mod support;

use parlo::config::DatabaseUrl;
use parlo::model::{BotInput, BotSettings};
use parlo::storage::Store;
use sqlx::{Connection, PgConnection};
use support::{Server, get, parlo};

const MASTER: &str = "1:dHdvLXByb2Nlc3Nlcy1tYXN0ZXIta2V5LTAxMjM0NTY=";
const TOKEN: &str = "k1:dHdvLXByb2Nlc3Nlcy10b2tlbi1rZXktMDEyMzQ1Njc=";

fn url_for(admin: &str, user: &str, db: &str) -> String {
    let mut u = url::Url::parse(admin).unwrap();
    u.set_username(user).unwrap();
    u.set_password(None).unwrap();
    u.set_path(db);
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_tokens_and_rate_limits() {
    let admin = std::env::var("PARLO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin}: {e}"));
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (owner, app, db) = (
        format!("p2_owner_{}", &suffix[..8]),
        format!("p2_app_{}", &suffix[..8]),
        format!("parlo_2p_{suffix}"),
    );
    for sql in [
        format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE ROLE {app} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT"),
        format!("CREATE DATABASE {db} OWNER {owner}"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    let mut dbconn = PgConnection::connect(&url_for(&admin, "postgres", &db))
        .await
        .unwrap();
    sqlx::query(&format!("ALTER SCHEMA public OWNER TO {owner}"))
        .execute(&mut dbconn)
        .await
        .unwrap();
    dbconn.close().await.unwrap();
    let app_url = url_for(&admin, &app, &db);
    let owner_url = url_for(&admin, &owner, &db);

    // `parlo migrate` as an operator runs it.
    let dir = tempfile::tempdir().unwrap();
    let out = parlo(dir.path())
        .arg("migrate")
        .env("PARLO_DATABASE_URL", &app_url)
        .env("PARLO_MIGRATION_DATABASE_URL", &owner_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store = Store::connect_postgres(&DatabaseUrl::new(app_url.clone()))
        .await
        .unwrap();
    let (_, ws) = support::owner_of_acme(&store, "ann@example.com").await;
    let bot = store
        .create_bot(
            ws.id,
            &BotSettings::parse(&BotInput {
                name: "Help".into(),
                allowed_origins: "https://shop.example".into(),
                ..BotInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();

    let start = || {
        let mut cmd = parlo(dir.path());
        cmd.env("PARLO_DATABASE_URL", &app_url)
            .env("PARLO_MASTER_KEYS", MASTER)
            .env("PARLO_TOKEN_KEYS", TOKEN)
            .env("PARLO_RATE_LIMIT_IP_PER_MINUTE", "5");
        Server::start(cmd)
    };
    let (one, two) = (start(), start());
    let session = format!(r#"{{"bot":"{}"}}"#, bot.public_id);
    let origin = [("Origin", "https://shop.example")];

    // Process one issues the token; process two accepts it.
    let (status, resp) = get(
        &format!("{}/api/widget/v1/session", one.url),
        &origin,
        Some(&session),
    );
    assert_eq!(status, 200, "{resp}");
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let token = json["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let (status, resp) = get(
        &format!("{}/api/widget/v1/messages", two.url),
        &[
            ("Origin", "https://shop.example"),
            ("Authorization", &bearer),
        ],
        None,
    );
    assert_eq!(status, 200, "{resp}");

    // Five requests per minute per IP in all, whichever process receives them: two were
    // made above, three more pass, the sixth is refused — by either process.
    for server in [&one, &two, &one] {
        let (status, resp) = get(
            &format!("{}/api/widget/v1/session", server.url),
            &origin,
            Some(&session),
        );
        assert_eq!(status, 200, "{resp}");
    }
    for server in [&two, &one] {
        let (status, resp) = get(
            &format!("{}/api/widget/v1/session", server.url),
            &origin,
            Some(&session),
        );
        assert_eq!(status, 429, "{resp}");
        assert!(resp.to_lowercase().contains("retry-after:"), "{resp}");
    }
    one.stop();
    two.stop();

    drop(store);
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    for role in [&owner, &app] {
        let _ = sqlx::query(&format!("DROP ROLE {role}"))
            .execute(&mut conn)
            .await;
    }
}
