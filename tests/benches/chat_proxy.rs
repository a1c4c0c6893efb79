//! Time to first token through Parlo vs. straight from the fake upstream, in one run, on
//! loopback: sequentially and with N concurrent streams. Run with
//! `cargo bench -p parlo-tests --bench chat_proxy` (optionally `-- <concurrency> <rounds>`).
//!
//! Both paths stream the same reply from the same fake; "direct" is a client reading the
//! fake's SSE itself, "proxy" is the widget endpoint (token check, rate limits, the stored
//! user message, the pending answer, decrypting the key, the upstream call, re-framing).
//! "Database work of a turn" times the two units of work the endpoint does before its
//! upstream call (both rate-limit counters, `begin_turn`) by themselves.
//!
//! Three databases: SQLite; PostgreSQL as configured (durable commits: the turn's commit
//! waits for the WAL flush, i.e. one fsync of this machine's disk); and PostgreSQL with
//! `synchronous_commit = off` for the test database, which shows Parlo's own share
//! without the disk's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parlo::model::{
    FinishedMessage, MessageStatus, NewConversation, NewTurn, Provider, TokenUsage, TurnStart,
};
use parlo::ratelimit::Limit;
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::{NewTenant, Tenant};
use parlo_tests::{Backend, TestApp, TestDb, spawn_app_on};
use serde_json::json;
use sqlx::Connection;

const SHOP: &str = "https://shop.example";
const KEY: &str = "bench-key-0123456789abcdef";

/// Whether to read an answer to its end after its first token is timed.
#[derive(Clone, Copy)]
enum Rest {
    /// Drain it, so the connection ends cleanly and is reused.
    Drain,
    /// Drop the stream (the answer is still running, e.g. with a slow fake).
    Drop,
}

/// Time from `start` to the first token (`marker`) in the response.
async fn first_chunk(
    resp: reqwest::Response,
    marker: &str,
    start: Instant,
    rest: Rest,
) -> Duration {
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream")));
        if seen.contains(marker) {
            let t = start.elapsed();
            if let Rest::Drain = rest {
                while stream.next().await.is_some() {}
            }
            return t;
        }
    }
    panic!("no first token in: {seen}");
}

async fn direct(client: &reqwest::Client, fake: &FakeMistral) -> Duration {
    let start = Instant::now();
    first_chunk(
        direct_request(client, fake).await,
        "\"content\"",
        start,
        Rest::Drain,
    )
    .await
}

async fn proxied(client: &reqwest::Client, app: &TestApp, token: &str) -> Duration {
    let start = Instant::now();
    first_chunk(
        proxied_request(client, app, token).await,
        "event: delta",
        start,
        Rest::Drain,
    )
    .await
}

async fn direct_request(client: &reqwest::Client, fake: &FakeMistral) -> reqwest::Response {
    client
        .post(fake.base_url.join("v1/chat/completions").unwrap())
        .bearer_auth(KEY)
        .json(&json!({"model": "mistral-small-latest", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn proxied_request(
    client: &reqwest::Client,
    app: &TestApp,
    token: &str,
) -> reqwest::Response {
    let resp = client
        .post(app.url("/api/widget/v1/messages"))
        .header("origin", SHOP)
        .bearer_auth(token)
        .json(&json!({"content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Reports direct and proxied latencies and what Parlo added at p50 and p99.
fn report_added(direct: Vec<Duration>, proxied: Vec<Duration>) {
    let (d50, d99) = report("direct from fake", direct);
    let (p50, p99) = report("through parlo", proxied);
    println!(
        "{:<28} p50=+{:.3} ms  p99=+{:.3} ms",
        "added by parlo",
        (p50.as_secs_f64() - d50.as_secs_f64()) * 1e3,
        (p99.as_secs_f64() - d99.as_secs_f64()) * 1e3
    );
}

fn report(label: &str, mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let (p50, p99) = (percentile(&d, 0.50), percentile(&d, 0.99));
    println!(
        "{label:<28} n={:<5} p50={:>8.3} ms  p99={:>8.3} ms",
        d.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (p50, p99)
}

async fn tokens(app: &TestApp, t: &Tenant, n: usize) -> Vec<String> {
    let widget = t.widget(app, SHOP);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(widget.session().await.token);
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
    PostgresAsyncCommit,
}

async fn database(db: Db) -> TestDb {
    match db {
        Db::Sqlite => TestDb::new(Backend::Sqlite).await,
        Db::Postgres => TestDb::new(Backend::Postgres).await,
        Db::PostgresAsyncCommit => {
            let test_db = TestDb::new(Backend::Postgres).await;
            let pg = test_db.pg().unwrap();
            let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
            sqlx::query(&format!(
                "ALTER DATABASE \"{}\" SET synchronous_commit = off",
                pg.name
            ))
            .execute(&mut admin)
            .await
            .unwrap();
            test_db
        }
    }
}

/// The database work the endpoint does before its upstream call, without HTTP or upstream.
/// Returns the times of the whole work and of its rate-limit part.
async fn database_work(app: &TestApp, t: &Tenant, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let store = app.store();
    let conv = store
        .create_conversation(
            t.tenant,
            &NewConversation {
                bot_id: t.bot.id,
                origin: SHOP.into(),
                resume_hash: vec![0; 32],
            },
        )
        .await
        .unwrap();
    let (ip_key, conv_key) = (
        "widget-ip:127.0.0.1".to_owned(),
        format!("widget-conv:{}", conv.id),
    );
    let minute = Duration::from_secs(60);
    let (mut times, mut counters) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let start = Instant::now();
        app.state
            .limiter
            .hit_all(&[
                Limit {
                    key: &ip_key,
                    limit: u32::MAX,
                    window: minute,
                },
                Limit {
                    key: &conv_key,
                    limit: u32::MAX,
                    window: minute,
                },
            ])
            .await
            .unwrap();
        counters.push(start.elapsed());
        let turn = store
            .begin_turn(
                t.tenant,
                &NewTurn {
                    bot: t.bot.id,
                    conversation: conv.id,
                    start: None,
                    retry_of: None,
                    content: "hi".into(),
                    provider: Provider::Mistral,
                    context: 40,
                },
            )
            .await
            .unwrap();
        times.push(start.elapsed());
        let TurnStart::Started(turn) = turn else {
            panic!("the turn did not start")
        };
        store
            .finish_message(
                t.tenant,
                turn.answer,
                &FinishedMessage {
                    content: "Hello there, this is a streamed answer.".into(),
                    status: MessageStatus::Complete,
                    usage: TokenUsage::default(),
                },
            )
            .await
            .unwrap();
    }
    (times, counters)
}

async fn run(db: Db, concurrency: usize, rounds: usize) {
    let backend = db;
    let fake = Arc::new(FakeMistral::start().await);
    fake.accept_key(KEY);
    fake.set_reply_chunks(&[
        "Hello",
        " there",
        ", this",
        " is",
        " a",
        " streamed",
        " answer.",
    ]);
    let base = fake.base_url.clone();
    let app = Arc::new(
        spawn_app_on(database(db).await, move |s| {
            s.mistral_base_url = Some(base);
            s.rate_limit_ip_per_minute = Some(u32::MAX);
            s.rate_limit_conversation_per_minute = Some(u32::MAX);
        })
        .await,
    );
    let t = NewTenant::owned_by("bench@example.com")
        .allowed_on(SHOP)
        .with_key(KEY)
        .create(app.store())
        .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .build()
        .unwrap();
    let toks = Arc::new(tokens(&app, &t, concurrency).await);

    // Warm up both paths.
    for _ in 0..20 {
        direct(&client, &fake).await;
        proxied(&client, &app, &toks[0]).await;
    }
    println!("\n{backend:?}: sequential, {rounds} requests each, interleaved");
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        d.push(direct(&client, &fake).await);
        p.push(proxied(&client, &app, &toks[0]).await);
    }
    report_added(d, p);

    let (whole, counters) = database_work(&app, &t, rounds).await;
    report("database work of a turn", whole);
    report("  of which rate limits", counters);

    println!("\n{backend:?}: {concurrency} concurrent streams, each path");
    for label in ["direct from fake", "through parlo"] {
        let mut tasks = Vec::with_capacity(concurrency);
        for i in 0..concurrency {
            let (client, fake, app, toks) =
                (client.clone(), fake.clone(), app.clone(), toks.clone());
            let via_parlo = label == "through parlo";
            tasks.push(tokio::spawn(async move {
                if via_parlo {
                    proxied(&client, &app, &toks[i]).await
                } else {
                    direct(&client, &fake).await
                }
            }));
        }
        let mut times = Vec::with_capacity(concurrency);
        for t in tasks {
            times.push(t.await.unwrap());
        }
        report(label, times);
    }

    // Steady state: `concurrency` answers stream through Parlo at once (the fake sends a
    // chunk every 5 s, so they stay open), and new turns are timed one after another on
    // both paths while they run.
    println!(
        "\n{backend:?}: sequential, {rounds} requests each, while {concurrency} streams are open"
    );
    fake.set_chunk_delay(Duration::from_secs(5));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut held = Vec::with_capacity(concurrency);
    for i in 1..concurrency {
        let (client, app, toks, mut stop) =
            (client.clone(), app.clone(), toks.clone(), stop_rx.clone());
        held.push(tokio::spawn(async move {
            let mut stream = proxied_request(&client, &app, &toks[i])
                .await
                .bytes_stream();
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    chunk = stream.next() => if chunk.is_none() { return },
                }
            }
        }));
    }
    let want = (concurrency - 1) as u64;
    fake.wait_for_streams(Duration::from_secs(120), |s| s.open() >= want)
        .await
        .expect("the held streams did not all open");
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        d.push(
            first_chunk(
                direct_request(&client, &fake).await,
                "\"content\"",
                start,
                Rest::Drop,
            )
            .await,
        );
        let start = Instant::now();
        p.push(
            first_chunk(
                proxied_request(&client, &app, &toks[0]).await,
                "event: delta",
                start,
                Rest::Drop,
            )
            .await,
        );
    }
    report_added(d, p);
    stop_tx.send(true).unwrap();
    for h in held {
        h.await.unwrap();
    }
    fake.set_chunk_delay(Duration::ZERO);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let concurrency: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(500);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(Db::Sqlite, concurrency, rounds).await;
        run(Db::Postgres, concurrency, rounds).await;
        run(Db::PostgresAsyncCommit, concurrency, rounds).await;
    });
}
