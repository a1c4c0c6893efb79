//! Memory of the streamed chat-log export (BENCHMARKS.md, "Chat-log export memory").
//!
//! `cargo run -p parlo-tests --example bench_log_export -- [sqlite|postgres] [MESSAGES...]`
//!
//! For each size (default 10,000 and 100,000 messages: 10 per conversation, ~90 bytes
//! each), seeds a fresh workspace with raw SQL, resets the process's peak RSS
//! (`/proc/self/clear_refs` = 5), streams the whole export as CSV and as JSON through
//! `parlo::site::log_export::export_stream` (the same stream the HTTP handler sends, pages of
//! `EXPORT_PAGE` messages), counting and discarding the bytes as a client would, and prints
//! the peak RSS (VmHWM) against the RSS before the export. A bounded export shows the same
//! growth at both sizes.
//!
//! With `INBOX=100000` (conversations; 2 messages each, all answered, all active in the
//! same millisecond: the worst case for the keyset's tie-break), it then times the inbox:
//! the first page, every page walked by keyset to the end, a word search, and the
//! "unanswered" filter (which finds nothing, so it reads every conversation).
//! Not part of the test suite (`test = false`).

use std::time::Instant;

use futures_util::StreamExt;
use parlo::model::*;
use parlo::site::log_export::{EXPORT_PAGE, export_stream};
use parlo::storage::Store;
use parlo_tests::fixture::NewTenant;
use parlo_tests::lifecycle::{RawDb, seed_old_messages};
use parlo_tests::{Backend, test_store};

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let backend = match args.next().as_deref() {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let mut sizes: Vec<i64> = args.filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000];
    }
    println!("backend {backend:?}, page {EXPORT_PAGE} messages");
    println!("| messages | format | bytes | seconds | RSS before | peak RSS | growth |");
    for (i, messages) in sizes.into_iter().enumerate() {
        let db = test_store(backend).await;
        let store = db.store.clone();
        let tenant = NewTenant::owned_by(&format!("export{i}@shop.example"))
            .create(&store)
            .await;
        let raw = RawDb::of(&db.db).await;
        seed_old_messages(
            &raw,
            tenant.tenant,
            tenant.bot.id,
            messages / 10,
            10,
            Timestamp::now().0,
        )
        .await;
        raw.close().await;
        for csv in [true, false] {
            std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS");
            let before = status_kib("VmRSS:");
            let started = Instant::now();
            let mut bytes = 0usize;
            let mut stream = std::pin::pin!(export_stream(
                store.clone(),
                tenant.tenant,
                csv,
                EXPORT_PAGE
            ));
            while let Some(chunk) = stream.next().await {
                bytes += chunk.unwrap().len();
            }
            let peak = status_kib("VmHWM:");
            println!(
                "| {messages} | {} | {bytes} | {:.2} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
                if csv { "CSV" } else { "JSON" },
                started.elapsed().as_secs_f64(),
                before as f64 / 1024.0,
                peak as f64 / 1024.0,
                peak.saturating_sub(before) as f64 / 1024.0,
            );
        }
    }
    let inbox: i64 = std::env::var("INBOX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if inbox > 0 {
        bench_inbox(backend, inbox).await;
    }
}

async fn timed(store: &Store, t: TenantId, q: &InboxQuery) -> (f64, Vec<InboxEntry>) {
    let started = Instant::now();
    let rows = store.inbox(t, q).await.unwrap();
    (started.elapsed().as_secs_f64() * 1000.0, rows)
}

async fn bench_inbox(backend: Backend, conversations: i64) {
    let db = test_store(backend).await;
    let store = db.store.clone();
    let tenant = NewTenant::owned_by("inbox@shop.example")
        .create(&store)
        .await;
    let t = tenant.tenant;
    let raw = RawDb::of(&db.db).await;
    seed_old_messages(&raw, t, tenant.bot.id, conversations, 2, Timestamp::now().0).await;
    raw.close().await;
    let page = |after| InboxQuery {
        after,
        limit: 50,
        ..InboxQuery::default()
    };
    let (first, _) = timed(&store, t, &page(None)).await;
    let mut after = None;
    let (mut pages, mut total, mut slowest, mut rows) = (0, 0.0f64, 0.0f64, 0);
    loop {
        let (ms, got) = timed(&store, t, &page(after)).await;
        pages += 1;
        total += ms;
        slowest = slowest.max(ms);
        rows += got.len();
        match got.last() {
            Some(e) if got.len() == 50 => {
                after = Some((e.conversation.last_activity_at, e.conversation.id))
            }
            _ => break,
        }
    }
    let (search, found) = timed(
        &store,
        t,
        &InboxQuery {
            words: Some("shipping".into()),
            ..page(None)
        },
    )
    .await;
    let (unanswered, none) = timed(
        &store,
        t,
        &InboxQuery {
            unanswered: true,
            ..page(None)
        },
    )
    .await;
    println!("inbox, {conversations} conversations, pages of 50:");
    println!(
        "| first page | every page: count, mean, slowest | rows | search (first page) | unanswered (no match) |"
    );
    println!(
        "| {first:.1} ms | {pages}, {:.1} ms, {slowest:.1} ms | {rows} | {search:.1} ms ({} rows) | {unanswered:.1} ms ({} rows) |",
        total / f64::from(pages),
        found.len(),
        none.len()
    );
}
