//! `loreweave ask` and `loreweave scenario`: the same engine and runtime as
//! the TUI, with a printer instead of a screen. Output is markdown on stdout
//! (sanitised, never ANSI); `--json` prints JSON Lines instead: every
//! lifecycle event, then the result, then per-backend metrics.

pub mod kb;
pub mod load;
pub mod sessions;
pub mod stdin;

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use crate::backends::local::KbHandle;
use crate::config::Config;
use crate::engine::event::EVENT_FORMAT_VERSION;
use crate::engine::workspace::{ConversationId, MessageStatus, ScenarioStatus};
use crate::engine::{Command, EngineConfig, Input};
use crate::runtime::Driver;
use crate::sanitize::sanitize;

/// The one conversation a headless command opens (nothing is saved
/// without `--session`, so its number only has to be the same throughout).
const CONVERSATION: ConversationId = ConversationId(0);

/// Open (or create) session `name` for a headless job: its conversation
/// restored into the engine, saves wired to the session database, and, for
/// a question, the question committed before it is sent (its row id is
/// the tag the engine hands back when the turn starts).
async fn open_session(
    driver: &mut Driver,
    name: &str,
    job: &Job,
) -> anyhow::Result<(
    ConversationId,
    std::sync::Arc<crate::store::StoreThread>,
    Option<u64>,
)> {
    let path = sessions::db_path()?;
    let (store, notice) =
        tokio::task::spawn_blocking(move || crate::store::StoreThread::spawn(path)).await??;
    if let Some(notice) = notice {
        eprintln!("loreweave: {}", crate::sanitize::one_line(&notice));
    }
    let store = std::sync::Arc::new(store);
    let wanted = name.to_owned();
    let data = store
        .call_try(move |db| {
            let row = match db.session_by_name(&wanted)? {
                Some(row) => row,
                None => db.create_session(&wanted)?,
            };
            db.load_session(row.id)
        })
        .await?;
    // Unsent messages belong to whoever queued them: not resent here.
    let session = data.session.id;
    let conversation = crate::persist::open_in(&mut driver.engine, data, false);
    let (problems, mut problem_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(problem) = problem_rx.recv().await {
            eprintln!("loreweave: {}", crate::sanitize::one_line(&problem));
        }
    });
    driver
        .runtime
        .set_persister(crate::persist::Persister::new(store.clone(), problems));
    let tag = match job {
        Job::Ask { question } => {
            let text = question.clone();
            let row = store
                .call_try(move |db| {
                    db.append_message(
                        session,
                        crate::store::NewMessage::user(text, crate::store::MessageStatus::Unsent),
                    )
                })
                .await?;
            Some(row.id as u64)
        }
        Job::Scenario { .. } => None,
    };
    Ok((conversation, store, tag))
}

/// What to run headless.
#[derive(Debug, Clone)]
pub enum Job {
    Ask { question: String },
    Scenario { prompt: String, seed: Option<u64> },
}

/// Run one job to its end and print it. Exit code 0 when it completed, 1
/// when it failed, timed out or was cancelled. `context` (the text piped on
/// stdin, see [`stdin`]) goes before the retrieved passages.
#[allow(clippy::too_many_arguments)] // one per command-line option group; a struct would only rename them
pub async fn run(
    job: Job,
    cfg: EngineConfig,
    config: &Config,
    kb: KbHandle,
    json: bool,
    session: Option<String>,
    trace: crate::cli::TraceArgs,
    context: Vec<crate::domain::Passage>,
) -> anyhow::Result<ExitCode> {
    let backends = crate::app::build_backends(config, kb)?;
    let mut driver = crate::app::driver(cfg, backends);
    driver.engine.set_context(context);
    let telemetry = crate::telemetry::attach(&mut driver, config)?;
    let recording = trace.trace.as_ref().map(|_| {
        let recording = crate::trace::Recording::new(crate::trace::DEFAULT_CAP_BYTES);
        let recorder = crate::trace::Recorder::new(&driver.engine, recording.clone());
        driver.add_tap(Box::new(recorder));
        recording
    });
    // With --session: the conversation continues that session and the new
    // turn is saved; without, nothing is saved.
    let (conversation, store, tag) = match &session {
        Some(name) => {
            let (conversation, store, tag) = open_session(&mut driver, name, &job).await?;
            // The session records what it is used with.
            let model = crate::app::model_name(config);
            let kb = match config.retriever.provider {
                // The base really searched: `sample` while `default` is empty.
                crate::config::RetrieverProvider::Local => crate::kb::store::home()
                    .ok()
                    .and_then(|home| kb::select(&home, &config.kb.name).ok())
                    .map_or_else(|| config.kb.name.clone(), |s| s.name().to_owned()),
                _ => format!("pipeline:{}", config.retriever.name()),
            };
            let session = crate::persist::session_of(conversation);
            // Queued now; the drain before exit waits for it.
            drop(store.call_try(move |db| {
                db.set_session_kb(session, Some(&kb))?;
                db.set_session_model(session, Some(&model), None)
            }));
            (conversation, Some(store), tag)
        }
        None => {
            driver
                .engine
                .open_conversation(CONVERSATION, "headless", Vec::new(), Vec::new());
            (CONVERSATION, None, None)
        }
    };
    let command = match &job {
        Job::Ask { question } => Command::Ask {
            conversation,
            text: question.clone(),
            tag,
        },
        Job::Scenario { prompt, seed } => Command::Scenario {
            conversation,
            prompt: prompt.clone(),
            seed: *seed,
        },
    };
    driver.apply(Input::Command(command));
    // Every request has a deadline (parents through their children), so
    // this ends.
    driver.run_until(|engine| !engine.is_busy()).await;
    // Calls still observed past their deadline are not waited for: they
    // are aborted and counted as abandoned.
    driver.abandon_observed();
    if let (Some(path), Some(recording)) = (&trace.trace, &recording) {
        let snapshot = crate::trace::Snapshot::take(
            &driver.engine,
            Some(recording),
            crate::trace::backends_of(config),
            trace.redact,
        );
        let written = snapshot
            .write_file(path)
            .map_err(|e| anyhow::anyhow!("trace not written to {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), lines = written.inputs_and_events, "trace written");
    }
    if let Some(store) = store {
        // Every save was queued before this: when it runs, they are done.
        store
            .call(|_| ())
            .await
            .map_err(|e| anyhow::anyhow!("the session was not saved: {e}"))?;
    }
    let outcome = report(&driver, &job, conversation);
    let mut out = std::io::stdout().lock();
    if json {
        print_json(&mut out, &driver, &outcome)?;
    } else {
        if let Some(reason) = &outcome.no_lore {
            eprintln!("loreweave: no lore: {}", sanitize(reason));
        }
        if let Some(error) = &outcome.error {
            eprintln!("loreweave: {}", sanitize(error));
        }
        let text = sanitize(&outcome.text);
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    // Spans go out before the process does (bounded).
    driver.finish_taps(crate::telemetry::EXIT_FLUSH);
    if let Some(exporter) = telemetry {
        let stats = exporter.shutdown(crate::telemetry::EXIT_FLUSH).await;
        if stats.dropped > 0 {
            eprintln!(
                "loreweave: otel: {} span(s) not exported (see the log)",
                stats.dropped
            );
        }
    }
    Ok(if outcome.error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct Report {
    text: String,
    status: &'static str,
    error: Option<String>,
    no_lore: Option<String>,
    sources: Vec<String>,
}

fn report(driver: &Driver, job: &Job, conversation: ConversationId) -> Report {
    let engine = &driver.engine;
    match job {
        Job::Scenario { .. } => match engine.scenarios().last() {
            Some(entry) => {
                let (status, error) = match &entry.status {
                    ScenarioStatus::Done => ("completed", None),
                    ScenarioStatus::Running => ("running", Some("still running".to_string())),
                    ScenarioStatus::Failed(reason) => ("failed", Some(reason.clone())),
                    ScenarioStatus::Cancelled => ("cancelled", Some("cancelled".to_string())),
                };
                Report {
                    text: entry.markdown.clone(),
                    status,
                    error,
                    no_lore: entry.no_lore.clone(),
                    sources: distinct_sources(&entry.passages),
                }
            }
            None => missing(),
        },
        Job::Ask { .. } => match engine
            .conversation(conversation)
            .and_then(|c| c.messages.last())
        {
            Some(message) => {
                let (status, error) = match &message.status {
                    MessageStatus::Done => ("completed", None),
                    MessageStatus::Running => ("running", Some("still running".to_string())),
                    MessageStatus::Failed(reason) => ("failed", Some(reason.clone())),
                    MessageStatus::Cancelled => ("cancelled", Some("cancelled".to_string())),
                };
                Report {
                    text: message.text.clone(),
                    status,
                    error,
                    no_lore: message.no_lore.clone(),
                    sources: distinct_sources(&message.passages),
                }
            }
            None => missing(),
        },
    }
}

/// Each source document once, in citation order.
fn distinct_sources(passages: &[crate::domain::Passage]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    passages
        .iter()
        .filter(|p| seen.insert(p.source.as_str()))
        .map(|p| p.source.clone())
        .collect()
}

fn missing() -> Report {
    Report {
        text: String::new(),
        status: "failed",
        error: Some("nothing was produced".into()),
        no_lore: None,
        sources: Vec::new(),
    }
}

fn print_json(out: &mut impl Write, driver: &Driver, report: &Report) -> anyhow::Result<()> {
    for event in driver.engine.registry().events() {
        let mut value = serde_json::to_value(event)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("type".into(), json!("event"));
            map.insert("v".into(), json!(EVENT_FORMAT_VERSION));
            map.insert("text".into(), json!(event.text()));
        }
        writeln!(out, "{value}")?;
    }
    writeln!(
        out,
        "{}",
        json!({
            "type": "result",
            "v": EVENT_FORMAT_VERSION,
            "status": report.status,
            "error": report.error,
            "no_lore": report.no_lore,
            "sources": report.sources,
            "text": report.text,
        })
    )?;
    let metrics: serde_json::Map<String, serde_json::Value> = driver
        .engine
        .backends()
        .iter()
        .map(|(name, m)| Ok((name.clone(), serde_json::to_value(m.metrics.snapshot())?)))
        .collect::<Result<_, serde_json::Error>>()?;
    writeln!(
        out,
        "{}",
        json!({ "type": "metrics", "v": EVENT_FORMAT_VERSION, "late_drops": driver.engine.total_late_drops(), "backends": metrics })
    )?;
    Ok(())
}
