//! Benchmark for docs/bench-lifecycle.md: the retention purge rate on a million messages and
//! the widget API's latency with and without the purge running, in one run.
//!
//! `cargo run --release -p parlo-tests --example bench_lifecycle -- [sqlite|postgres] [MESSAGES]`
//!
//! Seeds MESSAGES old messages (10 per conversation; ids time-ordered like the UUIDv7 the
//! application writes) into one workspace whose bot keeps 30
//! days, starts the real application on the harness, and drives a second workspace's widget
//! with WORKERS concurrent clients alternating `POST /api/widget/v1/session` (a write: a new
//! conversation) and `GET /api/widget/v1/messages` (a read). Phase 1 measures without the
//! purge for PHASE_SECS; phase 2 measures while retention deletes everything old.
//! Tuning: WORKERS (8), PHASE_SECS (20), BATCH_ROWS (1000), PAUSE_MS (5).
//! Not part of the test suite (`test = false`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parlo::lifecycle::retention::{self, RetentionOptions, RetentionOutcome};
use parlo::model::*;
use parlo_tests::fixture::NewTenant;
use parlo_tests::lifecycle::{RawDb, seed_old_messages as seed};
use parlo_tests::{Backend, spawn_app_with};

const SHOP: &str = "https://shop.example";
const DAY: i64 = 86_400_000;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Samples {
    session: Vec<Duration>,
    history: Vec<Duration>,
    errors: u64,
}

impl Samples {
    fn merge(&mut self, o: Samples) {
        self.session.extend(o.session);
        self.history.extend(o.history);
        self.errors += o.errors;
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

fn row(label: &str, v: &mut [Duration], secs: f64) {
    println!(
        "| {label} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        v.len(),
        v.len() as f64 / secs,
        pct(v, 0.50),
        pct(v, 0.99),
        pct(v, 0.999),
        pct(v, 1.0)
    );
}

/// Workers alternate a session start and a history read until `stop`.
async fn load(base: String, bot: String, workers: usize, stop: Arc<AtomicBool>) -> Samples {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, base, bot, stop) = (client.clone(), base.clone(), bot.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/widget/v1/session"))
                    .header("origin", SHOP)
                    .json(&serde_json::json!({ "bot": bot }))
                    .send()
                    .await;
                let token = match r {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        s.session.push(t.elapsed());
                        v["token"].as_str().unwrap().to_owned()
                    }
                    _ => {
                        s.errors += 1;
                        continue;
                    }
                };
                let t = Instant::now();
                let r = client
                    .get(format!("{base}/api/widget/v1/messages"))
                    .header("origin", SHOP)
                    .bearer_auth(&token)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        s.history.push(t.elapsed());
                    }
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        all.merge(t.await.unwrap());
    }
    all
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let backend = match args.next().as_deref() {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let messages: i64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per: i64 = 10;
    let workers: usize = env("WORKERS", 8);
    let phase = Duration::from_secs(env("PHASE_SECS", 20));
    let batch_rows: u32 = env("BATCH_ROWS", 1000);
    let pause = Duration::from_millis(env("PAUSE_MS", 5));

    let app = spawn_app_with(backend, |s| {
        s.rate_limit_ip_per_minute = Some(u32::MAX);
        s.log = Some("warn".into());
    })
    .await;
    let store = app.store().clone();
    let live = NewTenant::owned_by("live@shop.example")
        .allowed_on(SHOP)
        .create(&store)
        .await;
    let old = NewTenant::owned_by("old@old.example")
        .workspace("Old")
        .bot(BotInput {
            name: "Old".into(),
            retention_days: Some(30),
            ..BotInput::default()
        })
        .create(&store)
        .await;
    let (old, old_bot) = (old.tenant, old.bot);
    let raw = RawDb::of(&app.db).await;
    let started = Instant::now();
    let now = Timestamp::now();
    seed(&raw, old, old_bot.id, messages / per, per, now.0 - 60 * DAY).await;
    let seeded = (
        raw.count("messages").await,
        raw.count("conversations").await,
        raw.count("attachments").await,
    );
    eprintln!(
        "seeded {seeded:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Phase 1: load without the purge.
    let stop = Arc::new(AtomicBool::new(false));
    let runner = tokio::spawn(load(
        app.base.clone(),
        live.bot.public_id.clone(),
        workers,
        stop.clone(),
    ));
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    let mut base = runner.await.unwrap();

    // Phase 2: the same load while retention deletes the old workspace's chats.
    let stop = Arc::new(AtomicBool::new(false));
    let runner = tokio::spawn(load(
        app.base.clone(),
        live.bot.public_id.clone(),
        workers,
        stop.clone(),
    ));
    let t = Instant::now();
    let outcome = retention::run(&store, now, RetentionOptions { batch_rows, pause })
        .await
        .unwrap();
    let purge_secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut during = runner.await.unwrap();
    let RetentionOutcome::Ran(r) = outcome else {
        panic!("lock taken")
    };
    assert_eq!(
        raw.count("messages").await,
        0,
        "the widget load writes no messages"
    );

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "backend: {backend:?}; cpu: {cpu}; workers: {workers}; batch_rows: {batch_rows}; pause_ms: {}",
        pause.as_millis()
    );
    println!(
        "seeded: {} messages, {} conversations, {} attachments",
        seeded.0, seeded.1, seeded.2
    );
    println!(
        "purge: {} messages + {} conversations + {} attachments = {} rows in {purge_secs:.1} s, {} transactions: {:.0} rows/s ({:.0} messages/s)",
        r.deleted.messages,
        r.deleted.conversations,
        r.deleted.attachments,
        r.deleted.total(),
        r.transactions,
        r.deleted.total() as f64 / purge_secs,
        r.deleted.messages as f64 / purge_secs
    );
    println!();
    println!("| phase, request | requests | req/s | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    let base_secs = phase.as_secs_f64();
    let during_secs = purge_secs;
    row("no purge, POST session", &mut base.session, base_secs);
    row("no purge, GET messages", &mut base.history, base_secs);
    row(
        "during purge, POST session",
        &mut during.session,
        during_secs,
    );
    row(
        "during purge, GET messages",
        &mut during.history,
        during_secs,
    );
    println!(
        "errors: {} without, {} during the purge",
        base.errors, during.errors
    );
    raw.close().await;
    app.stop().await;
}
