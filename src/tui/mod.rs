//! The TUI loop: one `tokio::select!` over terminal events, task results (and
//! the engine's next deadline), the knowledge base becoming ready, finished
//! `/kb search`es, a redraw tick that only runs while requests are live, and
//! SIGTERM/SIGHUP. It
//! drains what is ready, updates, and draws only when something changed, at
//! most one frame per 16 ms, so an idle TUI uses no CPU. It never awaits a
//! backend or the disk: those run as tasks and come back as inputs.
//!
//! The terminal is restored on every way out: normal quit, error, panic
//! (ratatui's panic hook), SIGTERM and SIGHUP.

pub mod keys;
pub mod search;

use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backends::local::{IndexStats, KbHandle, KbState};
use crate::config::Config;
use crate::engine::workspace::ConversationId;
use crate::engine::{EngineConfig, Input};
use crate::ui::{self, Theme, ViewState};
use keys::Action;

const FRAME: Duration = Duration::from_millis(16);

/// The conversation the TUI opens until sessions are stored (then it is
/// the session's database id).
const FIRST_CONVERSATION: ConversationId = ConversationId(1);

/// How the TUI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Quit,
    /// Ended by a signal (its number), after restoring the terminal.
    Signal(i32),
}

/// Opens the knowledge base in the background; called after the first frame.
pub type KbOpener = Box<dyn FnOnce() -> KbHandle + Send>;

/// Run the TUI until the user quits or a signal arrives. `started` is when
/// the process started, for the first-frame measurement.
pub async fn run(
    cfg: EngineConfig,
    config: &Config,
    open_kb: KbOpener,
    started: std::time::Instant,
) -> anyhow::Result<Exit> {
    let mut terminal = ratatui::try_init()?;
    let result = run_inner(&mut terminal, cfg, config, open_kb, started).await;
    ratatui::restore();
    result
}

async fn run_inner(
    terminal: &mut ratatui::DefaultTerminal,
    cfg: EngineConfig,
    config: &Config,
    open_kb: KbOpener,
    started: std::time::Instant,
) -> anyhow::Result<Exit> {
    let mut view = ViewState::new(Theme::from_env(), FIRST_CONVERSATION);
    // The first frame goes out before any index work starts.
    // Backends are plugged in right after it; no input is handled before.
    let mut driver = crate::app::driver(cfg, crate::runtime::Backends::default());
    driver
        .engine
        .open_conversation(view.current, view.session.clone(), Vec::new(), Vec::new());
    terminal.draw(|frame| ui::draw(frame, &driver.engine, &view, Instant::now().into_std()))?;
    let first_frame = started.elapsed();
    tracing::info!(
        first_frame_ms = first_frame.as_secs_f64() * 1e3,
        "first frame drawn"
    );

    let index_started = Instant::now();
    let kb = open_kb();
    // Knowledge-base chunks are embedded as engine requests, so their
    // batches show in the lifecycle pane.
    let (chunk_embeds, mut chunk_batches) = crate::backends::local::EngineEmbeds::new();
    let mut backends =
        crate::app::build_backends_routed(config, kb.clone(), Some(chunk_embeds.clone()))?;
    backends.ingester = crate::app::ingester(config, &kb);
    backends.vector_sink = Some(std::sync::Arc::new(chunk_embeds));
    driver.runtime.replace_backends(backends);
    let mut kb_rx = kb.subscribe();
    // The built-in index only matters to the local retriever.
    let local = config.retriever.provider == crate::config::RetrieverProvider::Local;
    let mut kb_pending = local;
    if !local {
        view.kb_status = format!("lore from {}", config.retriever.name());
    }

    // Finished `/kb search`es; the loop holds a sender, so this never closes.
    let (search_tx, mut search_rx) = tokio::sync::mpsc::unbounded_channel();

    let mut events = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_draw = Instant::now();
    let mut dirty = false;

    loop {
        let busy = driver.engine.is_busy();
        let frame_at = last_draw + FRAME;
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    let actions = keys::on_key(key, &mut view, &driver.engine);
                    for action in actions {
                        match action {
                            Action::Engine(command) => driver.apply(Input::Command(command)),
                            Action::Notice(text, is_error) => driver.engine.set_notice(text, is_error),
                            Action::KbUse(name) => {
                                if local {
                                    kb.switch(move || crate::app::open_named_kb(&name));
                                    view.kb_status = "kb: opening...".into();
                                } else {
                                    driver.engine.set_notice("the retriever is not local: its knowledge base lives in the pipeline", true);
                                }
                            }
                            Action::KbSearch(query) => {
                                if let Err(why) = search::start(&kb, local, query, &mut view, &search_tx) {
                                    driver.engine.set_notice(why, true);
                                }
                            }
                            Action::Quit => return Ok(Exit::Quit),
                        }
                    }
                    dirty = true;
                }
                Some(Ok(_)) => dirty = true,
                Some(Err(error)) => return Err(error.into()),
                // The terminal went away (SSH disconnect without SIGHUP).
                None => return Ok(Exit::Signal(1)),
            },
            Some(batch) = chunk_batches.recv() => {
                driver.apply(Input::Command(crate::engine::Command::EmbedChunks {
                    batch: batch.batch,
                    texts: batch.texts,
                }));
                dirty = true;
            }
            input = driver.next_input() => {
                driver.apply(input);
                dirty = true;
            }
            changed = kb_rx.changed(), if kb_pending => {
                if changed.is_err() {
                    kb_pending = false;
                }
                view.kb_status = match kb.state() {
                    KbState::Ready(base, IndexStats { documents, chunks, build_time }) => {
                        tracing::info!(
                            index_ms = build_time.as_secs_f64() * 1e3,
                            since_first_frame_ms = index_started.elapsed().as_secs_f64() * 1e3,
                            documents, chunks, "knowledge base ready"
                        );
                        format!("kb {} · {documents} docs", crate::sanitize::one_line(base.name()))
                    }
                    KbState::Failed(error) => format!("kb failed: {}", crate::sanitize::one_line(&error)),
                    KbState::Building => "kb: opening...".into(),
                };
                dirty = true;
            }
            Some(done) = search_rx.recv() => {
                dirty |= view.search_finished(done);
            }
            _ = tick.tick(), if busy => dirty = true,
            () = tokio::time::sleep_until(frame_at), if dirty => {}
            _ = sigterm.recv() => return Ok(Exit::Signal(15)),
            _ = sighup.recv() => return Ok(Exit::Signal(1)),
        }
        // Apply whatever else is already waiting before drawing once.
        while let Some(input) = driver.try_next_input() {
            driver.apply(input);
            dirty = true;
        }
        if dirty && Instant::now() >= last_draw + FRAME {
            terminal
                .draw(|frame| ui::draw(frame, &driver.engine, &view, Instant::now().into_std()))?;
            last_draw = Instant::now();
            dirty = false;
        }
    }
}
