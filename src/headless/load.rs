//! `loreweave load`: oha for RAG pipelines. Runs N pipelines (questions or
//! scenarios), C at a time, or for a duration, whichever ends first,
//! through the configured backends and their configured limits (the same
//! engine and runtime as every other command), then prints a summary:
//! throughput, latency per stage with a small histogram, outcomes by class,
//! retries, breaker trips, late arrivals, the most common errors, and which
//! limit held the run back. `--json` prints the same as one JSON document.
//!
//! What it owns: the submission loop and the [`LoadStats`] tap that reads
//! the engine's lifecycle events. Invariants: every submitted pipeline is
//! one parent request, counted once when it ends; a pipeline still running
//! when the run stops (Ctrl-C, the duration) is cancelled, so the loop
//! always ends and the summary always prints; connections refused for lack
//! of file descriptors (EMFILE) are counted as such, never as the backend's
//! failures. Each question asks in a conversation of its own, closed when
//! its turn ends, so memory does not grow with N for `--kind ask`.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::backends::local::KbHandle;
use crate::config::Config;
use crate::engine::event::{EventKind, LifecycleEvent, QueueReason};
use crate::engine::request::{Kind, Outcome};
use crate::engine::workspace::ConversationId;
use crate::engine::{Command, Engine, EngineConfig, Input};
use crate::runtime::{Driver, Tap};

/// What each pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// A chat turn: retrieve, then chat.
    Ask,
    /// A scenario: retrieve, then generate.
    Scenario,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Pipelines to run; `None`: until the duration ends.
    pub requests: Option<u64>,
    /// Pipelines in flight at once.
    pub concurrency: usize,
    pub duration: Option<Duration>,
    pub kind: LoadKind,
    /// Prompts, used in turn.
    pub prompts: Vec<String>,
    /// Show the live lifecycle pane (on a terminal, without --json).
    pub tui: bool,
    pub json: bool,
}

/// Log targets held to warnings and errors during a run at the default
/// `--log-level info`: the engine's two lines per request (created,
/// finished) would be four lines per question, written by the log's thread
/// at thousands of requests a second (about a tenth of the run's CPU at
/// 1,024 in flight). What they say is in the summary; `--log-level debug`
/// or `RUST_LOG` keeps them.
pub const QUIET_LOG_TARGETS: &[&str] = &["loreweave::engine::flow", "loreweave::engine::registry"];

/// Pipelines run when neither `--requests` nor `--duration` is given.
pub const DEFAULT_REQUESTS: u64 = 100;

/// Prompts used without `--prompts`: questions about the sample lore.
pub const DEFAULT_PROMPTS: &[&str] = &[
    "who guards the waystone?",
    "what lies beneath the old keep?",
    "how do the river folk trade?",
    "who rules the northern marches?",
    "what happened at the burning of the mill?",
    "where do the wardens meet?",
    "what do the villagers fear at night?",
    "how is the bridge toll paid?",
];

/// Read `--prompts FILE`: one prompt per non-empty line.
pub fn read_prompts(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read prompts from {}: {e}", path.display()))?;
    let prompts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if prompts.is_empty() {
        anyhow::bail!("{} holds no prompt (one per line)", path.display());
    }
    Ok(prompts)
}

/// Raise the soft open-file limit to the hard limit; returns the limit in
/// force afterwards (`None` where there is none to ask about).
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Whether an error says this machine ran out of file descriptors.
pub fn is_out_of_descriptors(message: &str) -> bool {
    message.contains("Too many open files") || message.contains("os error 24")
}

// ----- what is measured ----------------------------------------------------

/// A stage whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Pipeline,
    Embed,
    Retrieve,
    Generate,
}

impl Stage {
    fn of(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Turn | Kind::Scenario => Some(Stage::Pipeline),
            Kind::Retrieve => Some(Stage::Retrieve),
            Kind::Embed => Some(Stage::Embed),
            Kind::Chat | Kind::Generate => Some(Stage::Generate),
            Kind::Ingest => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Stage::Pipeline => "pipeline",
            Stage::Embed => "embed",
            Stage::Retrieve => "retrieve",
            Stage::Generate => "generate",
        }
    }
}

/// Per-backend admission figures.
#[derive(Debug, Clone, Default)]
struct BackendLoad {
    /// Calls dispatched (first attempts).
    started: u64,
    /// Requests that waited for a slot / a rate token.
    waited_for_slot: u64,
    waited_for_rate: u64,
    /// Time spent waiting before the first dispatch, summed.
    wait_total: Duration,
}

/// Everything the run counts, fed by the engine's lifecycle events.
#[derive(Debug, Default)]
pub struct LoadStats {
    latencies: BTreeMap<Stage, Histogram<u64>>,
    /// Pipelines ended, by outcome label.
    outcomes: BTreeMap<&'static str, u64>,
    pipelines_ended: u64,
    retries: u64,
    breaker_trips: u64,
    late_arrivals: u64,
    /// Errors (failed attempts and failed requests), by message.
    errors: HashMap<String, u64>,
    /// Attempts refused because this machine had no file descriptor left.
    out_of_descriptors: u64,
    backends: BTreeMap<String, BackendLoad>,
    /// Conversations whose turn ended (closed by the loop).
    ended_conversations: Vec<ConversationId>,
}

impl LoadStats {
    fn error(&mut self, message: &str) {
        if is_out_of_descriptors(message) {
            self.out_of_descriptors += 1;
            return;
        }
        *self.errors.entry(message.to_owned()).or_default() += 1;
    }

    fn record(&mut self, engine: &Engine, event: &LifecycleEvent) {
        match &event.event {
            EventKind::Breaker(change) if change.to == "open" => self.breaker_trips += 1,
            EventKind::RetryScheduled { reason, .. } => {
                self.retries += 1;
                self.error(reason);
            }
            EventKind::LateArrival(_) => self.late_arrivals += 1,
            EventKind::Queued { reason } => {
                let b = self.backends.entry(event.backend.to_string()).or_default();
                match reason {
                    QueueReason::Slots { .. } => b.waited_for_slot += 1,
                    QueueReason::RateLimit { .. } => b.waited_for_rate += 1,
                }
            }
            EventKind::Dispatched { attempt: 1 } => {
                let created = event
                    .id
                    .and_then(|id| engine.registry().get(id))
                    .map_or(event.at, |r| r.created);
                let b = self.backends.entry(event.backend.to_string()).or_default();
                b.started += 1;
                b.wait_total += event.at.saturating_duration_since(created);
            }
            EventKind::Final { outcome } => self.ended(engine, event, outcome),
            _ => {}
        }
    }

    fn ended(&mut self, engine: &Engine, event: &LifecycleEvent, outcome: &Outcome) {
        let Some(request) = event.id.and_then(|id| engine.registry().get(id)) else {
            return;
        };
        let Some(stage) = Stage::of(request.kind) else {
            return;
        };
        let took = request
            .ended
            .unwrap_or(event.at)
            .saturating_duration_since(request.created);
        if matches!(outcome, Outcome::Completed | Outcome::Joined(_)) {
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            self.latencies
                .entry(stage)
                .or_insert_with(new_histogram)
                .saturating_record(us);
        }
        if stage == Stage::Pipeline {
            self.pipelines_ended += 1;
            let class = match outcome {
                Outcome::Failed(reason) if is_out_of_descriptors(reason) => "out of descriptors",
                other => other.label(),
            };
            *self.outcomes.entry(class).or_default() += 1;
            if request.kind == Kind::Turn
                && let Some(conversation) = request.conversation
            {
                self.ended_conversations.push(conversation);
            }
        } else if let Outcome::Failed(reason) = outcome {
            self.error(reason);
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// The tap that feeds [`LoadStats`].
#[derive(Debug)]
struct StatsTap(Arc<Mutex<LoadStats>>);

impl Tap for StatsTap {
    fn events(&mut self, engine: &Engine, events: &[LifecycleEvent]) {
        let Ok(mut stats) = self.0.lock() else {
            return;
        };
        for event in events {
            stats.record(engine, event);
        }
    }
}

// ----- the summary -----------------------------------------------------------

/// Latency of one stage, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageSummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Up to 8 buckets: completed requests that took at most `le_ms`.
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub le_ms: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendSummary {
    /// Its concurrency limit.
    pub limit: usize,
    pub rate_per_minute: Option<u32>,
    pub calls: u64,
    pub waited_for_slot: u64,
    pub waited_for_rate: u64,
    pub mean_wait_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorCount {
    pub error: String,
    pub count: u64,
}

/// What held the run back.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Bottleneck {
    /// `--concurrency` was the limit: no backend made requests wait.
    Concurrency { concurrency: usize },
    /// A backend's concurrency limit (lower than `--concurrency`) made
    /// requests wait for a slot.
    BackendLimit {
        backend: String,
        limit: usize,
        waited: u64,
        calls: u64,
    },
    /// A backend's rate limit made requests wait for a token.
    RateLimit {
        backend: String,
        per_minute: u32,
        waited: u64,
        calls: u64,
    },
}

/// The whole summary (`--json` prints it as is).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub kind: LoadKind,
    pub concurrency: usize,
    pub submitted: u64,
    pub ended: u64,
    pub elapsed_s: f64,
    /// Completed pipelines per second.
    pub throughput_per_s: f64,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    pub stages: BTreeMap<String, StageSummary>,
    pub outcomes: BTreeMap<String, u64>,
    pub retries: u64,
    pub breaker_trips: u64,
    pub late_arrivals: u64,
    pub errors: Vec<ErrorCount>,
    /// The open-file limit after raising it, and attempts refused for
    /// lack of descriptors (not the backends' failures).
    pub open_files_limit: Option<u64>,
    pub out_of_descriptors: u64,
    pub backends: BTreeMap<String, BackendSummary>,
    pub bottleneck: Bottleneck,
    /// This process's peak resident memory (Linux), in MB.
    pub peak_rss_mb: Option<f64>,
}

/// `VmHWM` of this process, where /proc has it.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

fn stage_summary(h: &Histogram<u64>) -> StageSummary {
    let (lo, hi) = (h.min().max(1), h.max().max(1));
    // Log-spaced bucket edges from the fastest to the slowest.
    let n = 8u32;
    let ratio = (hi as f64 / lo as f64).powf(1.0 / f64::from(n));
    let mut edges: Vec<u64> = (1..=n)
        .map(|i| (lo as f64 * ratio.powi(i as i32)).ceil() as u64)
        .collect();
    edges.dedup();
    if let Some(last) = edges.last_mut() {
        *last = hi;
    }
    let mut below = 0;
    let histogram = edges
        .iter()
        .map(|&edge| {
            let upto = h.count_between(0, edge);
            let count = upto - below;
            below = upto;
            Bucket {
                le_ms: ms(edge),
                count,
            }
        })
        .collect();
    StageSummary {
        count: h.len(),
        mean_ms: h.mean() / 1_000.0,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p95_ms: ms(h.value_at_quantile(0.95)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        histogram,
    }
}

impl Summary {
    fn build(
        stats: &LoadStats,
        engine: &Engine,
        opts: &LoadOptions,
        submitted: u64,
        elapsed: Duration,
        interrupted: bool,
        open_files_limit: Option<u64>,
    ) -> Self {
        let stages = stats
            .latencies
            .iter()
            .map(|(stage, h)| (stage.label().to_owned(), stage_summary(h)))
            .collect();
        let mut errors: Vec<ErrorCount> = stats
            .errors
            .iter()
            .map(|(error, count)| ErrorCount {
                error: error.clone(),
                count: *count,
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.error.cmp(&b.error)));
        errors.truncate(5);
        let backends: BTreeMap<String, BackendSummary> = engine
            .backends()
            .iter()
            .filter_map(|(name, b)| {
                let load = stats.backends.get(name)?;
                Some((
                    name.clone(),
                    BackendSummary {
                        limit: b.policy.concurrency,
                        rate_per_minute: b.policy.rate_per_minute,
                        calls: load.started,
                        waited_for_slot: load.waited_for_slot,
                        waited_for_rate: load.waited_for_rate,
                        mean_wait_ms: if load.started == 0 {
                            0.0
                        } else {
                            load.wait_total.as_secs_f64() * 1_000.0 / load.started as f64
                        },
                    },
                ))
            })
            .collect();
        let bottleneck = bottleneck(&backends, opts.concurrency);
        let completed = stats.outcomes.get("completed").copied().unwrap_or(0);
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            kind: opts.kind,
            concurrency: opts.concurrency,
            submitted,
            ended: stats.pipelines_ended,
            elapsed_s: elapsed.as_secs_f64(),
            throughput_per_s: completed as f64 / secs,
            interrupted,
            stages,
            outcomes: stats
                .outcomes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            retries: stats.retries,
            breaker_trips: stats.breaker_trips,
            late_arrivals: stats.late_arrivals,
            errors,
            open_files_limit,
            out_of_descriptors: stats.out_of_descriptors,
            backends,
            bottleneck,
            peak_rss_mb: peak_rss_mb(),
        }
    }
}

/// The backend that made the most requests wait, if enough did (at least
/// a tenth of its calls) and its limit is below `concurrency`; else
/// `--concurrency` itself.
fn bottleneck(backends: &BTreeMap<String, BackendSummary>, concurrency: usize) -> Bottleneck {
    let worst = backends
        .iter()
        .filter(|(_, b)| b.calls > 0)
        .map(|(name, b)| (name, b, b.waited_for_slot.max(b.waited_for_rate)))
        .filter(|(_, b, waited)| *waited * 10 >= b.calls && *waited > 0)
        .max_by_key(|(_, _, waited)| *waited);
    match worst {
        Some((name, b, _)) if b.waited_for_rate > b.waited_for_slot => Bottleneck::RateLimit {
            backend: name.clone(),
            per_minute: b.rate_per_minute.unwrap_or_default(),
            waited: b.waited_for_rate,
            calls: b.calls,
        },
        Some((name, b, _)) if b.limit < concurrency => Bottleneck::BackendLimit {
            backend: name.clone(),
            limit: b.limit,
            waited: b.waited_for_slot,
            calls: b.calls,
        },
        _ => Bottleneck::Concurrency { concurrency },
    }
}

/// The summary as text.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kind = match s.kind {
        LoadKind::Ask => "questions",
        LoadKind::Scenario => "scenarios",
    };
    let _ = writeln!(
        out,
        "Summary: {} {kind} ended of {} submitted, {} in flight at most, in {:.2} s{}",
        s.ended,
        s.submitted,
        s.concurrency,
        s.elapsed_s,
        if s.interrupted {
            " (stopped early by Ctrl-C)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "  throughput: {:.2} completed/s", s.throughput_per_s);
    let outcomes: Vec<String> = s.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "  outcomes:   {}",
        if outcomes.is_empty() {
            "none".to_string()
        } else {
            outcomes.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  retries {} · breaker trips {} · late arrivals {}",
        s.retries, s.breaker_trips, s.late_arrivals
    );
    if let Some(mb) = s.peak_rss_mb {
        let _ = writeln!(out, "  peak memory: {mb:.1} MB");
    }
    let _ = writeln!(out, "\nLatency (completed, ms):");
    let _ = writeln!(
        out,
        "  {:<9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "stage", "count", "p50", "p95", "p99", "max"
    );
    for stage in ["embed", "retrieve", "generate", "pipeline"] {
        if let Some(st) = s.stages.get(stage) {
            let _ = writeln!(
                out,
                "  {:<9} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                stage, st.count, st.p50_ms, st.p95_ms, st.p99_ms, st.max_ms
            );
        }
    }
    if let Some(st) = s.stages.get("pipeline") {
        let _ = writeln!(out, "\nPipeline latency histogram:");
        let top = st
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(0)
            .max(1);
        for b in &st.histogram {
            let bar = "■".repeat(((b.count * 40).div_ceil(top)) as usize);
            let _ = writeln!(out, "  {:>10.2} ms [{:>6}] {bar}", b.le_ms, b.count);
        }
    }
    if !s.backends.is_empty() {
        let _ = writeln!(out, "\nBackends:");
        for (name, b) in &s.backends {
            let rate = b
                .rate_per_minute
                .map(|r| format!(", rate {r}/min"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {name}: limit {}{rate}; {} calls, {} waited for a slot, {} for a rate token, mean wait {:.2} ms",
                b.limit, b.calls, b.waited_for_slot, b.waited_for_rate, b.mean_wait_ms
            );
        }
    }
    let _ = writeln!(out);
    match &s.bottleneck {
        Bottleneck::Concurrency { concurrency } => {
            let _ = writeln!(
                out,
                "Bottleneck: --concurrency {concurrency} (no backend limit made requests wait)"
            );
        }
        Bottleneck::BackendLimit {
            backend,
            limit,
            waited,
            calls,
        } => {
            let _ = writeln!(
                out,
                "Bottleneck: backend `{backend}`'s concurrency limit ({limit}), not --concurrency {}: {waited} of its {calls} calls waited for a slot",
                s.concurrency
            );
        }
        Bottleneck::RateLimit {
            backend,
            per_minute,
            waited,
            calls,
        } => {
            let _ = writeln!(
                out,
                "Bottleneck: backend `{backend}`'s rate limit ({per_minute}/min): {waited} of its {calls} calls waited for a token"
            );
        }
    }
    if s.out_of_descriptors > 0 {
        let limit = s
            .open_files_limit
            .map_or_else(|| "unknown".to_string(), |l| l.to_string());
        let _ = writeln!(
            out,
            "Out of file descriptors: {} connection attempts were refused on this machine (open-file limit {limit}); not backend failures. Lower --concurrency or raise the hard limit (ulimit -Hn).",
            s.out_of_descriptors
        );
    }
    if !s.errors.is_empty() {
        let _ = writeln!(out, "\nMost common errors:");
        for e in &s.errors {
            let _ = writeln!(
                out,
                "  {:>6} × {}",
                e.count,
                crate::sanitize::one_line(&e.error)
            );
        }
    }
    out
}

// ----- the run ----------------------------------------------------------------

/// How the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Still submitting.
    No,
    /// N submitted or the duration over: in-flight pipelines finish (the
    /// duration cancels them).
    Done,
    /// Ctrl-C: cancel what runs, print the summary.
    Interrupted,
}

/// The one conversation scenarios are generated in.
const SCENARIOS: ConversationId = ConversationId(1);

/// Exit status after Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// Run the load and print the summary. Exit code 0 when it ran (whatever
/// the pipelines' outcomes), 1 when no pipeline completed, 130 after
/// Ctrl-C.
pub async fn run(
    opts: LoadOptions,
    mut cfg: EngineConfig,
    config: &Config,
    kb: KbHandle,
) -> anyhow::Result<ExitCode> {
    let open_files_limit = raise_nofile_limit();
    if let Some(limit) = open_files_limit
        && (opts.concurrency as u64).saturating_mul(2) > limit
    {
        eprintln!(
            "loreweave: --concurrency {} may need more file descriptors than the open-file limit ({limit}) allows",
            opts.concurrency
        );
    }
    // Nothing is saved: the summaries' batches would only pile up.
    cfg.history_cap = cfg.history_cap.min(10_000);
    let backends = crate::app::build_backends(config, kb)?;
    let mut driver = crate::app::driver(cfg, backends);
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    driver.add_tap(Box::new(StatsTap(stats.clone())));
    if opts.kind == LoadKind::Scenario {
        driver
            .engine
            .open_conversation(SCENARIOS, "load", Vec::new(), Vec::new());
    }
    let limit = match (opts.requests, opts.duration) {
        (Some(n), _) => n,
        (None, Some(_)) => u64::MAX,
        (None, None) => DEFAULT_REQUESTS,
    };
    let live_view = opts.tui && !opts.json && std::io::stderr().is_terminal();
    let progress = progress_bar(&opts, limit, live_view);
    let mut view = if live_view {
        live::View::enter().ok()
    } else {
        None
    };
    let started = Instant::now();
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut submitted = 0u64;
    let mut next_conversation = 2u64;
    let mut stop = Stop::No;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let ended = close_ended(&mut driver, &stats);
        let in_flight = submitted - ended;
        if stop == Stop::No {
            let mut budget = opts.concurrency.saturating_sub(in_flight as usize);
            while budget > 0 && submitted < limit {
                let prompt = opts.prompts[(submitted % opts.prompts.len() as u64) as usize].clone();
                let command = match opts.kind {
                    LoadKind::Ask => {
                        let conversation = ConversationId(next_conversation);
                        next_conversation += 1;
                        driver.engine.open_conversation(
                            conversation,
                            "load",
                            Vec::new(),
                            Vec::new(),
                        );
                        Command::Ask {
                            conversation,
                            text: prompt,
                            tag: None,
                        }
                    }
                    LoadKind::Scenario => Command::Scenario {
                        conversation: SCENARIOS,
                        prompt,
                        seed: Some(submitted),
                    },
                };
                driver.apply(Input::Command(command));
                submitted += 1;
                budget -= 1;
            }
            if submitted >= limit {
                stop = Stop::Done;
            }
        }
        let ended = close_ended(&mut driver, &stats);
        if submitted == ended && stop != Stop::No {
            break;
        }
        let past_deadline = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if past_deadline && stop == Stop::No {
            stop = Stop::Done;
        }
        if past_deadline || stop == Stop::Interrupted {
            cancel_all(&mut driver, opts.kind, submitted - ended);
            continue;
        }
        let keys = async {
            match view.as_mut() {
                Some(v) => v.quit_key().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            input = driver.next_input() => {
                driver.apply(input);
                // Apply what is ready as one batch: fewer wake-ups.
                for _ in 0..256 {
                    let Some(input) = driver.try_next_input() else { break };
                    driver.apply(input);
                }
            }
            _ = &mut interrupt, if stop != Stop::Interrupted => stop = Stop::Interrupted,
            () = keys => stop = Stop::Interrupted,
            () = sleep_until(deadline) => {}
            _ = ticker.tick() => {
                let (ok, failed) = counts(&stats);
                if let Some(bar) = &progress {
                    bar.set_position(if limit == u64::MAX { ok + failed } else { ended });
                    bar.set_message(format!("{} in flight · {ok} ok · {failed} not ok", submitted - ended));
                }
                if let Some(v) = view.as_mut() {
                    v.draw(&driver.engine, submitted, ended, ok, failed);
                }
            }
        }
    }
    driver.abandon_observed();
    let elapsed = started.elapsed();
    drop(view);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let summary = {
        let stats = stats
            .lock()
            .map_err(|_| anyhow::anyhow!("the load statistics were poisoned"))?;
        Summary::build(
            &stats,
            &driver.engine,
            &opts,
            submitted,
            elapsed,
            stop == Stop::Interrupted,
            open_files_limit,
        )
    };
    let mut out = std::io::stdout().lock();
    if opts.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        out.write_all(render(&summary).as_bytes())?;
    }
    out.flush()?;
    let completed = summary.outcomes.get("completed").copied().unwrap_or(0);
    Ok(if stop == Stop::Interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if completed == 0 && submitted > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn counts(stats: &Mutex<LoadStats>) -> (u64, u64) {
    stats.lock().map_or((0, 0), |s| {
        let ok = s.outcomes.get("completed").copied().unwrap_or(0);
        (ok, s.pipelines_ended - ok)
    })
}

/// Close the conversations whose turn ended; returns the pipelines ended.
fn close_ended(driver: &mut Driver, stats: &Mutex<LoadStats>) -> u64 {
    let (ended, closing) = match stats.lock() {
        Ok(mut s) => (
            s.pipelines_ended,
            std::mem::take(&mut s.ended_conversations),
        ),
        Err(_) => return 0,
    };
    let now = tokio::time::Instant::now().into_std();
    for conversation in closing {
        let fx = driver.engine.close_conversation(conversation, now);
        driver.runtime.execute(fx);
    }
    ended
}

/// Cancel every pipeline still running (they end as cancelled).
fn cancel_all(driver: &mut Driver, kind: LoadKind, in_flight: u64) {
    if in_flight == 0 {
        return;
    }
    let now = tokio::time::Instant::now().into_std();
    let open: Vec<ConversationId> = match kind {
        LoadKind::Scenario => vec![SCENARIOS],
        LoadKind::Ask => driver
            .engine
            .registry()
            .live_requests()
            .filter(|r| r.parent.is_none())
            .filter_map(|r| r.conversation)
            .collect(),
    };
    for conversation in open {
        let fx = driver.engine.close_conversation(conversation, now);
        driver.runtime.execute(fx);
    }
    // The cancellations' events reach the tap with this input.
    driver.apply(Input::Tick);
    if kind == LoadKind::Scenario {
        driver
            .engine
            .open_conversation(SCENARIOS, "load", Vec::new(), Vec::new());
    }
}

fn progress_bar(opts: &LoadOptions, limit: u64, live_view: bool) -> Option<indicatif::ProgressBar> {
    if live_view || opts.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = if limit == u64::MAX {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::new(limit)
    };
    let style =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    Some(bar)
}

mod live {
    //! The live lifecycle view: the TUI's inspector pane over a line of
    //! counters, on the alternate screen; `q`, Esc or Ctrl-C stop the run.

    use crate::tui::terminal::DefaultTerminal;
    use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
    use futures::StreamExt;
    use ratatui::layout::{Constraint, Layout};
    use ratatui::text::Line;

    use crate::engine::Engine;
    use crate::engine::workspace::ConversationId;
    use crate::ui::{Theme, ViewState};

    pub struct View {
        terminal: DefaultTerminal,
        view: ViewState,
        events: EventStream,
    }

    impl std::fmt::Debug for View {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("live::View")
        }
    }

    impl View {
        pub fn enter() -> std::io::Result<Self> {
            let terminal = crate::tui::terminal::enter()?;
            Ok(Self {
                terminal,
                view: ViewState::new(Theme::from_env(), ConversationId(0)),
                events: EventStream::new(),
            })
        }

        /// Resolves when a key asks to stop.
        pub async fn quit_key(&mut self) {
            while let Some(event) = self.events.next().await {
                if let Ok(Event::Key(key)) = event
                    && key.kind == KeyEventKind::Press
                    && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                        || (key.code == KeyCode::Char('c')
                            && key.modifiers.contains(KeyModifiers::CONTROL)))
                {
                    return;
                }
            }
            std::future::pending::<()>().await;
        }

        pub fn draw(&mut self, engine: &Engine, submitted: u64, ended: u64, ok: u64, failed: u64) {
            let now = std::time::Instant::now();
            let header = format!(
                " loreweave load · {submitted} submitted · {} in flight · {ok} ok · {failed} not ok · q stops",
                submitted - ended
            );
            let view = &self.view;
            let _ = self.terminal.draw(|frame| {
                let [top, pane] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)])
                    .areas(frame.area());
                frame.render_widget(Line::raw(header), top);
                crate::ui::draw_lifecycle(frame, pane, engine, view, now);
            });
        }
    }

    impl Drop for View {
        fn drop(&mut self) {
            crate::tui::terminal::restore();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(limit: usize, calls: u64, waited: u64) -> BackendSummary {
        BackendSummary {
            limit,
            rate_per_minute: None,
            calls,
            waited_for_slot: waited,
            waited_for_rate: 0,
            mean_wait_ms: 1.0,
        }
    }

    #[test]
    fn a_backend_limit_below_concurrency_that_made_calls_wait_is_the_bottleneck() {
        let mut backends = BTreeMap::new();
        backends.insert("offline".to_string(), backend(2, 100, 90));
        backends.insert("local".to_string(), backend(8, 100, 0));
        assert_eq!(
            bottleneck(&backends, 16),
            Bottleneck::BackendLimit {
                backend: "offline".into(),
                limit: 2,
                waited: 90,
                calls: 100
            }
        );
        // At or above the concurrency, the concurrency is the limit.
        assert_eq!(
            bottleneck(&backends, 2),
            Bottleneck::Concurrency { concurrency: 2 }
        );
        backends.insert("offline".to_string(), backend(2, 100, 3));
        assert_eq!(
            bottleneck(&backends, 16),
            Bottleneck::Concurrency { concurrency: 16 }
        );
    }

    #[test]
    fn descriptor_errors_are_told_apart() {
        let mut stats = LoadStats::default();
        stats.error(
            "cannot connect to 127.0.0.1: tcp open error: Too many open files (os error 24)",
        );
        stats.error("HTTP 500 from 127.0.0.1");
        assert_eq!(stats.out_of_descriptors, 1);
        assert_eq!(stats.errors.len(), 1);
    }

    #[test]
    fn the_histogram_covers_every_completed_request() {
        let mut h = new_histogram();
        for us in [1_000, 2_000, 4_000, 8_000, 100_000] {
            h.record(us).unwrap_or_default();
        }
        let s = stage_summary(&h);
        assert_eq!(s.count, 5);
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 5);
        assert!(s.p50_ms >= 3.9 && s.p50_ms <= 4.1, "{s:?}");
        assert!(s.histogram.len() <= 8);
    }
}
