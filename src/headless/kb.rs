//! `loreweave kb ...`: knowledge-base commands for people and scripts.
//! Human output is plain lines (a progress bar only on a terminal, ANSI
//! highlighting only on a terminal); `--json` prints JSON Lines. Every
//! untrusted string (file names, titles, document text, server errors) is
//! sanitised before it is printed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::cli::KbCmd;
use crate::kb::fetch::PageFetcher;
use crate::kb::loaders::LoadOptions;
use crate::kb::store::{self, IngestOptions, Input, StoreError, Summary, Writer};
use crate::kb::{DocRecord, KnowledgeBase};
use crate::sanitize::one_line;

/// Which knowledge base a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The built-in sample lore (read-only).
    Sample,
    /// A knowledge base on disk.
    Disk(String),
}

impl Selection {
    pub fn name(&self) -> &str {
        match self {
            Selection::Sample => store::SAMPLE,
            Selection::Disk(name) => name,
        }
    }
}

/// Resolve the knowledge base a read uses: `sample` when named, or when the
/// default is asked for while it does not exist or is empty; an existing
/// base by name; otherwise an error with a "did you mean".
pub fn select(home: &Path, name: &str) -> Result<Selection, StoreError> {
    store::check_name(name)?;
    if name == store::SAMPLE {
        return Ok(Selection::Sample);
    }
    if name == store::DEFAULT {
        let empty = !store::exists(home, name)
            || store::open(home, name).map_or(true, |kb| kb.document_count() == 0);
        return Ok(if empty {
            Selection::Sample
        } else {
            Selection::Disk(name.to_owned())
        });
    }
    if store::exists(home, name) {
        Ok(Selection::Disk(name.to_owned()))
    } else {
        store::open(home, name).map(|_| Selection::Disk(name.to_owned()))
    }
}

/// Open a selection for reading.
pub fn open_selection(home: &Path, selection: &Selection) -> anyhow::Result<KnowledgeBase> {
    match selection {
        Selection::Sample => {
            Ok(KnowledgeBase::build(crate::kb::embedded_lore())?.named(store::SAMPLE))
        }
        Selection::Disk(name) => Ok(store::open(home, name)?.named(name)),
    }
}

/// What the kb commands need from the config and flags.
#[derive(Debug, Clone)]
pub struct KbContext {
    pub home: PathBuf,
    pub name: String,
    pub max_file_size: u64,
    pub fetch_timeout: Duration,
    pub max_fetch_size: u64,
    /// The embeddings backend, when one is configured (hybrid retrieval).
    pub embeddings: Option<Embeddings>,
}

/// What embedding chunks needs.
#[derive(Clone)]
pub struct Embeddings {
    /// `provider:model`: the key chunk vectors are kept under.
    pub model: String,
    pub embedder: Arc<dyn crate::backends::Embedder>,
    pub batch_size: usize,
}

impl std::fmt::Debug for Embeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embeddings")
            .field("model", &self.model)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// Every root of the knowledge base as an input again (`kb sync`,
/// `kb rebuild`): folders and files as paths, URLs fetched anew.
fn fetcher(ctx: &KbContext) -> anyhow::Result<PageFetcher> {
    PageFetcher::new(ctx.fetch_timeout, ctx.max_fetch_size).map_err(anyhow::Error::msg)
}

async fn root_inputs(ctx: &KbContext) -> anyhow::Result<Vec<Input>> {
    let kb = store::open(&ctx.home, writable(&ctx.name)?)?;
    let fetcher = fetcher(ctx)?;
    let mut inputs = Vec::new();
    for root in kb.roots()? {
        if is_url(&root) {
            inputs.push(fetcher.fetch_page(&root).await);
        } else {
            inputs.push(Input::Path(PathBuf::from(root)));
        }
    }
    Ok(inputs)
}

/// With an embeddings backend: embed the chunks whose vectors are not kept
/// yet and say what was done. False when embedding failed (keyword search
/// still works; the next `kb add` or `kb sync` picks up where it stopped).
async fn sync_vectors(ctx: &KbContext, out: &mut impl Write, json: bool) -> anyhow::Result<bool> {
    let Some(emb) = &ctx.embeddings else {
        return Ok(true);
    };
    let home = ctx.home.clone();
    let name = ctx.name.clone();
    let model = emb.model.clone();
    let (passages, mut cache, others) = tokio::task::spawn_blocking(move || {
        let kb = store::open(&home, &name)?;
        let passages = kb.passages()?;
        let (cache, others) =
            crate::kb::cache::VectorCache::open(&store::base_dir(&home, &name), &model)
                .context("cannot open the chunk vectors")?;
        Ok::<_, anyhow::Error>((passages, cache, others))
    })
    .await??;
    if cache.is_empty() && !others.is_empty() && !passages.is_empty() && !json {
        writeln!(
            out,
            "the embedding model changed to {} (vectors for {} are kept): re-embedding {} chunks",
            one_line(&emb.model),
            one_line(&others.join(", ")),
            passages.len()
        )?;
    }
    let route = crate::backends::local::EmbedRoute::Direct(emb.embedder.clone());
    let embed = |texts: Vec<String>| route.embed(texts);
    let result =
        crate::kb::cache::embed_missing(&passages, &mut cache, emb.batch_size, &embed).await;
    match result {
        Ok((_, report)) => {
            if json {
                let line = json!({
                    "type": "embeddings", "model": emb.model, "chunks": report.chunks,
                    "kept": report.cached, "embedded": report.embedded, "batches": report.batches,
                });
                writeln!(out, "{line}")?;
            } else if report.embedded == 0 {
                writeln!(
                    out,
                    "embeddings up to date: {} chunk(s), {}",
                    report.chunks,
                    one_line(&emb.model)
                )?;
            } else {
                writeln!(
                    out,
                    "embedded {} new chunk(s) in {} batch(es) with {} ({} kept)",
                    report.embedded,
                    report.batches,
                    one_line(&emb.model),
                    report.cached
                )?;
            }
            Ok(true)
        }
        Err(error) => {
            eprintln!(
                "loreweave: embedding chunks failed: {} (keyword search still works; `loreweave kb sync` resumes)",
                one_line(&error)
            );
            Ok(false)
        }
    }
}

/// Run one `kb` command. Exit 0 on success, 1 when the work failed, 2 for
/// bad usage (unknown knowledge base, bad name, read-only).
pub async fn run(cmd: KbCmd, ctx: KbContext) -> anyhow::Result<ExitCode> {
    match run_inner(cmd, &ctx).await {
        Ok(code) => Ok(code),
        // `loreweave kb list | head`: the reader left; nothing to say.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let usage = error.downcast_ref::<StoreError>().is_some_and(|e| {
                matches!(
                    e,
                    StoreError::NotFound { .. }
                        | StoreError::ReadOnly(_)
                        | StoreError::BadName { .. }
                        | StoreError::Locked { .. }
                )
            });
            eprintln!("loreweave: {}", one_line(&format!("{error:#}")));
            Ok(ExitCode::from(if usage { 2 } else { 1 }))
        }
    }
}

async fn run_inner(cmd: KbCmd, ctx: &KbContext) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let tty = std::io::stdout().is_terminal();
    match cmd {
        KbCmd::Add {
            paths,
            hidden,
            json,
        } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let fetcher = fetcher(ctx)?;
            let mut inputs = Vec::new();
            for arg in &paths {
                if is_url(arg) {
                    inputs.push(fetcher.fetch_page(arg).await);
                } else {
                    let path = std::path::absolute(cwd.join(arg))
                        .with_context(|| format!("bad path {}", one_line(arg)))?;
                    inputs.push(Input::Path(path));
                }
            }
            let opts = IngestOptions {
                hidden,
                ..Default::default()
            };
            ingest_and_report(ctx, &mut out, inputs, opts, true, json).await
        }
        KbCmd::Sync { json } => {
            let inputs = root_inputs(ctx).await?;
            let opts = IngestOptions {
                prune: true,
                ..Default::default()
            };
            ingest_and_report(ctx, &mut out, inputs, opts, false, json).await
        }
        KbCmd::Rebuild => {
            let inputs = root_inputs(ctx).await?;
            let opts = IngestOptions {
                force: true,
                ..Default::default()
            };
            ingest_and_report(ctx, &mut out, inputs, opts, false, false).await
        }
        KbCmd::Remove { paths } => {
            let name = writable(&ctx.name)?.to_owned();
            let home = ctx.home.clone();
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let (removed, unmatched) = tokio::task::spawn_blocking(move || {
                let mut writer = Writer::open(&home, &name, false)?;
                let result = writer.remove(&paths, &cwd)?;
                writer.close()?;
                Ok::<_, StoreError>(result)
            })
            .await??;
            for path in &removed {
                writeln!(out, "removed  {}", one_line(path))?;
            }
            for target in &unmatched {
                eprintln!(
                    "loreweave: no document matches {} (see `loreweave kb list`)",
                    one_line(target)
                );
            }
            writeln!(
                out,
                "kb '{}': {} document(s) removed",
                ctx.name,
                removed.len()
            )?;
            Ok(if unmatched.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        KbCmd::List { json } => {
            let selection = select(&ctx.home, &ctx.name)?;
            note_sample(&selection, &ctx.name);
            let kb = open_selection(&ctx.home, &selection)?;
            let docs = kb.documents()?;
            print_list(&mut out, &kb, &docs, json)?;
            Ok(ExitCode::SUCCESS)
        }
        KbCmd::Search { query, top_k, json } => {
            let selection = select(&ctx.home, &ctx.name)?;
            note_sample(&selection, &ctx.name);
            let kb = open_selection(&ctx.home, &selection)?;
            let hits = kb.search(&query, usize::try_from(top_k).unwrap_or(usize::MAX))?;
            let terms = kb.analyze(&query);
            for (rank, passage) in hits.iter().enumerate() {
                if json {
                    let line = json!({
                        "rank": rank + 1,
                        "score": passage.score,
                        "source": passage.source,
                        "id": passage.id,
                        "title": passage.title,
                        "trail": passage.location.trail,
                        "lines": passage.location.lines,
                        "text": passage.text,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    let location = one_line(&passage.location.to_string());
                    let at = if location.is_empty() {
                        String::new()
                    } else {
                        format!(" › {location}")
                    };
                    writeln!(
                        out,
                        "{:>2}. {:>6.2}  {}{}",
                        rank + 1,
                        passage.score,
                        one_line(&passage.source),
                        at
                    )?;
                    writeln!(out, "    {}", snippet(&kb, &passage.text, &terms, tty))?;
                }
            }
            if hits.is_empty() && !json {
                writeln!(out, "no passage matches")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCmd::Stats { json } => {
            let selection = select(&ctx.home, &ctx.name)?;
            note_sample(&selection, &ctx.name);
            let kb = open_selection(&ctx.home, &selection)?;
            let docs = kb.documents()?;
            let on_disk = match &selection {
                Selection::Sample => 0,
                Selection::Disk(name) => store::disk_usage(&store::base_dir(&ctx.home, name)),
            };
            let stats = store::Stats {
                name: selection.name().to_owned(),
                documents: docs.len(),
                chunks: kb.chunk_count(),
                bytes: docs.iter().map(|d| d.bytes).sum(),
                bytes_on_disk: on_disk,
                embedded_chunks: embedded_count(ctx, &selection, &kb)?,
                roots: kb.roots()?,
            };
            if json {
                writeln!(out, "{}", serde_json::to_string(&stats)?)?;
            } else {
                writeln!(out, "knowledge base  {}", stats.name)?;
                writeln!(out, "documents       {}", stats.documents)?;
                writeln!(out, "chunks          {}", stats.chunks)?;
                writeln!(out, "bytes           {}", human_bytes(stats.bytes))?;
                writeln!(out, "on disk         {}", human_bytes(stats.bytes_on_disk))?;
                writeln!(out, "embedded chunks {}", stats.embedded_chunks)?;
                for root in &stats.roots {
                    writeln!(out, "root            {}", one_line(root))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCmd::Bases { json } => {
            let current = select(&ctx.home, &ctx.name).ok();
            let mut rows = Vec::new();
            for name in store::names(&ctx.home) {
                let (docs, chunks) = store::open(&ctx.home, &name)
                    .map(|kb| (kb.document_count(), kb.chunk_count()))
                    .unwrap_or((0, 0));
                let size = store::disk_usage(&store::base_dir(&ctx.home, &name));
                rows.push((name, docs, chunks, size, false));
            }
            let sample = KnowledgeBase::build(crate::kb::embedded_lore())?;
            rows.push((
                store::SAMPLE.to_owned(),
                sample.document_count(),
                sample.chunk_count(),
                0,
                true,
            ));
            for (name, docs, chunks, size, builtin) in rows {
                let in_use = current.as_ref().is_some_and(|c| c.name() == name);
                if json {
                    let line = json!({
                        "name": name, "documents": docs, "chunks": chunks,
                        "bytes_on_disk": size, "builtin": builtin, "in_use": in_use,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    let mark = if in_use { "*" } else { " " };
                    let note = if builtin {
                        "built-in, read-only".to_owned()
                    } else {
                        human_bytes(size)
                    };
                    writeln!(
                        out,
                        "{mark} {name:<20} {docs:>6} docs {chunks:>7} chunks  {note}"
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCmd::Eval { file, top_k, json } => {
            let selection = select(&ctx.home, &ctx.name)?;
            note_sample(&selection, &ctx.name);
            let kb = open_selection(&ctx.home, &selection)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let cases = crate::kb::eval::parse_cases(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let top_k = usize::try_from(top_k).unwrap_or(usize::MAX);
            let bm25 = crate::kb::eval::evaluate(&kb, &cases, top_k, None)?;
            let mut reports = vec![("bm25".to_owned(), bm25)];
            if let Some(emb) = &ctx.embeddings {
                let report = hybrid_eval(&kb, emb, &cases, top_k).await?;
                reports.push((format!("hybrid ({})", emb.model), report));
            }
            for (ranking, report) in &reports {
                if json {
                    let mut line = serde_json::to_value(report)?;
                    line["ranking"] = json!(ranking);
                    writeln!(out, "{line}")?;
                } else {
                    for miss in &report.misses {
                        writeln!(out, "miss  {}", one_line(miss))?;
                    }
                    writeln!(
                        out,
                        "{}: {} questions · recall@{} {:.3} · MRR {:.3} · hit rate {:.3} (kb '{}')",
                        one_line(ranking),
                        report.questions,
                        report.top_k,
                        report.recall,
                        report.mrr,
                        report.hit_rate,
                        selection.name()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Chunks of the knowledge base that have a vector for the configured
/// embedding model (0 without one).
fn embedded_count(
    ctx: &KbContext,
    selection: &Selection,
    kb: &KnowledgeBase,
) -> anyhow::Result<usize> {
    let (Some(emb), Selection::Disk(name)) = (&ctx.embeddings, selection) else {
        return Ok(0);
    };
    let (cache, _) =
        crate::kb::cache::VectorCache::open(&store::base_dir(&ctx.home, name), &emb.model)?;
    Ok(kb
        .passages()?
        .iter()
        .filter(|p| cache.get(&crate::kb::cache::text_key(p)).is_some())
        .count())
}

/// `kb eval` by BM25 and meaning fused, with the configured embedder.
async fn hybrid_eval(
    kb: &KnowledgeBase,
    emb: &Embeddings,
    cases: &[crate::kb::eval::Case],
    top_k: usize,
) -> anyhow::Result<crate::kb::eval::Report> {
    use crate::kb::cache::{VectorCache, embed_missing};
    let passages = kb.passages()?;
    let mut cache = match kb.dir() {
        Some(dir) => VectorCache::open(dir, &emb.model)?.0,
        None => VectorCache::memory(&emb.model),
    };
    let route = crate::backends::local::EmbedRoute::Direct(emb.embedder.clone());
    let embed = |texts: Vec<String>| route.embed(texts);
    let (rows, _) = embed_missing(&passages, &mut cache, emb.batch_size, &embed)
        .await
        .map_err(|e| anyhow::anyhow!("embedding the chunks failed: {e}"))?;
    let index = crate::kb::vectors::VectorIndex::new(rows).map_err(anyhow::Error::msg)?;
    let mut vectors = std::collections::HashMap::new();
    for batch in cases.chunks(emb.batch_size.max(1)) {
        let questions: Vec<String> = batch.iter().map(|c| c.question.clone()).collect();
        let rows = emb
            .embedder
            .embed(questions.clone())
            .await
            .map_err(|e| anyhow::anyhow!("embedding the questions failed: {}", e.message))?;
        vectors.extend(questions.into_iter().zip(rows));
    }
    let search = crate::kb::eval::hybrid(kb, &passages, &index, &vectors);
    Ok(crate::kb::eval::evaluate(kb, cases, top_k, Some(&search))?)
}

fn writable(name: &str) -> Result<&str, StoreError> {
    store::check_name(name)?;
    if name == store::SAMPLE {
        return Err(StoreError::ReadOnly(name.to_owned()));
    }
    Ok(name)
}

fn note_sample(selection: &Selection, asked: &str) {
    if *selection == Selection::Sample && asked != store::SAMPLE {
        eprintln!(
            "loreweave: knowledge base '{asked}' is empty: using the built-in sample lore (`loreweave kb add PATH` fills it)"
        );
    }
}

fn load_options(ctx: &KbContext) -> LoadOptions {
    LoadOptions {
        max_file_size: ctx.max_file_size,
        ..LoadOptions::default()
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// Run an ingest on the blocking pool, with a progress bar on a terminal.
async fn ingest(
    ctx: &KbContext,
    inputs: Vec<Input>,
    opts: IngestOptions,
    create: bool,
) -> anyhow::Result<Summary> {
    let name = writable(&ctx.name)?.to_owned();
    let home = ctx.home.clone();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} files · {msg} chunks · {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let progress_bar = bar.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    let summary = tokio::task::spawn_blocking(move || {
        let mut writer = Writer::open(&home, &name, create)?;
        // At most ten redraws a second, however fast files go by.
        let mut last: Option<std::time::Instant> = None;
        let mut progress = |p: store::Progress| {
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
                || p.files_done == p.files_total;
            if let (Some(bar), true) = (&progress_bar, due) {
                last = Some(std::time::Instant::now());
                bar.set_length(p.files_total as u64);
                bar.set_message(p.chunks.to_string());
                bar.set_position(p.files_done as u64);
            }
        };
        let summary = writer.ingest(&inputs, &opts, &mut progress, &cancel)?;
        if opts.force {
            writer.compact()?;
        }
        writer.close()?;
        Ok::<_, StoreError>(summary)
    })
    .await??;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}

/// `kb add`, `sync` and `rebuild`: ingest (with the configured load
/// options), print the summary, bring the chunk vectors up to date. Exit 1
/// when the ingest was cancelled, an input could not be read, or embedding
/// failed.
async fn ingest_and_report(
    ctx: &KbContext,
    out: &mut impl Write,
    inputs: Vec<Input>,
    opts: IngestOptions,
    create: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let opts = IngestOptions {
        load: load_options(ctx),
        ..opts
    };
    let summary = ingest(ctx, inputs, opts, create).await?;
    print_summary(out, &ctx.name, &summary, json)?;
    let embedded = sync_vectors(ctx, out, json).await?;
    Ok(
        if summary.cancelled || !summary.failed.is_empty() || !embedded {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn print_summary(
    out: &mut impl Write,
    name: &str,
    summary: &Summary,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(summary)?)?;
        return Ok(());
    }
    for (what, items) in [
        ("skipped", &summary.skipped),
        ("failed", &summary.failed),
        ("kept", &summary.kept),
    ] {
        for item in items {
            writeln!(
                out,
                "{what:<8} {}: {}",
                one_line(&item.path),
                one_line(&item.reason)
            )?;
        }
    }
    writeln!(out, "{}", summary.line(name))?;
    Ok(())
}

fn print_list(
    out: &mut impl Write,
    kb: &KnowledgeBase,
    docs: &[DocRecord],
    json: bool,
) -> anyhow::Result<()> {
    for doc in docs {
        let shown = kb.display_name(&doc.path);
        if json {
            let line = json!({
                "path": doc.path, "shown": shown, "title": doc.title,
                "chunks": doc.chunks, "bytes": doc.bytes,
                "indexed_at": doc.indexed_at, "hash": doc.hash, "root": doc.root,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{:<40} {:<32} {:>5} chunks {:>9}  {}",
                one_line(&shown),
                truncate(&one_line(&doc.title), 32),
                doc.chunks,
                human_bytes(doc.bytes),
                utc_time(doc.indexed_at)
            )?;
        }
    }
    if docs.is_empty() && !json {
        writeln!(out, "no documents yet: `loreweave kb add PATH` adds some")?;
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A short excerpt around the first matched term, terms highlighted (bold)
/// on a terminal, marked `**...**`-free plain text otherwise.
fn snippet(kb: &KnowledgeBase, text: &str, terms: &[String], tty: bool) -> String {
    const WIDTH: usize = 220;
    let clean = one_line(text);
    let words: Vec<&str> = clean.split(' ').collect();
    let matches = |word: &str| {
        let analyzed = kb.analyze(word);
        analyzed.iter().any(|a| terms.contains(a))
    };
    let first = words.iter().position(|w| matches(w)).unwrap_or(0);
    let start = first.saturating_sub(8);
    let mut shown = String::new();
    let mut width = 0;
    if start > 0 {
        shown.push_str("… ");
    }
    for word in &words[start..] {
        if width + word.chars().count() > WIDTH {
            shown.push_str(" …");
            break;
        }
        if width > 0 {
            shown.push(' ');
        }
        if tty && matches(word) {
            shown.push_str("\x1b[1m");
            shown.push_str(word);
            shown.push_str("\x1b[0m");
        } else {
            shown.push_str(word);
        }
        width += word.chars().count() + 1;
    }
    shown
}

pub use crate::kb::fetch::human_bytes;

/// `2026-11-30 12:01 UTC` from seconds since the epoch.
pub fn utc_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_civil() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(1_796_040_000), "2026-11-30 12:00 UTC");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(50_000_000), "50.0 MB");
    }
}
