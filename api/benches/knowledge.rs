//! Knowledge retrieval and ingestion costs that do not depend on a database or upstream:
//! brute-force vector search over N int8 vectors of mistral-embed's dimension, and the
//! extract → chunk → local-embed pipeline on the evaluation corpus.
//!
//! `cargo bench -p parlo --bench knowledge -- [vectors] [queries]` (defaults 100000 200).

use std::time::{Duration, Instant};

use parlo::knowledge::chunk::{ChunkConfig, chunk_document};
use parlo::knowledge::embed::LocalEmbedder;
use parlo::knowledge::extract::{Extracted, ZipLimits, extract};
use parlo::knowledge::rank::{BruteForceIndex, VectorSearch};
use parlo::knowledge::vector::{StoredVector, VectorFormat, pseudo_random_unit};

const DIM: usize = 1024;

/// Deterministic pseudo-random unit vectors: the same data every run.
fn vector(seed: u64) -> Vec<f32> {
    pseudo_random_unit(seed, DIM)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let vectors = args.first().copied().unwrap_or(100_000);
    let queries = args.get(1).copied().unwrap_or(200);

    let mut index = BruteForceIndex::new("mistral-embed", DIM);
    let started = Instant::now();
    for i in 0..vectors {
        let stored = StoredVector::encode("mistral-embed", &vector(i as u64), VectorFormat::I8)
            .expect("finite");
        index.push(i, &stored).expect("same model");
    }
    println!(
        "index: {vectors} vectors x {DIM} dims int8 ({} MiB) built in {:?}",
        vectors * (DIM + 4) / (1024 * 1024),
        started.elapsed()
    );
    let mut times = Vec::with_capacity(queries);
    for q in 0..queries {
        let query = vector(1_000_000_007 + q as u64);
        let started = Instant::now();
        let hits = index.search(&query, 10).expect("dimension");
        times.push(started.elapsed());
        assert_eq!(hits.len(), 10.min(vectors));
    }
    times.sort();
    println!(
        "search top-10: p50 {:?}, p99 {:?}, max {:?} ({queries} queries)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );

    // Ingestion without upstream time: extract, chunk and embed locally, 20 passes.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/knowledge/eval/corpus");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(root).expect("corpus") {
        for file in std::fs::read_dir(dir.expect("dir").path()).expect("dir") {
            let path = file.expect("file").path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(std::fs::read(path).expect("read"));
            }
        }
    }
    let bytes: usize = files.iter().map(Vec::len).sum();
    let embedder = LocalEmbedder::default();
    let passes = 20;
    let (mut chunks, mut extract_chunk, mut embed) = (0, Duration::ZERO, Duration::ZERO);
    for _ in 0..passes {
        for file in &files {
            let started = Instant::now();
            let Ok(Extracted::Text(document)) = extract(file, &ZipLimits::default()) else {
                panic!("corpus file did not extract");
            };
            let pieces = chunk_document(&document, &ChunkConfig::default());
            extract_chunk += started.elapsed();
            let started = Instant::now();
            for chunk in &pieces {
                std::hint::black_box(embedder.embed(&chunk.embedding_input()));
            }
            embed += started.elapsed();
            chunks += pieces.len();
        }
    }
    let mib = (bytes * passes) as f64 / (1024.0 * 1024.0);
    println!(
        "ingestion: {chunks} chunks from {mib:.1} MiB; extract+chunk {:.1} MiB/s ({:.0} chunks/s), local embedding {:.0} chunks/s",
        mib / extract_chunk.as_secs_f64(),
        chunks as f64 / extract_chunk.as_secs_f64(),
        chunks as f64 / embed.as_secs_f64()
    );
}
