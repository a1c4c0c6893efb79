//! Two `parlo serve` processes on one PostgreSQL database, migrated by `parlo migrate` as the
//! owner and served as the RLS-bound application role: a widget token issued by one process
//! is accepted by the other, and a rate limit is shared between them.

mod support;

use parlo::config::DatabaseUrl;
use parlo::storage::Store;
use support::{Server, get, migrate, parlo, workspace_with_bot};

const MASTER: &str = "1:dHdvLXByb2Nlc3Nlcy1tYXN0ZXIta2V5LTAxMjM0NTY=";
const TOKEN: &str = "k1:dHdvLXByb2Nlc3Nlcy10b2tlbi1rZXktMDEyMzQ1Njc=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_tokens_and_rate_limits() {
    let pg = support::PgDb::create("p2").await;
    let (app_url, owner_url) = (pg.app_url.clone(), pg.owner_url.clone());

    // `parlo migrate` as an operator runs it.
    let dir = tempfile::tempdir().unwrap();
    migrate(dir.path(), &app_url, Some(&owner_url));

    let store = Store::connect_postgres(&DatabaseUrl::new(app_url.clone()))
        .await
        .unwrap();
    let (_, bot) = workspace_with_bot(&store, "https://shop.example").await;

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
    pg.drop_all().await;
}
