//! loreweave's side of the benchmarks against peers (`scripts/bench-peers`,
//! `scripts/bench-startup`). A plain `harness = false` bench with two jobs,
//! each writing files the scripts hand to the peer and compare:
//!
//! - `kb DIR [--chunks N] [--passes P]`: writes the knowledge-base corpus
//!   (`loreweave::kb::corpus`, same seed as `benches/kb.rs`) to `DIR/corpus`,
//!   ingests it into a fresh on-disk knowledge base (timed), then writes
//!   every chunk as the peer should index it (`DIR/chunks.jsonl`: id and
//!   body), the queries
//!   (`DIR/queries.json`) and loreweave's figures with each query's top hit
//!   (`DIR/loreweave.json`). The compared search is `search_body`: BM25
//!   over chunk bodies, no per-document cap, so both sides rank the same
//!   units the same way; the app's search (title, heading and body
//!   fields, with and without its cap) is timed too.
//! - `session DB N`: a session database with N messages (every other one an
//!   answer citing five passages), whose last answer ends with the word
//!   `SESSION_MARKER`, for the start-up bench to wait for.
//!
//! Under `cargo test --all-targets` (no arguments) both run as a smoke pass
//! at tiny sizes in a temporary folder.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use loreweave::kb::corpus::{self, BENCH_CHUNKS, BENCH_QUERIES, BENCH_SEED};
use loreweave::kb::store::{self, IngestOptions, Input, Writer};
use loreweave::store::Db;

mod common;

/// The last word of the last answer in a `session` database.
const SESSION_MARKER: &str = "ledgerclosed";

/// How many hits each search asks for (what the app asks for).
const TOP_K: usize = 5;

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((q * sorted.len() as f64).ceil() as usize).saturating_sub(1)]
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Each query's median over `passes`, then the p50 and p99 of those.
fn latency(passes: usize, queries: &[String], search: &dyn Fn(&str)) -> (Duration, Duration) {
    let mut per_query: Vec<Vec<Duration>> = vec![Vec::with_capacity(passes); queries.len()];
    for _ in 0..passes {
        for (samples, query) in per_query.iter_mut().zip(queries) {
            let start = Instant::now();
            search(query);
            samples.push(start.elapsed());
        }
    }
    let mut medians: Vec<Duration> = per_query.into_iter().map(median).collect();
    medians.sort();
    (quantile(&medians, 0.50), quantile(&medians, 0.99))
}

fn kb(dir: &Path, chunks: usize, passes: usize) -> anyhow::Result<()> {
    let corpus_dir = dir.join("corpus");
    let home = dir.join("kb");
    let _ = std::fs::remove_dir_all(&corpus_dir);
    let _ = std::fs::remove_dir_all(&home);
    let stats = corpus::generate(&corpus_dir, BENCH_SEED, chunks)?;

    let start = Instant::now();
    let mut writer = Writer::open(&home, "peers", true)?;
    let summary = writer.ingest(
        &[Input::Path(corpus_dir.clone())],
        &IngestOptions::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )?;
    writer.close()?;
    let index_time = start.elapsed();
    anyhow::ensure!(
        summary.chunks_written == stats.chunks,
        "ingested {} chunks of {}",
        summary.chunks_written,
        stats.chunks
    );

    let kb = store::open(&home, "peers")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("chunks.jsonl"))?);
    for passage in kb.passages()? {
        // The body: what `search_body` ranks (title and heading are fields
        // of their own in loreweave, with their own statistics and a title
        // boost, which a one-field retriever cannot rank alike).
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({"id": passage.id, "content": passage.text}),
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()?;

    let queries = corpus::queries(BENCH_SEED, BENCH_QUERIES);
    std::fs::write(dir.join("queries.json"), serde_json::to_vec(&queries)?)?;

    let first = Instant::now();
    kb.search(&queries[0], TOP_K)?;
    let first_search = first.elapsed();
    let mut top = Vec::with_capacity(queries.len());
    for query in &queries {
        let hits = kb.search_body(query, TOP_K)?;
        top.push(hits.first().map(|p| p.id.clone()));
    }
    let (p50, p99) = latency(passes, &queries, &|q| {
        black_box(kb.search_body(q, TOP_K).map(|h| h.len()).ok());
    });
    let (uncapped_p50, uncapped_p99) = latency(passes, &queries, &|q| {
        black_box(kb.search_capped(q, TOP_K, usize::MAX).map(|h| h.len()).ok());
    });
    let (capped_p50, capped_p99) = latency(passes, &queries, &|q| {
        black_box(kb.search(q, TOP_K).map(|h| h.len()).ok());
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let figures = serde_json::json!({
        "files": stats.files,
        "chunks": stats.chunks,
        "bytes": stats.bytes,
        "index_ms": ms(index_time),
        "first_search_ms": ms(first_search),
        "passes": passes,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "uncapped_p50_ms": ms(uncapped_p50),
        "uncapped_p99_ms": ms(uncapped_p99),
        "capped_p50_ms": ms(capped_p50),
        "capped_p99_ms": ms(capped_p99),
        "top": top,
    });
    std::fs::write(dir.join("loreweave.json"), serde_json::to_vec(&figures)?)?;
    Ok(())
}

/// A session of `messages` messages in a new database at `path`. One
/// transaction per message (as the app commits them): ~1.5 ms each.
fn session(path: &Path, messages: usize) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut db = Db::open(path)?.db;
    let session = db.create_session("long")?;
    common::fill_session(&mut db, session.id, messages, Some(SESSION_MARKER))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` adds --bench; flags are `--name value`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    match args.first().map(String::as_str) {
        Some("kb") => {
            let dir = args.get(1).ok_or_else(|| anyhow::anyhow!("kb DIR"))?;
            kb(
                Path::new(dir),
                flag("--chunks").unwrap_or(BENCH_CHUNKS),
                flag("--passes").unwrap_or(9),
            )
        }
        Some("session") => {
            let (Some(db), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse().ok()))
            else {
                anyhow::bail!("session DB MESSAGES");
            };
            session(Path::new(db), n)
        }
        // The session's database as the TUI leaves it at its exit on a
        // terminal of COLS x ROWS: with the copy of the next first screen.
        Some("screen-copy") => {
            let (Some(db), Some(cols), Some(rows)) = (
                args.get(1),
                args.get(2).and_then(|n| n.parse().ok()),
                args.get(3).and_then(|n| n.parse().ok()),
            ) else {
                anyhow::bail!("screen-copy DB COLS ROWS");
            };
            let size = ratatui::layout::Size::new(cols, rows);
            loreweave::tui::sessions::leave_with_copy(Path::new(db), size)
                .map_err(|why| anyhow::anyhow!("screen-copy: {why}"))
        }
        Some(other) => anyhow::bail!(
            "unknown job {other:?}: kb DIR | session DB MESSAGES | screen-copy DB COLS ROWS"
        ),
        None => {
            // The smoke pass under `cargo test`.
            let tmp = tempfile::tempdir()?;
            kb(tmp.path(), 150, 1)?;
            let figures: serde_json::Value =
                serde_json::from_slice(&std::fs::read(tmp.path().join("loreweave.json"))?)?;
            anyhow::ensure!(figures["top"].as_array().map(Vec::len) == Some(BENCH_QUERIES));
            session(&tmp.path().join("sessions.db"), 10)?;
            println!("peers bench: smoke pass ok");
            Ok(())
        }
    }
}
