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

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
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

/// Query latency: the percentiles across queries of each query's median
/// over the passes (a query's own cost, without the scheduler's noise), and
/// the p99 of every sample (with it).
struct Latency {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    p99_all: Duration,
    /// Passages returned over one pass.
    hits: usize,
}

/// The `q`-quantile of sorted samples (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((q * sorted.len() as f64).ceil() as usize).saturating_sub(1)]
}

fn latency(passes: usize, queries: &[String], search: &dyn Fn(&str) -> usize) -> Latency {
    let mut per_query: Vec<Vec<Duration>> = vec![Vec::with_capacity(passes); queries.len()];
    let mut hits = 0;
    for _ in 0..passes {
        hits = 0;
        for (samples, query) in per_query.iter_mut().zip(queries) {
            let start = Instant::now();
            hits += black_box(search(query));
            samples.push(start.elapsed());
        }
    }
    let mut all: Vec<Duration> = per_query.iter().flatten().copied().collect();
    all.sort();
    let mut medians: Vec<Duration> = per_query.into_iter().map(median).collect();
    medians.sort();
    let total: Duration = medians.iter().sum();
    Latency {
        p50: quantile(&medians, 0.50),
        p99: quantile(&medians, 0.99),
        mean: total / medians.len() as u32,
        p99_all: quantile(&all, 0.99),
        hits,
    }
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
    let (target, passes, opens, reingests) = if full {
        (BENCH_CHUNKS, 9, 9, 5)
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

    // Re-ingest the unchanged tree: read and hash every file, parse and
    // index none (the root's record is still rewritten and committed).
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
    let capped = latency(passes, &queries, &|q| {
        kb.search(q, 5).expect("search").len()
    });
    let uncapped = latency(passes, &queries, &|q| {
        kb.search_capped(q, 5, usize::MAX).expect("search").len()
    });
    assert!(capped.hits > 0 && uncapped.hits > 0);

    let index_dir = store::base_dir(&home, NAME).join("index");
    let on_disk = store::disk_usage(&store::base_dir(&home, NAME));
    let segments = tantivy::Index::open_in_dir(&index_dir)
        .and_then(|index| index.searchable_segment_ids())
        .map(|ids| ids.len())
        .unwrap_or(0);

    let secs = ingest_time.as_secs_f64();
    // Other work on the machine shows in the figures: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "kb bench ({}): corpus seed {BENCH_SEED:#x}, {} queries x {passes} passes; {cores} cores, load average {load}",
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
    for (what, l) in [
        ("search, top 5 (at most 3 chunks per document)", &capped),
        ("search, top 5, no per-document cap", &uncapped),
    ] {
        println!(
            "| {what} | p50 {}, p99 {}, mean {} (p99 of all samples {}); {:.1} passages per query |",
            us(l.p50),
            us(l.p99),
            us(l.mean),
            us(l.p99_all),
            l.hits as f64 / queries.len() as f64
        );
    }
    println!(
        "| index on disk | {:.1} MB ({:.2}x the corpus), {segments} segment(s) |",
        mb(on_disk),
        on_disk as f64 / stats.bytes as f64
    );
}
