//! Retrieval for a bot with N chunks (default 100,000) on both backends, as the chat turn
//! runs it: full-text search in the database, the bot's vector index (cached per process,
//! checked against its libraries' revision), brute-force search over mistral-embed-sized
//! int8 vectors, RRF and reading the hits. The question is embedded by the fake upstream
//! (loopback), which is part of the time. Run with
//! `cargo bench -p parlo-tests --bench knowledge_retrieval [-- <chunks> <queries>]`.

use std::time::{Duration, Instant};

use parlo::knowledge::retrieve;
use parlo::knowledge::vector::{StoredVector, VectorFormat, pseudo_random_unit};
use parlo::model::{Embedding, KnowledgeLimits, NewChunk};
use parlo_tests::fake_mistral::{EMBED_DIM, FakeMistral};
use parlo_tests::fixture::NewTenant;
use parlo_tests::knowledge::{file, library_for};
use parlo_tests::{Backend, test_store};
use secrecy::SecretString;

const KEY: &str = "bench-key-0123456789abcdef";
const WORDS: &[&str] = &[
    "invoice", "shipping", "return", "widget", "account", "password", "delivery", "refund",
    "warranty", "install", "update", "billing", "plan", "export", "import", "language",
];

fn vector(seed: u64) -> Vec<f32> {
    pseudo_random_unit(seed, EMBED_DIM)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(backend: Backend, chunks: usize, queries: usize, fake: &FakeMistral) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let t = NewTenant::owned_by("bench@a.example").create(store).await;
    let lib = library_for(store, t.tenant, t.bot.id, "Bench").await;
    let limits = KnowledgeLimits {
        max_documents: 1_000_000,
        max_bytes: u64::MAX / 2,
        max_chunks: 10_000_000,
    };
    let started = Instant::now();
    let per_source = 1000;
    for s in 0..chunks.div_ceil(per_source) {
        let source = store
            .add_source(t.tenant, &file(lib.id, &format!("{s}.md"), b"x"), &limits)
            .await
            .unwrap();
        let batch: Vec<NewChunk> = (0..per_source.min(chunks - s * per_source))
            .map(|i| {
                let n = (s * per_source + i) as u64;
                let v = StoredVector::encode("mistral-embed", &vector(n), VectorFormat::DEFAULT)
                    .unwrap();
                let w = |k: u64| WORDS[((n * 7 + k * 13) % WORDS.len() as u64) as usize];
                NewChunk {
                    ordinal: i as u32,
                    heading_path: vec![format!("Section {n}")],
                    page: None,
                    url: None,
                    text: format!(
                        "Passage {n} about {} and {} with the {} of the {} for customers.",
                        w(1),
                        w(2),
                        w(3),
                        w(4)
                    ),
                    hash: format!("{n:064x}"),
                    embedding: Some(Embedding {
                        model: v.model,
                        dim: v.dim as u32,
                        bytes: v.bytes,
                    }),
                }
            })
            .collect();
        store
            .replace_chunks(t.tenant, source.id, lib.id, &[0; 32], 1, 1, &batch, &limits)
            .await
            .unwrap();
    }
    let load = started.elapsed();
    let mistral = parlo::mistral::MistralClient::new(
        fake.base_url.clone(),
        parlo::mistral::Timeouts::default(),
    );
    let key = SecretString::from(KEY);
    let ask = |i: usize| {
        format!(
            "How do I get a {} for my {}?",
            WORDS[i % WORDS.len()],
            WORDS[(i * 5 + 3) % WORDS.len()]
        )
    };
    // The first question builds the process's index of the bot.
    let first = Instant::now();
    retrieve::retrieve(store, &mistral, Some(&key), t.tenant, t.bot.id, &ask(0), 6)
        .await
        .unwrap();
    let cold = first.elapsed();
    let mut times = Vec::with_capacity(queries);
    for i in 0..queries {
        let q = ask(i + 1);
        let at = Instant::now();
        let r = retrieve::retrieve(store, &mistral, Some(&key), t.tenant, t.bot.id, &q, 6)
            .await
            .unwrap();
        times.push(at.elapsed());
        assert!(r.used_vectors && !r.hits.is_empty());
    }
    times.sort();
    println!(
        "{backend:?}: {chunks} chunks (stored in {:.1} s); first question {:.0} ms; \
         then p50 {:.1} ms, p99 {:.1} ms over {queries} questions",
        load.as_secs_f64(),
        cold.as_secs_f64() * 1000.0,
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let chunks = args.first().copied().unwrap_or(100_000);
    let queries = args.get(1).copied().unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fake = FakeMistral::start().await;
        fake.accept_key(KEY);
        for backend in [Backend::Sqlite, Backend::Postgres] {
            run(backend, chunks, queries, &fake).await;
        }
    });
}
