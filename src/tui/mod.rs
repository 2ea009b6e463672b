//! The TUI loop: one `tokio::select!` over terminal events, task results (and
//! the engine's next deadline), the knowledge base becoming ready, finished
//! `/kb search`es, a redraw tick that only runs while requests are live, and
//! signals. It
//! drains what is ready, updates, and draws only when something changed, at
//! most one frame per 16 ms, so an idle TUI uses no CPU. It never awaits a
//! backend or the disk: those run as tasks and come back as inputs.
//!
//! The terminal is restored on every way out: normal quit, error, panic,
//! SIGINT, SIGQUIT, SIGTERM and SIGHUP (which save like a quit, then exit
//! 128 + N); SIGTSTP stops with the terminal restored, SIGCONT takes it
//! again and redraws (see [`terminal`]).

mod backend;
pub mod complete;
pub mod copy;
pub mod input;
pub mod keys;
pub mod mouse;
pub mod search;
pub mod sessions;
pub mod terminal;

/// What the key, input and completion tests start from: an engine with the
/// conversations `names` open (ids 1, 2, ...) and a plain view of the first.
#[cfg(test)]
pub(crate) fn test_view(names: &[&str]) -> (ViewState, crate::engine::Engine) {
    use crate::engine::workspace::ConversationId;
    let mut engine = crate::engine::Engine::new(
        crate::engine::EngineConfig::default(),
        std::time::Instant::now(),
        std::time::SystemTime::UNIX_EPOCH,
        1,
    );
    for (id, name) in (1..).zip(names) {
        assert!(engine.open_conversation(ConversationId(id), *name, Vec::new(), Vec::new()));
    }
    (ViewState::new(Theme::plain(), ConversationId(1)), engine)
}

use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backends::local::{IndexStats, KbHandle, KbState};
use crate::config::Config;
use crate::engine::workspace::ConversationId;
use crate::engine::{EngineConfig, Input};
use crate::ui::{self, Theme, ViewState};
use keys::Action;

const FRAME: Duration = Duration::from_millis(16);

/// The conversation shown until the session database has opened (no
/// session row has id 0; after that a conversation's id is its session's).
const FIRST_CONVERSATION: ConversationId = ConversationId(0);

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
    // The handlers first: no signal may find the terminal raw with its
    // default action still in place.
    let mut signals = terminal::Signals::new()?;
    crate::startup::mark("signal handlers");
    let mut tui = terminal::enter()?;
    crate::startup::mark("terminal modes");
    let mut telemetry = None;
    let result = run_inner(
        &mut tui,
        &mut signals,
        cfg,
        config,
        open_kb,
        started,
        &mut telemetry,
    )
    .await;
    terminal::restore();
    crate::startup::print_pending();
    // The driver (and its tap) is gone, so the queue is closed: send what
    // is in it, briefly.
    if let Some(exporter) = telemetry {
        exporter.shutdown(Duration::from_secs(2)).await;
    }
    result
}

async fn run_inner(
    terminal: &mut terminal::DefaultTerminal,
    signals: &mut terminal::Signals,
    cfg: EngineConfig,
    config: &Config,
    open_kb: KbOpener,
    started: std::time::Instant,
    telemetry: &mut Option<crate::telemetry::Exporter>,
) -> anyhow::Result<Exit> {
    let mut view = ViewState::new(Theme::from_env(), FIRST_CONVERSATION);
    // The user's keys ([keys], checked when the config was read).
    let (keymap, problems) = config.keys.keymap();
    view.keymap = keymap;
    for problem in problems {
        tracing::warn!(%problem, "key remap ignored");
    }
    view.ascii = config.ui.ascii;
    crate::startup::mark("view state");
    // The first frame goes out before any index work starts.
    // Backends are plugged in right after it; no input is handled before.
    let mut driver = crate::app::driver(cfg, crate::runtime::Backends::default());
    *telemetry = crate::telemetry::attach(&mut driver, config)?;
    // Everything the engine is given and does, for `/trace export`: spooled
    // to a file by a thread of its own (the TUI may run for days), started
    // after the first frame (its start, stack and malloc arena cost the
    // first frame time and memory); lines wait in its channel until then.
    let (recording, spool_writer) = crate::trace::Recording::spooled_later(
        &crate::logging::log_dir(),
        crate::trace::SPOOL_CAP_BYTES,
    );
    driver.add_tap(Box::new(crate::trace::Recorder::new(
        &driver.engine,
        recording.clone(),
    )));
    crate::startup::mark("engine and trace recorder");
    // The most recent session's newest messages, from the copy the last
    // run left or from its database when it is there and free: the first
    // frame shows them (else an empty placeholder, replaced once the
    // database has opened). A size that cannot be read reads the least.
    let db_path = crate::headless::sessions::db_path().ok();
    let first_screen = sessions::FirstScreen::of(terminal.size().unwrap_or_default(), &view);
    // The copy of this screen the last run left, if the database has not
    // changed since: shown in the placeholder, and the database opens
    // after the first frame (its session then takes the placeholder's
    // place). Else the database is read now, when it can be.
    let copy = sessions::read_screen(db_path.as_deref(), first_screen);
    crate::startup::mark("first screen's copy read");
    let (shown, early) = match copy {
        Some(data) => (Some((data, true)), None),
        None => match sessions::read_early(db_path.as_deref(), first_screen) {
            Some((early, data)) => (Some((data, false)), Some(early)),
            None => (None, None),
        },
    };
    match shown {
        Some((data, copied)) => {
            // As when the session opens after the first frame.
            driver
                .engine
                .set_notice(format!("session {:?}", data.session.name), false);
            view.session = data.session.name.clone();
            if copied {
                // What it left unsent waits for the database (`/resend`
                // there).
                crate::persist::open_as(&mut driver.engine, data, view.current, false);
            } else {
                view.current = crate::persist::open_in(&mut driver.engine, data, true);
            }
        }
        None => {
            driver.engine.open_conversation(
                view.current,
                view.session.clone(),
                Vec::new(),
                Vec::new(),
            );
        }
    }
    crate::startup::mark("session shown");
    terminal.draw(|frame| ui::draw(frame, &driver.engine, &view, Instant::now().into_std()))?;
    crate::startup::mark("first frame");
    // Sessions: the database opens on the blocking pool, first of all that
    // waited for the first frame (the session reopened is the next thing
    // drawn); what it answers comes back on this channel. Until it is open,
    // nothing is sent: a message is committed before it is sent.
    let (session_tx, mut session_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sessions = sessions::Sessions::start(db_path, early, session_tx.clone());
    // What waited for the first frame (the log writer, then the trace
    // spool's writer) starts now.
    crate::startup::first_frame_done();
    if let Err(error) = spool_writer.start() {
        tracing::warn!(%error, "trace spool not started: traces are marked incomplete");
    }
    let first_frame = started.elapsed();
    // After the first frame: pasted text arrives as one event (never sent
    // on its newlines). Terminals with the keyboard enhancement protocol
    // report Shift-Enter once the query below has found it (its flags are
    // pushed then). Both are undone on every way out.
    if let Err(error) = terminal::enable_bracketed_paste() {
        tracing::warn!(%error, "bracketed paste not enabled");
    }
    view.max_input = usize::try_from(config.ui.max_input).unwrap_or(usize::MAX);
    tracing::info!(
        first_frame_ms = first_frame.as_secs_f64() * 1e3,
        "first frame drawn"
    );
    if config.ui.mouse {
        terminal::enable_mouse_capture()?;
    }
    // The terminal queries that can stall go after the first frame and off
    // the loop; keys are read once they are answered (or timed out).
    let mut keyboard_query = Some(Box::pin(terminal::keyboard_enhancement_supported()));

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

    let (problem_tx, mut problem_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Written traces: the notice to show.
    let (trace_tx, mut trace_rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool)>();
    // Directories listed for Tab completion, and what `y` copied through
    // a clipboard tool (or why it could not be: OSC 52 then).
    let (listing_tx, mut listing_rx) =
        tokio::sync::mpsc::unbounded_channel::<(std::path::PathBuf, complete::Listing)>();
    type CopyResult = (copy::Copied, Result<&'static str, String>);
    let (copy_tx, mut copy_rx) = tokio::sync::mpsc::unbounded_channel::<CopyResult>();
    let mut data_version: Option<i64> = None;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    poll.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let export_dir = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));

    let mut events: Option<EventStream> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_draw = Instant::now();
    let mut dirty = false;
    let mut session_unavailable = false;
    // A question asked before the session was open, sent when it is.
    let mut send_when_open: Vec<String> = Vec::new();
    let mut scenarios_when_open: Vec<(String, Option<u64>)> = Vec::new();

    loop {
        let busy = driver.engine.is_busy();
        let frame_at = last_draw + FRAME;
        // The notice on screen times out then: wake to draw without it.
        let notice_expiry = view
            .notices
            .expiry(&driver.engine, Instant::now().into_std());
        tokio::select! {
            supported = async { match keyboard_query.as_mut() { Some(q) => q.await, None => std::future::pending().await } }, if keyboard_query.is_some() => {
                keyboard_query = None;
                if supported {
                    let flags = crossterm::event::KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES;
                    if let Err(error) = terminal::push_keyboard_flags(flags) {
                        tracing::warn!(%error, "keyboard enhancement not pushed");
                    }
                }
                tracing::info!(supported, "keyboard enhancement query answered");
                events = Some(EventStream::new());
            }
            event = async { match events.as_mut() { Some(e) => e.next().await, None => std::future::pending().await } }, if events.is_some() => match event {
                Some(Ok(Event::Mouse(m))) => {
                    let size = terminal.size()?;
                    let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
                    dirty |= mouse::on_mouse(m, area, &mut view, &driver.engine);
                }
                Some(Ok(Event::Key(key))) => {
                    let actions = keys::on_key(key, &mut view, &driver.engine);
                    for action in actions {
                        match action {
                            // A question is committed first, sent once stored
                            // (not into the placeholder shown until the
                            // session is loaded, which follows the open).
                            Action::Engine(crate::engine::Command::Ask { conversation, text, .. })
                                if sessions.is_ready() && conversation != FIRST_CONVERSATION =>
                            {
                                commit_question(conversation, text, &sessions, &kb, local, config, &mut view, &mut driver);
                            }
                            // A scenario asked before the session is open would
                            // start in the placeholder, whose work stops when
                            // the session replaces it: it starts there instead.
                            Action::Engine(crate::engine::Command::Scenario { conversation, prompt, seed })
                                if conversation == FIRST_CONVERSATION && !session_unavailable =>
                            {
                                scenarios_when_open.push((prompt, seed));
                                driver.engine.set_notice("the scenario starts once the session database has opened...", false);
                            }
                            Action::Engine(crate::engine::Command::Ask { text, .. })
                                if !session_unavailable =>
                            {
                                // Held (in order) and committed once the session
                                // is open, a moment after the first frame.
                                send_when_open.push(text);
                                let n = send_when_open.len();
                                driver.engine.set_notice(format!("{n} question(s): sending once the session database has opened..."), false);
                            }
                            Action::Engine(command) => driver.apply(Input::Command(command)),
                            Action::Session(line) => {
                                let result = session_line(line, &sessions, &mut view, &mut driver, &export_dir);
                                if let Err(why) = result {
                                    driver.engine.set_notice(why, true);
                                }
                            }
                            Action::RenameSession(id, name) => {
                                if let Err(why) = sessions.rename(crate::persist::conversation_of(id), name) {
                                    driver.engine.set_notice(why, true);
                                }
                            }
                            Action::ConfirmDelete => {
                                if let Some((id, name)) = view.confirm_delete.take() {
                                    let conversation = crate::persist::conversation_of(id);
                                    let open = conversation == view.current;
                                    // Its running and queued work stops first.
                                    let effects = driver.engine.close_conversation(conversation, Instant::now().into_std());
                                    driver.runtime.execute(effects);
                                    if let Err(why) = sessions.delete(id, open) {
                                        driver.engine.set_notice(why, true);
                                    } else {
                                        driver.engine.set_notice(format!("deleting session {name:?}..."), false);
                                    }
                                }
                            }
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
                            Action::TraceExport { file, redact } => {
                                let dir = export_dir.clone();
                                // Shared lines, not copies: cheap on the loop;
                                // the writing happens on the blocking pool.
                                let snapshot = crate::trace::Snapshot::take(&driver.engine, Some(&recording), crate::trace::backends_of(config), redact);
                                let tx = trace_tx.clone();
                                tokio::task::spawn_blocking(move || {
                                    // The name is picked here: it looks at the disk.
                                    let path = trace_path(&dir, file.as_deref());
                                    let shown = crate::sanitize::sanitize(&path.display().to_string());
                                    let notice = match snapshot.write_file(&path) {
                                        Ok(w) => (format!("trace written to {shown}: {} inputs and events, {} requests{}", w.inputs_and_events, w.requests, if w.restored > 0 { format!(" ({} restored from the session)", w.restored) } else { String::new() }), false),
                                        Err(e) => (format!("trace not written to {shown}: {e}"), true),
                                    };
                                    let _ = tx.send(notice);
                                });
                                driver.engine.set_notice("writing the trace...", false);
                            }
                            Action::ListDir(dir) => {
                                let tx = listing_tx.clone();
                                tokio::task::spawn_blocking(move || {
                                    let listing = complete::list_dir(&dir);
                                    let _ = tx.send((dir, listing));
                                });
                            }
                            Action::Copy(Err(why)) => driver.engine.set_notice(why, true),
                            Action::Copy(Ok(copied)) => {
                                // Finding and running a tool touches the
                                // disk: the blocking pool does it.
                                let tx = copy_tx.clone();
                                tokio::task::spawn_blocking(move || {
                                    let env = |k: &str| std::env::var(k).ok();
                                    let result = match copy::clipboard_tool(&env, &copy::on_path) {
                                        Some((tool, args)) => copy::run_tool(tool, args, &copied.text).map(|()| tool),
                                        None => Err(String::new()),
                                    };
                                    let _ = tx.send((copied, result));
                                });
                            }
                            Action::Quit => return Ok(leave(&mut driver, &sessions, terminal.size(), Exit::Quit)),
                        }
                    }
                    dirty = true;
                }
                Some(Ok(Event::Paste(text))) => {
                    if let Some((notice, is_error)) = input::paste(&text, &mut view) {
                        driver.engine.set_notice(notice, is_error);
                    }
                    dirty = true;
                }
                Some(Ok(_)) => dirty = true,
                Some(Err(error)) => return Err(error.into()),
                // The terminal went away (SSH disconnect without SIGHUP).
                None => return Ok(leave(&mut driver, &sessions, terminal.size(), Exit::Signal(1))),
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
            Some(event) = session_rx.recv() => {
                let placeholder = view.current == FIRST_CONVERSATION;
                on_session_event(event, &mut sessions, &mut view, &mut driver, &problem_tx, &mut session_unavailable, &mut data_version);
                // The session reopened at start is drawn at once, not a
                // frame interval after the first (empty) frame: one frame
                // early, once.
                if placeholder && view.current != FIRST_CONVERSATION {
                    last_draw = last_draw.checked_sub(FRAME).unwrap_or(last_draw);
                }
                // Questions asked while the database opened go now, in order
                // (with no database, unsaved, as any question then).
                if sessions.is_ready() && view.current != FIRST_CONVERSATION {
                    for text in std::mem::take(&mut send_when_open) {
                        commit_question(view.current, text, &sessions, &kb, local, config, &mut view, &mut driver);
                    }
                } else if session_unavailable {
                    for text in std::mem::take(&mut send_when_open) {
                        driver.apply(Input::Command(crate::engine::Command::Ask { conversation: view.current, text, tag: None }));
                    }
                }
                // Scenarios asked meanwhile start in the session now open
                // (or, with no database, in the unsaved conversation).
                if (sessions.is_ready() && view.current != FIRST_CONVERSATION) || session_unavailable {
                    for (prompt, seed) in scenarios_when_open.drain(..) {
                        driver.apply(Input::Command(crate::engine::Command::Scenario {
                            conversation: view.current,
                            prompt,
                            seed,
                        }));
                    }
                }
                dirty = true;
            }
            Some((dir, listing)) = listing_rx.recv() => {
                view.dir_cache.insert(dir, listing);
                for action in keys::tab(&mut view, &driver.engine, false) {
                    if let Action::Notice(text, is_error) = action {
                        driver.engine.set_notice(text, is_error);
                    }
                }
                dirty = true;
            }
            Some((copied, result)) = copy_rx.recv() => {
                let how = match result {
                    Ok(tool) => tool.to_owned(),
                    Err(why) => {
                        if !why.is_empty() {
                            tracing::warn!(%why, "clipboard tool failed; OSC 52 instead");
                        }
                        // Between frames, through the terminal's writer.
                        copy::write_osc52(terminal.backend_mut(), &copied.text)?;
                        "OSC 52".to_owned()
                    }
                };
                driver.engine.set_notice(copied.notice(&how), false);
                dirty = true;
            }
            Some((notice, is_error)) = trace_rx.recv() => {
                driver.engine.set_notice(notice, is_error);
                dirty = true;
            }
            Some(problem) = problem_rx.recv() => {
                driver.engine.set_notice(problem, true);
                dirty = true;
            }
            _ = poll.tick(), if sessions.is_ready() => {
                // Another process may have added turns to this session.
                let idle = driver.engine.conversation(view.current).is_some_and(|c| c.running.is_none() && c.queue.is_empty());
                if idle {
                    sessions.poll(view.current, data_version);
                }
            }
            _ = tick.tick(), if busy => dirty = true,
            () = tokio::time::sleep_until(notice_expiry.map_or(frame_at, Instant::from_std)), if notice_expiry.is_some() => dirty = true,
            () = tokio::time::sleep_until(frame_at), if dirty => {}
            // Returning is the quit path: the caller restores the
            // terminal, and dropping the loop's state drains every save
            // already queued (the session store joins its thread).
            signal = signals.recv() => match signal {
                terminal::SignalEvent::Exit(n) => return Ok(leave(&mut driver, &sessions, terminal.size(), Exit::Signal(n))),
                terminal::SignalEvent::Suspend => {
                    terminal::suspend(terminal)?;
                    dirty = true;
                }
                terminal::SignalEvent::Continued => {
                    terminal::continued(terminal)?;
                    dirty = true;
                }
            },
        }
        // Apply whatever else is already waiting before drawing once.
        while let Some(input) = driver.try_next_input() {
            driver.apply(input);
            dirty = true;
        }
        if dirty && Instant::now() >= last_draw + FRAME {
            view.notices
                .observe(&driver.engine, Instant::now().into_std());
            terminal
                .draw(|frame| ui::draw(frame, &driver.engine, &view, Instant::now().into_std()))?;
            last_draw = Instant::now();
            dirty = false;
        }
    }
}

/// The way out of the loop, for a quit and a signal alike: whatever is not
/// saved yet (a streaming reply's latest text, request summaries waiting
/// for their batch) is queued for the session store, which finishes every
/// queued job when the loop's state is dropped.
fn leave(
    driver: &mut crate::runtime::Driver,
    sessions: &sessions::Sessions,
    size: std::io::Result<ratatui::layout::Size>,
    exit: Exit,
) -> Exit {
    let saves = driver.engine.pending_saves();
    driver.runtime.execute(saves);
    // Then, last, the copy of the next start's first screen: for this
    // terminal, as a fresh view lays it out.
    if let Ok(size) = size {
        sessions.save_screen(sessions::FirstScreen::at_start(size));
    }
    exit
}

/// Run a `/session` line against the database (results come back as
/// [`sessions::SessionEvent`]s).
fn session_line(
    line: crate::engine::command::SessionLine,
    sessions: &sessions::Sessions,
    view: &mut ViewState,
    driver: &mut crate::runtime::Driver,
    export_dir: &std::path::Path,
) -> Result<(), String> {
    use crate::engine::command::SessionLine;
    match line {
        SessionLine::New(name) => sessions.create(name),
        SessionLine::Open(name) => sessions.open(name),
        SessionLine::Rename(name) => sessions.rename(view.current, name),
        SessionLine::Delete(name) => {
            // Asks first; `y` confirms (see `Action::ConfirmDelete`).
            let target = driver
                .engine
                .conversations()
                .find(|(_, c)| c.name == name)
                .map(|(id, _)| crate::persist::session_of(id));
            match target {
                Some(id) => {
                    view.confirm_delete = Some((id, name));
                    Ok(())
                }
                None => {
                    // Not open here: list to find it, then ask.
                    view.pending_delete = Some(name);
                    sessions.list()
                }
            }
        }
        SessionLine::List => sessions.list(),
        SessionLine::Export { json } => {
            sessions.export(view.current, json, export_dir.to_path_buf())
        }
    }
}

/// Apply what the session database answered.
fn on_session_event(
    event: sessions::SessionEvent,
    sessions: &mut sessions::Sessions,
    view: &mut ViewState,
    driver: &mut crate::runtime::Driver,
    problems: &tokio::sync::mpsc::UnboundedSender<String>,
    unavailable: &mut bool,
    data_version: &mut Option<i64>,
) {
    use crate::persist::RestoredRest;
    use sessions::SessionEvent;
    let engine = &mut driver.engine;
    match event {
        SessionEvent::Ready(store, notice) => {
            driver.runtime.set_persister(crate::persist::Persister::new(
                store.clone(),
                problems.clone(),
            ));
            sessions.set_store(store);
            if let Some(notice) = notice {
                driver.engine.set_notice(notice, true);
            }
            // For completing /session open|rename|delete NAME.
            let _ = sessions.names();
        }
        SessionEvent::Damaged => {
            // What is shown came from the damaged file (moved aside now).
            if view.current != FIRST_CONVERSATION && engine.conversation(view.current).is_some() {
                let effects = engine.close_conversation(view.current, Instant::now().into_std());
                driver.runtime.execute(effects);
            }
        }
        SessionEvent::Unavailable(why) => {
            *unavailable = true;
            engine.set_notice(format!("sessions are not saved: {why}"), true);
        }
        SessionEvent::Open(data, note) => {
            let conversation = crate::persist::conversation_of(data.session.id);
            let name = data.session.name.clone();
            if engine.conversation(conversation).is_none() {
                // Its inspector history, as it was when it ran.
                let requests = crate::persist::restored_requests(&data);
                crate::persist::open_in(engine, *data, true);
                engine.restore_requests(requests);
            }
            // The placeholder shown before the database opened goes.
            if view.current == FIRST_CONVERSATION && conversation != FIRST_CONVERSATION {
                let effects =
                    engine.close_conversation(FIRST_CONVERSATION, Instant::now().into_std());
                driver.runtime.execute(effects);
            }
            view.current = conversation;
            view.chat_scroll = 0;
            let note = note.unwrap_or_else(|| format!("session {name:?}"));
            view.session = name;
            driver.engine.set_notice(note, false);
        }
        SessionEvent::Rest { rest, first, note } => {
            let RestoredRest {
                conversation,
                messages,
                unsent,
                requests,
            } = *rest;
            // Only onto the tail it was read with (not onto a conversation
            // replaced meanwhile, which holds the whole session).
            let shown_first = engine
                .conversation(conversation)
                .map(|c| c.messages.first().and_then(|m| m.tag));
            if shown_first != Some(first) {
                return;
            }
            match engine.prepend_messages(conversation, messages, unsent) {
                Ok(count) => {
                    // The chat counts its scroll from the newest line: it
                    // stays where it was; a selection moves with its message.
                    if view.current == conversation
                        && let Some(selected) = &mut view.chat_selected
                    {
                        *selected += count;
                    }
                    engine.restore_requests(requests);
                    if let Some(note) = note {
                        engine.set_notice(note, false);
                    }
                }
                Err(crate::engine::workspace::Prepend::TurnRunning(messages, unsent)) => {
                    let rest = Box::new(RestoredRest {
                        conversation,
                        messages,
                        unsent,
                        requests,
                    });
                    sessions.again_later(
                        SessionEvent::Rest { rest, first, note },
                        Duration::from_millis(100),
                    );
                }
                Err(crate::engine::workspace::Prepend::NotOpen) => {}
            }
        }
        SessionEvent::Committed {
            conversation,
            text,
            result,
        } => match result {
            Ok(tag) => driver.apply(Input::Command(crate::engine::Command::Ask {
                conversation,
                text,
                tag: Some(tag),
            })),
            Err(why) => {
                // Nothing acknowledged is lost: the text goes back.
                view.input = ratatui_textarea::TextArea::from(text.lines());
                engine.set_notice(format!("not sent: {why}"), true);
            }
        },
        SessionEvent::Listed(list) => {
            if let Some(name) = view.pending_delete.take() {
                match list.iter().find(|s| s.name == name) {
                    Some(s) => view.confirm_delete = Some((s.id, name)),
                    None => engine.set_notice(format!("no session named {name:?}"), true),
                }
            } else {
                // `/session list` and Ctrl-O both show the picker.
                let picker = view.picker.get_or_insert_with(Default::default);
                picker.sessions = Some(list);
            }
        }
        SessionEvent::Renamed { conversation, name } => {
            engine.rename_conversation(conversation, name.clone());
            if conversation == view.current {
                view.session = name.clone();
            }
            engine.set_notice(format!("renamed to {name:?}"), false);
            let _ = sessions.names();
        }
        SessionEvent::Deleted(report) => {
            engine.set_notice(report.message(), false);
            let _ = sessions.names();
        }
        SessionEvent::Names(names) => view.session_names = names,
        SessionEvent::Exported(path) => {
            engine.set_notice(format!("session exported to {}", path.display()), false)
        }
        SessionEvent::Polled { version, changed } => {
            let first = data_version.is_none();
            *data_version = Some(version);
            if let (false, Some(data)) = (first, changed) {
                // Another process added turns: show the session as stored,
                // if nothing is running here meanwhile.
                let conversation = crate::persist::conversation_of(data.session.id);
                let idle = engine
                    .conversation(conversation)
                    .is_some_and(|c| c.running.is_none() && c.queue.is_empty());
                if idle && conversation == view.current {
                    let effects =
                        engine.close_conversation(conversation, Instant::now().into_std());
                    driver.runtime.execute(effects);
                    crate::persist::open_in(&mut driver.engine, *data, true);
                }
            }
        }
        SessionEvent::Problem(why) => engine.set_notice(why, true),
    }
}

/// Where `/trace export` writes: FILE as given (`~/` expanded, relative to
/// the directory loreweave started in), else a new timestamped file there.
fn trace_path(dir: &std::path::Path, file: Option<&str>) -> std::path::PathBuf {
    match file {
        Some(file) => {
            let expanded = match file.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME")
                    .map(|home| std::path::PathBuf::from(home).join(rest))
                    .unwrap_or_else(|| std::path::PathBuf::from(file)),
                None => std::path::PathBuf::from(file),
            };
            dir.join(expanded)
        }
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut n = 0;
            loop {
                let name = if n == 0 {
                    format!("loreweave-trace-{secs}.jsonl")
                } else {
                    format!("loreweave-trace-{secs}-{n}.jsonl")
                };
                let path = dir.join(name);
                if !path.exists() {
                    return path;
                }
                n += 1;
            }
        }
    }
}

/// Commit a question to the session database; it is sent once stored. On
/// failure it goes back into the input with the reason.
#[allow(clippy::too_many_arguments)] // the loop's parts it needs, no more
fn commit_question(
    conversation: ConversationId,
    text: String,
    sessions: &sessions::Sessions,
    kb: &KbHandle,
    local: bool,
    config: &Config,
    view: &mut ViewState,
    driver: &mut crate::runtime::Driver,
) {
    let kb_name = match kb.state() {
        KbState::Ready(base, _) if local => Some(base.name().to_owned()),
        _ if !local => Some(format!("pipeline:{}", config.retriever.name())),
        _ => None,
    };
    let model = crate::app::model_name(config);
    if let Err(why) = sessions.commit(conversation, text.clone(), kb_name, model) {
        view.input = ratatui_textarea::TextArea::from(text.lines());
        driver.engine.set_notice(format!("not sent: {why}"), true);
    }
}
