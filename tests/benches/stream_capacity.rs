//! How many concurrent streaming conversations one `parlo serve` process holds, and its
//! memory per stream. Starts the release binary on SQLite against the fake upstream, which
//! sends one chunk per answer and then holds the stream open; opens N streams, waits until
//! every one has its first token, and reads the server's resident memory before and after.
//!
//! ```sh
//! cargo build --release -p parlo
//! cargo bench -p parlo-tests --bench stream_capacity -- 9000
//! ```
//!
//! Each stream costs the server two sockets (end user and upstream), so a process allowed
//! 20,000 open files (this machine's hard limit) tops out just under 10,000 streams. The fake
//! upstream runs in its own process (this binary with `serve-fake`) so that the client, the
//! fake and the server each stay under the limit.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parlo::config::DatabaseUrl;
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::TEST_MASTER_KEYS;
use parlo_tests::fake_mistral::{FakeMistral, Fault};
use parlo_tests::fixture::NewTenant;
use serde_json::json;

const SHOP: &str = "https://shop.example";
const KEY: &str = "bench-key-0123456789abcdef";
const TOKEN: &str = "b1:YmVuY2gtdG9rZW4ta2V5LTAxMjM0NTY3ODlhYmNkZWY=";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The fake upstream in a child process: prints its URL, then serves until killed.
fn serve_fake() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fake = FakeMistral::start().await;
        fake.accept_key(KEY);
        fake.set_reply_chunks(&["first", " never"]);
        fake.set_fault(Fault::Stall { after_chunks: 1 });
        println!("{}", fake.base_url);
        std::future::pending::<()>().await;
    });
}

fn main() {
    if std::env::args().any(|a| a == "serve-fake") {
        return serve_fake();
    }
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(9_000);
    let bin = std::env::var("PARLO_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/parlo").to_owned()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("parlo.db").display()
        );
        let store = Store::open_sqlite(&DatabaseUrl::new(db.clone()))
            .await
            .unwrap();
        let t = NewTenant::owned_by("bench@example.com")
            .workspace("Bench")
            .bot(BotInput {
                name: "B".into(),
                allowed_origins: SHOP.into(),
                ..BotInput::default()
            })
            .with_key(KEY)
            .create(&store)
            .await;
        store.close().await;

        let mut fake = Command::new(std::env::current_exe().unwrap())
            .arg("serve-fake")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut fake_url = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(fake.stdout.take().unwrap()),
            &mut fake_url,
        )
        .unwrap();
        let fake_url = fake_url.trim().to_owned();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&bin)
            .current_dir(dir.path())
            .env("PARLO_DATABASE_URL", &db)
            .env("PARLO_LISTEN", format!("127.0.0.1:{port}"))
            // The fixture sealed the key with the harness's master keys.
            .env("PARLO_MASTER_KEYS", TEST_MASTER_KEYS)
            .env("PARLO_TOKEN_KEYS", TOKEN)
            .env("PARLO_MISTRAL_BASE_URL", &fake_url)
            .env("PARLO_UPSTREAM_READ_TIMEOUT_SECS", "600")
            .env("PARLO_RATE_LIMIT_IP_PER_MINUTE", "4000000000")
            .env("PARLO_RATE_LIMIT_CONVERSATION_PER_MINUTE", "4000000000")
            .env("PARLO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {bin} (build it with `cargo build --release -p parlo`): {e}")
            });
        let pid = child.id();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        for _ in 0..100 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Sessions: one conversation per 50 streams.
        let mut tokens = Vec::new();
        for _ in 0..n.div_ceil(50) {
            let s: serde_json::Value = client
                .post(format!("{base}/api/widget/v1/session"))
                .header("origin", SHOP)
                .json(&json!({"bot": t.bot.public_id}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tokens.push(s["token"].as_str().unwrap().to_owned());
        }
        // Warm up: one stream opened and closed, so lazily built state is in the baseline.
        let warm = client
            .post(format!("{base}/api/widget/v1/messages"))
            .header("origin", SHOP)
            .bearer_auth(&tokens[0])
            .json(&json!({"content": "hi"}))
            .send()
            .await
            .unwrap();
        warm.bytes_stream().next().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let base_rss = rss_kib(pid);

        let ready = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (hold_tx, _hold_rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (client, base, token) = (client.clone(), base.clone(), tokens[i / 50].clone());
            let (ready, failed, mut hold) = (ready.clone(), failed.clone(), hold_tx.subscribe());
            tasks.push(tokio::spawn(async move {
                let resp = client
                    .post(format!("{base}/api/widget/v1/messages"))
                    .header("origin", SHOP)
                    .bearer_auth(&token)
                    .json(&json!({"content": "hi"}))
                    .send()
                    .await;
                let Ok(resp) = resp else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let mut body = resp.bytes_stream();
                let mut seen = String::new();
                while let Some(Ok(chunk)) = body.next().await {
                    seen.push_str(&String::from_utf8_lossy(&chunk));
                    if seen.contains("event: delta") {
                        ready.fetch_add(1, Ordering::Relaxed);
                        let _ = hold.wait_for(|stop| *stop).await;
                        return;
                    }
                }
                failed.fetch_add(1, Ordering::Relaxed);
            }));
        }
        while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n
            && started.elapsed() < Duration::from_secs(600)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let open_time = started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_kib(pid);
        let ok = ready.load(Ordering::Relaxed);
        println!("streams requested:       {n}");
        println!(
            "streams open (1st token): {ok}  (failed: {})",
            failed.load(Ordering::Relaxed)
        );
        println!("time to open all:        {:.1} s", open_time.as_secs_f64());
        println!("server RSS before/after: {base_rss} KiB / {rss} KiB");
        println!(
            "memory per open stream:  {:.1} KiB",
            (rss.saturating_sub(base_rss)) as f64 / ok.max(1) as f64
        );
        let _ = hold_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = fake.kill();
        let _ = fake.wait();
    });
}
