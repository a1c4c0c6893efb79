//! Time to first token through Parlo vs. straight from the fake upstream, in one run, on
//! loopback: sequentially and with N concurrent streams. Run with
//! `cargo bench -p parlo-tests --bench chat_proxy` (optionally `-- <concurrency> <rounds>`).
//!
//! Both paths stream the same reply from the same fake; "direct" is a client reading the
//! fake's SSE itself, "proxy" is the widget endpoint (token check, rate limits, the stored
//! user message, the pending answer, decrypting the key, the upstream call, re-framing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::{Backend, TestApp, seal_key, spawn_app_with, tenant_with_bot};
use serde_json::json;

const SHOP: &str = "https://shop.example";
const KEY: &str = "bench-key-0123456789abcdef";

async fn first_chunk_after(resp: reqwest::Response, marker: &str, start: Instant) -> Duration {
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream")));
        if seen.contains(marker) {
            let t = start.elapsed();
            // Drain so the connection ends cleanly.
            while stream.next().await.is_some() {}
            return t;
        }
    }
    panic!("no first token in: {seen}");
}

async fn direct(client: &reqwest::Client, fake: &FakeMistral) -> Duration {
    let start = Instant::now();
    let resp = client
        .post(fake.base_url.join("v1/chat/completions").unwrap())
        .bearer_auth(KEY)
        .json(&json!({"model": "mistral-small-latest", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    first_chunk_after(resp, "\"content\"", start).await
}

async fn proxied(client: &reqwest::Client, app: &TestApp, token: &str) -> Duration {
    let start = Instant::now();
    let resp = client
        .post(app.url("/api/widget/v1/messages"))
        .header("origin", SHOP)
        .bearer_auth(token)
        .json(&json!({"content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    first_chunk_after(resp, "event: delta", start).await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
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

async fn tokens(app: &TestApp, bot: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, s, _) = app.start_session(SHOP, bot, None).await;
        assert_eq!(status, 200);
        out.push(s["token"].as_str().unwrap().to_owned());
    }
    out
}

async fn run(backend: Backend, concurrency: usize, rounds: usize) {
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
        spawn_app_with(backend, move |s| {
            s.mistral_base_url = Some(base);
            s.rate_limit_ip_per_minute = Some(u32::MAX);
            s.rate_limit_conversation_per_minute = Some(u32::MAX);
        })
        .await,
    );
    let t = tenant_with_bot(app.store(), "bench@example.com", SHOP).await;
    app.store()
        .put_provider_key(t.tenant, &seal_key(&app, t.tenant, KEY))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .build()
        .unwrap();
    let toks = Arc::new(tokens(&app, &t.bot.public_id, concurrency).await);

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
    let (d50, d99) = report("direct from fake", d);
    let (p50, p99) = report("through parlo", p);
    println!(
        "{:<28} p50=+{:.3} ms  p99=+{:.3} ms",
        "added by parlo",
        (p50.as_secs_f64() - d50.as_secs_f64()) * 1e3,
        (p99.as_secs_f64() - d99.as_secs_f64()) * 1e3
    );

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
        run(Backend::Sqlite, concurrency, rounds).await;
        run(Backend::Postgres, concurrency, rounds).await;
    });
}
