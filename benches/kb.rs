//! Prints figures for an on-disk knowledge base at 10,000 chunks: ingest
//! through `kb::store::Writer`, re-ingest of an unchanged tree, opening the
//! knowledge base and its first search, BM25 query latency, and the index's
//! size on disk. A plain `harness = false` bench: run `cargo bench --bench
//! kb`. Under `cargo test` (no `--bench` argument) it is a quick smoke run of
//! the same code paths over a tiny corpus.
//!
//! The corpus is `kb::corpus` (seed `BENCH_SEED`), written into a temporary
//! folder, so a peer benchmark can index exactly the same files and run the
//! same `kb::corpus::queries`. Figures only: nothing here asserts a time;
//! the asserts check that the work measured is the work intended.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use loreweave::kb::KnowledgeBase;
use loreweave::kb::corpus::{self, BENCH_CHUNKS, BENCH_QUERIES, BENCH_SEED};
use loreweave::kb::store::{self, IngestOptions, Input, Summary, Writer};

const NAME: &str = "bench";

fn median<T: Copy + PartialOrd>(mut samples: Vec<T>) -> T {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    samples[samples.len() / 2]
}

/// Open the writer, ingest the corpus folder, close: what `kb add` does.
fn ingest(home: &Path, corpus: &Path) -> (Summary, Duration) {
    let start = Instant::now();
    let mut writer = Writer::open(home, NAME, true).expect("writer");
    let summary = writer
        .ingest(
            &[Input::Path(corpus.to_owned())],
            &IngestOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .expect("ingest");
    writer.close().expect("close");
    (summary, start.elapsed())
}

/// Latency of one pass over the queries, per query.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
struct Pass {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn pass(queries: &[String], search: &dyn Fn(&str) -> usize) -> (Pass, usize) {
    let mut samples = Vec::with_capacity(queries.len());
    let mut hits = 0;
    for query in queries {
        let start = Instant::now();
        hits += black_box(search(query));
        samples.push(start.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).saturating_sub(1)];
    let total: Duration = samples.iter().sum();
    (
        Pass {
            p50: at(0.50),
            p99: at(0.99),
            mean: total / samples.len() as u32,
        },
        hits,
    )
}

/// Medians over `reps` passes of the p50, p99 and mean, and the hits of
/// one pass.
fn latency(reps: usize, queries: &[String], search: &dyn Fn(&str) -> usize) -> (Pass, usize) {
    let mut passes = Vec::with_capacity(reps);
    let mut hits = 0;
    for _ in 0..reps {
        let (p, h) = pass(queries, search);
        passes.push(p);
        hits = h;
    }
    let p50 = median(passes.iter().map(|p| p.p50).collect());
    let p99 = median(passes.iter().map(|p| p.p99).collect());
    let mean = median(passes.iter().map(|p| p.mean).collect());
    (Pass { p50, p99, mean }, hits)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test` this is a smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (target, reps, opens, reingests) = if full {
        (BENCH_CHUNKS, 5, 9, 5)
    } else {
        (150, 1, 2, 1)
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus_dir = tmp.path().join("corpus");
    let home = tmp.path().join("kb");

    let start = Instant::now();
    let stats = corpus::generate(&corpus_dir, BENCH_SEED, target).expect("corpus");
    let generated = start.elapsed();

    // Ingest into an empty knowledge base.
    let (first, ingest_time) = ingest(&home, &corpus_dir);
    assert_eq!(first.added, stats.files, "{}", first.line(NAME));
    assert_eq!(first.chunks_written, stats.chunks);
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);

    // Re-ingest the unchanged tree: read and hash every file, write nothing.
    let again: Vec<Duration> = (0..reingests)
        .map(|_| {
            let (summary, time) = ingest(&home, &corpus_dir);
            assert_eq!(summary.changed(), 0, "{}", summary.line(NAME));
            assert_eq!(summary.unchanged, stats.files);
            time
        })
        .collect();
    let reingest_time = median(again);

    // Open the knowledge base and run a first search, as a fresh process
    // would (the page cache is warm: "cold-ish").
    let queries = corpus::queries(BENCH_SEED, BENCH_QUERIES);
    let mut open_times = Vec::with_capacity(opens);
    let mut first_search_times = Vec::with_capacity(opens);
    for _ in 0..opens {
        let start = Instant::now();
        let kb = store::open(&home, NAME).expect("open");
        let opened = start.elapsed();
        let start = Instant::now();
        black_box(kb.search(&queries[0], 5).expect("search"));
        first_search_times.push(start.elapsed());
        open_times.push(opened);
    }
    let open_time = median(open_times);
    let first_search = median(first_search_times);

    // Query latency over a warm knowledge base.
    let kb: KnowledgeBase = store::open(&home, NAME).expect("open");
    assert_eq!(kb.chunk_count(), stats.chunks);
    assert_eq!(kb.document_count(), stats.files);
    for query in &queries {
        black_box(kb.search(query, 5).expect("search"));
    }
    let (capped, capped_hits) = latency(reps, &queries, &|q| {
        kb.search(q, 5).expect("search").len()
    });
    let (uncapped, uncapped_hits) = latency(reps, &queries, &|q| {
        kb.search_capped(q, 5, usize::MAX).expect("search").len()
    });
    assert!(capped_hits > 0 && uncapped_hits > 0);

    let index_dir = store::base_dir(&home, NAME).join("index");
    let on_disk = store::disk_usage(&store::base_dir(&home, NAME));
    let segments = tantivy::Index::open_in_dir(&index_dir)
        .and_then(|index| index.searchable_segment_ids())
        .map(|ids| ids.len())
        .unwrap_or(0);

    let secs = ingest_time.as_secs_f64();
    println!(
        "kb bench ({}): corpus seed {BENCH_SEED:#x}, {} queries",
        if full { "full" } else { "smoke" },
        queries.len()
    );
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| corpus | {} files in {} folders, {:.1} MB, {} words, {} chunks (generated in {}) |",
        stats.files,
        stats.dirs,
        mb(stats.bytes),
        stats.words,
        stats.chunks,
        ms(generated)
    );
    println!(
        "| ingest into an empty knowledge base | {}: {:.1} MB/s, {:.0} files/s, {:.0} chunks/s |",
        ms(ingest_time),
        mb(stats.bytes) / secs,
        stats.files as f64 / secs,
        stats.chunks as f64 / secs
    );
    println!(
        "| re-ingest, unchanged tree (0 changed) | {} |",
        ms(reingest_time)
    );
    println!("| open the knowledge base | {} |", ms(open_time));
    println!("| first search after open | {} |", ms(first_search));
    println!(
        "| search, top 5 (at most 3 chunks per document) | p50 {}, p99 {}, mean {} |",
        us(capped.p50),
        us(capped.p99),
        us(capped.mean)
    );
    println!(
        "| search, top 5, no per-document cap | p50 {}, p99 {}, mean {} |",
        us(uncapped.p50),
        us(uncapped.p99),
        us(uncapped.mean)
    );
    println!(
        "| index on disk | {:.1} MB ({:.2}x the corpus), {segments} segment(s) |",
        mb(on_disk),
        on_disk as f64 / stats.bytes as f64
    );
}
