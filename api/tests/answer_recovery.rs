//! A `parlo serve` process killed with `kill -9` in the middle of a streamed answer, on both
//! backends: the text streamed so far was saved while streaming, the answer is not ended
//! while its process lives (its heartbeat keeps it fresh), and after a restart the answer is
//! `interrupted` with that text — never `pending` forever.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use parlo::config::DatabaseUrl;
use parlo::model::{ConversationId, Message, MessageRole, MessageStatus, TenantId};
use parlo::storage::Store;
use support::{PgDb, Server, get, migrate, parlo, workspace_with_bot};

const MASTER: &str = "1:Y3Jhc2gtcmVjb3ZlcnktbWFzdGVyLWtleS0wMTIzNDU=";
const TOKEN: &str = "k1:Y3Jhc2gtcmVjb3ZlcnktdG9rZW4ta2V5LTAxMjM0NTY=";
const SHOP: &str = "https://shop.example";

/// An upstream that streams an endless answer, one word every 100 ms: `w0 w1 w2 …`.
async fn slow_upstream() -> String {
    async fn chat() -> axum::response::Response {
        let words = futures_util::stream::unfold(0u64, |i| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let chunk = serde_json::json!({
                "id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{ "index": 0, "delta": { "content": format!("w{i} ") }, "finish_reason": null }]
            });
            let frame = Bytes::from(format!("data: {chunk}\n\n"));
            Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
        });
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(words))
            .unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/chat/completions", post(chat));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn expected_prefix(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.iter().enumerate().all(|(i, w)| *w == format!("w{i}")) && text.ends_with(' ')
}

/// `POST /messages`, leaving the answer's stream open; returns the socket.
fn send(url: &str, token: &str, content: &str) -> TcpStream {
    let u = url::Url::parse(url).unwrap();
    let mut s = TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).unwrap();
    let body = serde_json::json!({ "content": content }).to_string();
    write!(
        s,
        "POST /api/widget/v1/messages HTTP/1.1\r\nHost: x\r\nOrigin: {SHOP}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads from the answer's stream until `deltas` delta events have arrived.
fn read_deltas(s: &mut TcpStream, seen: &mut String, deltas: usize) {
    let mut buf = [0u8; 4096];
    while seen.matches("event: delta").count() < deltas {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn answer(store: &Store, t: TenantId, c: ConversationId) -> Message {
    let m = store.messages(t, c).await.unwrap();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].role, MessageRole::User);
    m[1].clone()
}

async fn killed_mid_stream_then_restarted(db_url: &str, owner_url: Option<&str>, store: Store) {
    let upstream = slow_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = parlo(dir.path());
        cmd.env("PARLO_DATABASE_URL", db_url)
            .env("PARLO_MASTER_KEYS", MASTER)
            .env("PARLO_TOKEN_KEYS", TOKEN)
            .env("PARLO_MISTRAL_BASE_URL", &upstream)
            .env("PARLO_PLATFORM_MISTRAL_KEY", "mk-platform-key-0123456789")
            .env("PARLO_UPSTREAM_READ_TIMEOUT_SECS", "1");
        if let Some(o) = owner_url {
            cmd.env("PARLO_MIGRATION_DATABASE_URL", o);
        }
        Server::start(cmd)
    };
    let server = start();
    let (tenant, bot) = workspace_with_bot(&store, SHOP).await;
    let (status, resp) = get(
        &format!("{}/api/widget/v1/session", server.url),
        &[("Origin", SHOP)],
        Some(&format!(r#"{{"bot":"{}"}}"#, bot.public_id)),
    );
    assert_eq!(status, 200, "{resp}");
    let json: serde_json::Value =
        serde_json::from_str(resp[resp.find("\r\n\r\n").unwrap() + 4..].trim()).unwrap();
    let token = json["token"].as_str().unwrap().to_owned();
    // A new conversation is stored with its first message; its id is in the token's claims.
    let conv: ConversationId = {
        use base64::Engine;
        let payload = token
            .split('.')
            .nth(2)
            .expect("a widget token has four parts");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["conv"].as_str().unwrap().parse().unwrap()
    };

    let mut stream = send(&server.url, &token, "Tell me everything");
    let mut seen = String::new();
    read_deltas(&mut stream, &mut seen, 3);
    // Streaming for longer than the staleness limit (8 s with a 1 s read timeout): the
    // process's own sweeps leave the live answer alone, and its text is saved as it grows.
    let live_until = Instant::now() + Duration::from_secs(10);
    let mut saved = String::new();
    while Instant::now() < live_until {
        let more = seen.matches("event: delta").count() + 5;
        read_deltas(&mut stream, &mut seen, more);
        let a = answer(&store, tenant, conv).await;
        assert_eq!(
            a.status,
            MessageStatus::Pending,
            "a live answer is never ended"
        );
        assert!(a.content.len() >= saved.len(), "{a:?}");
        saved = a.content;
    }
    assert!(
        saved.len() > "w0 w1 w2 ".len() && expected_prefix(&saved),
        "the streamed text was saved while streaming: {saved:?}"
    );

    // kill -9: no shutdown, no final write.
    let mut child = server.child;
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stream);
    let left = answer(&store, tenant, conv).await;
    assert_eq!(left.status, MessageStatus::Pending, "nobody finished it");
    assert!(expected_prefix(&left.content), "{left:?}");

    // Past the staleness limit, a restart ends it at once, with what was saved.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let server = start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let history = loop {
        let (status, resp) = get(
            &format!("{}/api/widget/v1/messages", server.url),
            &[
                ("Origin", SHOP),
                ("Authorization", &format!("Bearer {token}")),
            ],
            None,
        );
        assert_eq!(status, 200, "{resp}");
        let body: serde_json::Value =
            serde_json::from_str(resp[resp.find("\r\n\r\n").unwrap() + 4..].trim()).unwrap();
        if body["messages"][1]["status"] == "interrupted" || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a = &history["messages"][1];
    assert_eq!(a["status"], "interrupted", "{history}");
    assert_eq!(a["role"], "assistant");
    assert_eq!(
        a["content"],
        left.content.as_str(),
        "the partial answer is kept"
    );
    let stored = answer(&store, tenant, conv).await;
    assert_eq!(stored.status, MessageStatus::Interrupted);
    assert!(stored.completed_at.is_some());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_leaves_the_partial_answer_interrupted_after_restart_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("parlo.db").display()
    );
    migrate(dir.path(), &url, None);
    let store = Store::open_sqlite(&DatabaseUrl::new(url.clone()))
        .await
        .unwrap();
    killed_mid_stream_then_restarted(&url, None, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_leaves_the_partial_answer_interrupted_after_restart_postgres() {
    let pg = PgDb::create("crash").await;
    let dir = tempfile::tempdir().unwrap();
    migrate(dir.path(), &pg.app_url, Some(&pg.owner_url));
    let store = Store::connect_postgres(&DatabaseUrl::new(pg.app_url.clone()))
        .await
        .unwrap();
    killed_mid_stream_then_restarted(&pg.app_url, Some(&pg.owner_url), store.clone()).await;
    store.close().await;
    pg.drop_all().await;
}
