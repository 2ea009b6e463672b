//! Snapshots of every pane and overlay, drawn with ratatui's TestBackend
//! from an engine driven by hand under a fake clock, with real lore and the
//! real offline generator (so the snapshots show what a person sees).

use std::time::{Duration, Instant, SystemTime};

use loreweave::backends::offline::{OfflineModel, Tables};
use loreweave::engine::request::RequestId;
use loreweave::engine::workspace::ConversationId;
use loreweave::engine::{Call, Command, Effect, Engine, EngineConfig, Input};
use loreweave::kb::{KnowledgeBase, embedded_lore};
use loreweave::ui::{self, Focus, Theme, ViewState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// The conversation on screen.
const C: ConversationId = ConversationId(1);

/// What the runtime would act on: the persistence effects go to the store,
/// not back into the engine, so they take no (fake) time here.
fn work(effects: Vec<Effect>) -> Vec<Effect> {
    effects
        .into_iter()
        .filter(|e| {
            !matches!(
                e,
                Effect::SaveReply { .. } | Effect::SaveRequests(_) | Effect::SaveScenario { .. }
            )
        })
        .collect()
}

struct Scene {
    engine: Engine,
    view: ViewState,
    kb: KnowledgeBase,
    model: OfflineModel,
    t0: Instant,
}

impl Scene {
    fn new() -> Self {
        Self::with(EngineConfig::default())
    }

    fn with(cfg: EngineConfig) -> Self {
        let t0 = Instant::now();
        let mut view = ViewState::new(Theme::plain(), C);
        view.kb_status = "kb sample · 32 docs".into();
        let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 42);
        assert!(engine.open_conversation(C, "default", Vec::new(), Vec::new()));
        Self {
            engine,
            view,
            kb: KnowledgeBase::build(embedded_lore()).expect("kb builds"),
            model: OfflineModel::new(std::sync::Arc::new(Tables::embedded().expect("tables"))),
            t0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Carry out effects the way the runtime would, synchronously.
    fn run(&mut self, effects: Vec<Effect>, mut ms: u64) {
        let mut queue = work(effects);
        while let Some(effect) = queue.pop() {
            ms += 3;
            let input = match effect {
                Effect::Dispatch { id, backend, call } => match call {
                    Call::Retrieve(q) => Input::Retrieved {
                        id,
                        backend,
                        result: Ok(self.kb.search(&q.query, q.top_k).expect("search")),
                    },
                    // No embeddings backend in these scenes.
                    Call::Embed(_) | Call::Ingest(_) => continue,
                    Call::Generate(task) => {
                        let text = self.model.render(&task);
                        let now = self.at(ms);
                        self.engine.handle(
                            Input::Token {
                                id,
                                backend: backend.clone(),
                                text,
                            },
                            now,
                        );
                        ms += 5;
                        Input::Finished {
                            id,
                            backend,
                            result: Ok(()),
                        }
                    }
                },
                _ => continue,
            };
            let now = self.at(ms);
            queue.extend(work(self.engine.handle(input, now)));
        }
    }

    fn command(&mut self, command: Command, ms: u64) {
        let now = self.at(ms);
        let fx = self.engine.handle(Input::Command(command), now);
        self.run(fx, ms);
    }

    fn draw(&self, width: u16, height: u16, ms: u64) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal
            .draw(|frame| ui::draw(frame, &self.engine, &self.view, self.at(ms)))
            .expect("draw");
        terminal.backend().to_string()
    }
}

#[test]
fn main_screen_before_anything() {
    let scene = Scene::new();
    insta::assert_snapshot!(scene.draw(120, 40, 0));
}

#[test]
fn main_screen_after_a_scenario_and_a_question() {
    let scene = busy_scene();
    insta::assert_snapshot!(scene.draw(120, 40, 3_000));
}

#[test]
fn a_scenario_in_flight_shows_live_rows_with_elapsed_against_deadline() {
    let mut scene = Scene::new();
    let now = scene.at(0);
    let fx = scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "an ambush at the bridge".into(),
            seed: Some(5),
        }),
        now,
    );
    assert_eq!(fx.len(), 1, "one retrieval dispatched");
    scene.view.focus = Focus::Lifecycle;
    insta::assert_snapshot!(scene.draw(120, 40, 2_500));
}

#[test]
fn late_drop_and_fallback_are_visible() {
    let mut scene = Scene::new();
    let fx = scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "the first encounter".into(),
            seed: Some(9),
        }),
        scene.at(0),
    );
    let Some(Effect::Dispatch { id: retrieve, .. }) = fx.first().cloned() else {
        panic!("retrieval expected");
    };
    // The retriever hangs: at 10 s the engine times it out and generates without lore.
    let fx = scene.engine.handle(Input::Tick, scene.at(10_000));
    scene.run(fx, 10_000);
    // Its answer shows up late and is dropped.
    scene.engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![]),
        },
        scene.at(12_000),
    );
    let _: RequestId = retrieve;
    insta::assert_snapshot!(scene.draw(120, 40, 12_500));
}

/// The help overlay's columns as drawn: for each column, its rows joined
/// with whitespace collapsed (so a description wrapped over several rows
/// reads as one line). Columns are told apart by the `│` between them.
fn help_columns(screen: &str) -> Vec<String> {
    let rows: Vec<Vec<char>> = screen
        .lines()
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            // Each row is printed in quotes.
            chars[1..chars.len() - 1].to_vec()
        })
        .collect();
    let top = rows
        .iter()
        .position(|r| r.iter().collect::<String>().contains("┌ Keys"))
        .expect("the help overlay is open");
    let left = rows[top]
        .windows(6)
        .position(|w| w.iter().collect::<String>() == "┌ Keys")
        .expect("corner");
    let right = left
        + rows[top][left..]
            .iter()
            .position(|c| *c == '┐')
            .expect("corner");
    let bottom = top
        + rows[top..]
            .iter()
            .position(|r| r.get(left) == Some(&'└'))
            .expect("bottom border");
    let mut columns: Vec<Vec<String>> = Vec::new();
    for row in &rows[top + 1..bottom] {
        let inside: String = row[left + 1..right].iter().collect();
        for (i, cell) in inside.split('│').enumerate() {
            if columns.len() <= i {
                columns.push(Vec::new());
            }
            columns[i].push(cell.to_string());
        }
    }
    columns
        .into_iter()
        .map(|rows| collapse(&rows.join(" ")))
        .collect()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every binding and command as the overlay should show it: keys, then what
/// they do.
fn every_help_entry(view: &ViewState) -> Vec<String> {
    let mut entries: Vec<String> = view
        .keymap
        .bindings()
        .iter()
        .map(|b| collapse(&format!("{} {}", b.keys_label(), b.description)))
        .collect();
    entries.extend(
        loreweave::keymap::COMMANDS
            .iter()
            .map(|c| collapse(&format!("{} {}", c.syntax, c.description))),
    );
    entries
}

/// Draw the help at every scroll position; the text of every column at
/// every position.
fn help_at_every_scroll(scene: &mut Scene, width: u16, height: u16) -> Vec<String> {
    scene.view.help = true;
    scene.view.help_scroll = 0;
    let mut seen = help_columns(&scene.draw(width, height, 0));
    let max = scene.view.help_max_scroll.get();
    for scroll in 1..=max {
        scene.view.help_scroll = scroll;
        seen.extend(help_columns(&scene.draw(width, height, 0)));
    }
    // Past the end it stays at the end.
    scene.view.help_scroll = max + 5;
    let past = help_columns(&scene.draw(width, height, 0));
    scene.view.help_scroll = max;
    assert_eq!(past, help_columns(&scene.draw(width, height, 0)));
    seen
}

#[test]
fn help_overlay_shows_every_binding_at_every_size() {
    let mut scene = Scene::new();
    let entries = every_help_entry(&scene.view);
    assert!(entries.len() > 50, "{} entries", entries.len());
    for (width, height) in [
        (200, 50),
        (160, 48),
        (150, 30),
        (120, 40),
        (100, 30),
        (80, 24),
        (60, 20),
        (40, 15),
    ] {
        let seen = help_at_every_scroll(&mut scene, width, height);
        for entry in &entries {
            assert!(
                seen.iter().any(|column| column.contains(entry.as_str())),
                "at {width}x{height} the help never shows {entry:?}"
            );
        }
    }
}

#[test]
fn help_overlay_200x82_two_columns() {
    let mut scene = Scene::new();
    scene.view.help = true;
    // Since the input and copy keys came, the two columns are ~78 rows: at
    // 200x82 they fit whole; smaller sizes scroll (every size is checked
    // above).
    let screen = scene.draw(200, 82, 0);
    // Both columns whole: nothing to scroll, the overlay's last rows shown.
    assert_eq!(scene.view.help_max_scroll.get(), 0, "{screen}");
    assert!(screen.contains("/chaos BACKEND latency 12s"), "{screen}");
    assert!(
        screen.contains("/breaker open|close|auto BACKEND"),
        "{screen}"
    );
    assert!(screen.contains("close the waterfall"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn help_overlay_wide_uses_two_columns() {
    let mut scene = Scene::new();
    scene.view.help = true;
    let screen = scene.draw(160, 48, 0);
    assert_eq!(help_columns(&screen).len(), 2, "two columns: {screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn help_overlay_120x40() {
    let mut scene = Scene::new();
    scene.view.help = true;
    insta::assert_snapshot!(scene.draw(120, 40, 0));
}

#[test]
fn help_overlay_80x24_top() {
    let mut scene = Scene::new();
    scene.view.help = true;
    let top = scene.draw(80, 24, 0);
    assert!(top.contains("Anywhere"), "{top}");
    assert!(top.contains("Ctrl-C"), "{top}");
    insta::assert_snapshot!(top);
}

#[test]
fn help_overlay_80x24_end() {
    let mut scene = Scene::new();
    scene.view.help = true;
    scene.draw(80, 24, 0);
    // The End key scrolls to the limit the last draw computed.
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let actions = loreweave::tui::keys::on_key(
        KeyEvent::new(KeyCode::End, KeyModifiers::NONE),
        &mut scene.view,
        &scene.engine,
    );
    assert!(actions.is_empty());
    assert!(scene.view.help_scroll > 0);
    let end = scene.draw(80, 24, 0);
    assert!(end.contains("Search results overlay"), "{end}");
    assert!(
        end.contains("back from an open passage to the results, else close"),
        "the last binding: {end}"
    );
    insta::assert_snapshot!(end);
}

#[test]
fn a_narrow_status_bar_drops_the_least_useful_hints_first() {
    let scene = Scene::new();
    let status = |width| {
        let screen = scene.draw(width, 24, 0);
        screen.lines().last().unwrap_or_default().to_string()
    };
    let wide = status(120);
    assert!(wide.contains("Enter send · Tab panes · F1 help"), "{wide}");
    // The session and RAG go first, then hints from the end down to the
    // most useful one, then the knowledge base in use.
    let eighty = status(80);
    assert!(eighty.contains("kb sample · 32 docs"), "{eighty}");
    assert!(eighty.contains("Enter send"), "{eighty}");
    assert!(!eighty.contains("F1 help"), "{eighty}");
    let narrow = status(60);
    assert!(narrow.contains("local ● offline ●"), "{narrow}");
    assert!(narrow.contains("Enter send"), "{narrow}");
    assert!(!narrow.contains("Tab panes"), "{narrow}");
    let tiny = status(40);
    assert!(tiny.contains("local ● offline ●"), "{tiny}");
    assert!(!tiny.contains("Tab panes"), "{tiny}");
}

#[test]
fn waterfall_of_a_chat_turn_opened_from_the_table() {
    let mut scene = Scene::new();
    scene.command(
        Command::Ask {
            conversation: C,
            text: "who guards the waystone?".into(),
            tag: None,
        },
        100,
    );
    scene.view.focus = Focus::Lifecycle;
    press(&mut scene, crossterm::event::KeyCode::Down);
    press(&mut scene, crossterm::event::KeyCode::Enter);
    let open = scene.view.waterfall.expect("Enter opens the waterfall");
    assert_eq!(open.selected, 1, "the selected row's bar is selected");
    insta::assert_snapshot!(scene.draw(120, 40, 1_000));
}

#[test]
fn small_terminal_80x24() {
    let mut scene = Scene::new();
    scene.command(
        Command::Scenario {
            conversation: C,
            prompt: "the first encounter".into(),
            seed: None,
        },
        100,
    );
    insta::assert_snapshot!(scene.draw(80, 24, 1_000));
}

#[test]
fn lifecycle_header_shows_breakers_queue_depth_and_chaos() {
    use loreweave::domain::{BackendError, ChaosMode};
    use loreweave::engine::breaker::Force;
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.concurrency = 1;
    cfg.retrieval_policy.retry.max_retries = 0;
    cfg.chat_policy.breaker_failures = 1;
    let mut scene = Scene::with(cfg);
    // One retrieval in flight, two waiting for the single slot.
    let mut first = None;
    for (n, prompt) in ["a ford at dusk", "a burning mill", "the last bridge"]
        .iter()
        .enumerate()
    {
        let fx = scene.engine.handle(
            Input::Command(Command::Scenario {
                conversation: C,
                prompt: (*prompt).into(),
                seed: Some(n as u64),
            }),
            scene.at(n as u64 * 100),
        );
        if let Some(Effect::Dispatch { id, .. }) = fx.first() {
            first.get_or_insert(*id);
        }
    }
    // The generator fails once: its breaker (threshold 1) opens.
    let fx = scene.engine.handle(
        Input::Retrieved {
            id: first.expect("one dispatched"),
            backend: "local".into(),
            result: Err(BackendError::transient("HTTP 503")),
        },
        scene.at(400),
    );
    for effect in fx {
        if let Effect::Dispatch {
            id,
            call: Call::Generate(_),
            ..
        } = effect
        {
            scene.engine.handle(
                Input::Finished {
                    id,
                    backend: "offline".into(),
                    result: Err(BackendError::transient("model overloaded")),
                },
                scene.at(500),
            );
        }
    }
    scene.engine.handle(
        Input::Command(Command::Chaos {
            backend: Some("local".into()),
            mode: Some(ChaosMode::Latency(Duration::from_secs(12))),
        }),
        scene.at(600),
    );
    scene.engine.handle(
        Input::Command(Command::ForceBreaker {
            backend: "local".into(),
            force: Force::Closed,
        }),
        scene.at(700),
    );
    scene.engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "who keeps the ford?".into(),
            tag: None,
        }),
        scene.at(800),
    );
    scene.engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "and the mill?".into(),
            tag: None,
        }),
        scene.at(900),
    );
    scene.view.focus = Focus::Lifecycle;
    insta::assert_snapshot!(scene.draw(120, 40, 1_500));
}

#[test]
fn citation_overlay_opens_the_cited_passage() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut scene = Scene::new();
    scene.command(
        Command::Ask {
            conversation: C,
            text: "who guards the waystone?".into(),
            tag: None,
        },
        100,
    );
    scene.view.focus = Focus::Chat;
    let actions = loreweave::tui::keys::on_key(
        KeyEvent::new(KeyCode::Char('1'), KeyModifiers::NONE),
        &mut scene.view,
        &scene.engine,
    );
    assert!(actions.is_empty());
    assert!(scene.view.citation.is_some(), "digit 1 opens citation [1]");
    let screen = scene.draw(120, 40, 1_000);
    assert!(screen.contains("[1] The Shattered Waystone"), "{screen}");
    insta::assert_snapshot!(screen);
}

/// The `/kb search` overlay for `query`, filled with what the scene's lore
/// finds, as the TUI loop would fill it.
fn search(scene: &mut Scene, query: &str) {
    use loreweave::ui::{Found, SEARCH_TOP_K, SearchDone};
    let seq = scene.view.open_search(query.into());
    let passages = scene.kb.search(query, SEARCH_TOP_K).expect("search");
    assert!(scene.view.search_finished(SearchDone {
        seq,
        result: Ok(Found {
            kb: "sample".into(),
            passages,
        }),
    }));
}

fn press(scene: &mut Scene, code: crossterm::event::KeyCode) {
    use crossterm::event::{KeyEvent, KeyModifiers};
    let actions = loreweave::tui::keys::on_key(
        KeyEvent::new(code, KeyModifiers::NONE),
        &mut scene.view,
        &scene.engine,
    );
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn kb_search_results_120x40() {
    let mut scene = Scene::new();
    search(&mut scene, "who guards the waystone");
    let screen = scene.draw(120, 40, 0);
    assert!(screen.contains("\"who guards the waystone\""), "{screen}");
    assert!(
        screen.contains("shattered-waystone.md › lines 7-9"),
        "{screen}"
    );
    assert!(
        screen.contains("▸   1"),
        "the first row is selected: {screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn kb_search_results_80x24_follow_the_selection() {
    use crossterm::event::KeyCode;
    let mut scene = Scene::new();
    search(&mut scene, "who guards the waystone");
    let count = scene.view.search.as_ref().map_or(0, |s| s.passages().len());
    assert!(count > 8, "{count} passages: more than fit");
    press(&mut scene, KeyCode::End);
    let screen = scene.draw(80, 24, 0);
    assert!(
        screen.contains(&format!("▸ {count:>3}")),
        "the last row is selected and on screen: {screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn kb_search_passage_120x40() {
    use crossterm::event::KeyCode;
    let mut scene = Scene::new();
    search(&mut scene, "who guards the waystone");
    press(&mut scene, KeyCode::Enter);
    let screen = scene.draw(120, 40, 0);
    assert!(screen.contains("#1 The Shattered Waystone"), "{screen}");
    assert!(
        screen.contains("shattered-waystone.md › lines 7-9 · score"),
        "{screen}"
    );
    assert!(screen.contains("Warden Tamsin Orrel"), "{screen}");
    insta::assert_snapshot!(screen);
    // Esc goes back to the list, as it was.
    press(&mut scene, KeyCode::Esc);
    assert!(scene.draw(120, 40, 0).contains("▸   1"));
}

#[test]
fn kb_search_passage_80x24() {
    use crossterm::event::KeyCode;
    let mut scene = Scene::new();
    search(&mut scene, "who guards the waystone");
    press(&mut scene, KeyCode::Down);
    press(&mut scene, KeyCode::Enter);
    let screen = scene.draw(80, 24, 0);
    assert!(screen.contains("Search result 2 of"), "{screen}");
    assert!(screen.contains("#2 "), "{screen}");
    assert!(screen.contains("↑↓ scroll · Esc back"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn kb_search_passage_scrolls_when_it_does_not_fit() {
    use crossterm::event::KeyCode;
    let mut scene = Scene::new();
    search(&mut scene, "who guards the waystone");
    press(&mut scene, KeyCode::Enter);
    let top = scene.draw(60, 18, 0);
    assert!(top.contains("#1 The Shattered Waystone"), "{top}");
    assert!(!top.contains("felled giant."), "{top}");
    assert!(scene.view.passage_max_scroll.get() > 0, "{top}");
    press(&mut scene, KeyCode::End);
    let end = scene.draw(60, 18, 0);
    assert!(
        !end.contains("#1 The Shattered Waystone"),
        "scrolled: {end}"
    );
    assert!(end.contains("felled giant."), "the end is on screen: {end}");
    // Past the end it stays at the end.
    press(&mut scene, KeyCode::Down);
    assert_eq!(scene.draw(60, 18, 0), end);
}

#[test]
fn kb_search_with_no_match_says_so() {
    let mut scene = Scene::new();
    search(&mut scene, "xyzzyplugh");
    let screen = scene.draw(80, 24, 0);
    assert!(
        screen.contains("no passage matches \"xyzzyplugh\" in kb sample"),
        "{screen}"
    );
    // Untrusted query text is shown sanitised.
    scene.view.search = None;
    search(&mut scene, "evil\x1b]0;pwned\x07 query");
    let screen = scene.draw(80, 24, 0);
    assert!(!screen.contains('\x1b'), "{screen}");
    assert!(screen.contains("no passage matches"), "{screen}");
}

fn sessions_for_picker() -> Vec<loreweave::store::SessionSummary> {
    // Fixed times long past, so "last activity" prints a date, not "just now".
    [
        (3, "Ashford campaign", 42, 1_767_225_600_000),
        (2, "one-shot: the Glasswaste", 7, 1_764_547_200_000),
        (1, "notes \u{1b}[31mred", 0, 1_761_955_200_000),
    ]
    .into_iter()
    .map(
        |(id, name, messages, updated_ms)| loreweave::store::SessionSummary {
            id,
            name: name.into(),
            messages,
            updated_ms,
            kb: None,
        },
    )
    .collect()
}

#[test]
fn session_picker_lists_filters_and_sanitises() {
    let mut scene = Scene::new();
    scene.view.picker = Some(loreweave::ui::SessionPicker {
        filter: String::new(),
        selected: 1,
        sessions: Some(sessions_for_picker()),
    });
    let screen = scene.draw(120, 40, 0);
    assert!(!screen.contains('\u{1b}'), "an escape reached the screen");
    insta::assert_snapshot!("session_picker", screen);
    // Typing filters: only matching names stay, the selection follows.
    if let Some(picker) = scene.view.picker.as_mut() {
        picker.filter = "glass".into();
        picker.selected = 0;
    }
    let filtered = scene.draw(120, 40, 0);
    assert!(filtered.contains("one-shot: the Glasswaste"), "{filtered}");
    assert!(!filtered.contains("Ashford campaign"), "{filtered}");
    insta::assert_snapshot!("session_picker_filtered", filtered);
}

#[test]
fn session_rename_prompt_and_delete_confirmation() {
    let mut scene = Scene::new();
    scene.view.rename = Some((3, "Ashford campaign".into(), "Ashford, year two".into()));
    insta::assert_snapshot!("session_rename_prompt", scene.draw(80, 24, 0));
    scene.view.rename = None;
    scene.view.confirm_delete = Some((3, "Ashford campaign".into()));
    insta::assert_snapshot!("session_delete_confirmation", scene.draw(80, 24, 0));
}

// --- Frame cost: what the caches draw must be what a fresh render draws ---

/// `scene` drawn with `view` (its caches as they are) at `width`x`height`.
fn draw_with(scene: &Scene, view: &ViewState, width: u16, height: u16, ms: u64) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| ui::draw(frame, &scene.engine, view, scene.at(ms)))
        .expect("draw");
    terminal.backend().to_string()
}

/// A view like `scene.view` (focus, scroll, selection) with empty caches.
fn fresh_view(scene: &Scene) -> ViewState {
    let mut view = ViewState::new(Theme::plain(), C);
    view.kb_status = scene.view.kb_status.clone();
    view.focus = scene.view.focus;
    view.chat_scroll = scene.view.chat_scroll;
    view.lifecycle_selected = scene.view.lifecycle_selected;
    view
}

/// [`fresh_view`] with every chat message measured (a fresh cache measures
/// only what it shows and estimates the rest; scrolled past the top once,
/// it measures them all), drawn at `width` x `height`.
fn measured_view(scene: &Scene, width: u16, height: u16, ms: u64) -> ViewState {
    let mut view = fresh_view(scene);
    view.chat_scroll = usize::MAX;
    draw_with(scene, &view, width, height, ms);
    assert_eq!(view.chat_cache.borrow().estimated(), 0);
    view.chat_scroll = scene.view.chat_scroll;
    view
}

/// Draw `view` until its chat cache has measured every message (a few
/// messages a frame); returns how many frames that took.
fn converge(scene: &Scene, view: &ViewState, width: u16, height: u16, ms: u64) -> usize {
    let mut frames = 0;
    while view.chat_cache.borrow().estimated() > 0 {
        assert!(frames < 10_000, "the estimates never converge");
        draw_with(scene, view, width, height, ms);
        frames += 1;
    }
    frames
}

fn chat_misses(view: &ViewState) -> u64 {
    view.chat_cache.borrow().misses()
}

fn ask(scene: &mut Scene, text: String, ms: u64) {
    scene.command(
        Command::Ask {
            conversation: C,
            text,
            tag: None,
        },
        ms,
    );
}

#[test]
fn a_long_chat_scrolled_to_the_top_middle_and_bottom_draws_what_a_fresh_render_draws() {
    let mut scene = Scene::with(EngineConfig {
        history_cap: 50,
        ..EngineConfig::default()
    });
    // More messages than the cache keeps lines for, so scrolling back
    // renders evicted messages again.
    let questions = 140;
    for i in 0..questions {
        ask(
            &mut scene,
            format!("who guards the waystone? (question {})", i + 1),
            100 + 100 * i,
        );
    }
    assert!(
        scene.engine.conversation(C).map_or(0, |c| c.messages.len())
            > ui::chat_cache::MAX_CACHED_LINES
    );
    let ms = 100 * (questions + 2);
    scene.view.focus = Focus::Chat;
    let bottom = draw_with(&scene, &scene.view, 120, 40, ms);
    assert!(
        bottom.contains(&format!("(question {questions})")),
        "{bottom}"
    );
    // The first frame estimates most messages; later frames measure them
    // (the bottom stays as it was drawn), and the limit becomes exact.
    assert!(scene.view.chat_cache.borrow().estimated() > 0);
    assert!(converge(&scene, &scene.view, 120, 40, ms) > 1);
    assert_eq!(draw_with(&scene, &scene.view, 120, 40, ms), bottom);
    let max = scene.view.chat_max_scroll.get();
    assert!(max > 2_000, "a long chat scrolls far: {max}");
    for up in [max, max / 2, max / 3 + 7, 1, 0, max - 1, max, 0] {
        scene.view.chat_scroll = up;
        let cached = draw_with(&scene, &scene.view, 120, 40, ms);
        let fresh_view = measured_view(&scene, 120, 40, ms);
        let fresh = draw_with(&scene, &fresh_view, 120, 40, ms);
        assert_eq!(cached, fresh, "scrolled up {up} of {max}");
        assert_eq!(fresh_view.chat_max_scroll.get(), max);
        if up == max {
            assert!(cached.contains("(question 1)"), "{cached}");
        }
    }
    // The cache keeps its bound.
    assert!(scene.view.chat_cache.borrow().cached() <= ui::chat_cache::MAX_CACHED_LINES);
    // Another width wraps differently: the cache starts over and agrees.
    scene.view.chat_scroll = 0;
    for (w, h) in [(80, 24), (200, 60), (120, 40)] {
        let cached = draw_with(&scene, &scene.view, w, h, ms);
        assert_eq!(
            cached,
            draw_with(&scene, &fresh_view(&scene), w, h, ms),
            "{w}x{h}"
        );
    }
    // Once every message is measured, drawing with nothing changed
    // renders nothing again.
    converge(&scene, &scene.view, 120, 40, ms);
    let before = chat_misses(&scene.view);
    draw_with(&scene, &scene.view, 120, 40, ms);
    assert_eq!(chat_misses(&scene.view), before);
}

#[test]
fn a_streaming_reply_is_rendered_again_while_the_others_come_from_the_cache() {
    let mut scene = Scene::new();
    for i in 0..10 {
        ask(
            &mut scene,
            format!("what happened at the bridge? ({i})"),
            100 + 100 * i,
        );
    }
    let ms = 2_000;
    draw_with(&scene, &scene.view, 120, 40, ms);
    converge(&scene, &scene.view, 120, 40, ms);
    let settled = chat_misses(&scene.view);
    assert_eq!(settled, 20, "each message rendered once");

    // One more question, stopped where its reply starts streaming.
    let now = scene.at(ms);
    let mut queue = scene.engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "who guards the waystone?".into(),
            tag: None,
        }),
        now,
    );
    let mut generation = None;
    while let Some(effect) = queue.pop() {
        match effect {
            Effect::Dispatch {
                id,
                backend,
                call: Call::Retrieve(q),
            } => {
                let result = Ok(scene.kb.search(&q.query, q.top_k).expect("search"));
                let now = scene.at(ms + 10);
                queue.extend(scene.engine.handle(
                    Input::Retrieved {
                        id,
                        backend,
                        result,
                    },
                    now,
                ));
            }
            Effect::Dispatch {
                id,
                backend,
                call: Call::Generate(task),
            } => generation = Some((id, backend, scene.model.render(&task))),
            _ => {}
        }
    }
    let (id, backend, reply) = generation.expect("the reply's generation was dispatched");
    draw_with(&scene, &scene.view, 120, 40, ms + 20);
    assert_eq!(
        chat_misses(&scene.view),
        settled + 2,
        "the new question and its empty reply"
    );

    let tokens: Vec<&str> = reply.split_inclusive(' ').collect();
    assert!(tokens.len() > 20);
    for (i, token) in tokens.iter().enumerate() {
        let now = scene.at(ms + 30 + i as u64);
        scene.engine.handle(
            Input::Token {
                id,
                backend: backend.clone(),
                text: (*token).to_string(),
            },
            now,
        );
        let before = chat_misses(&scene.view);
        let at = ms + 30 + i as u64;
        let cached = draw_with(&scene, &scene.view, 120, 40, at);
        assert_eq!(
            chat_misses(&scene.view),
            before + 1,
            "only the streaming reply is rendered again (token {i})"
        );
        if i % 8 == 0 || i + 1 == tokens.len() {
            assert_eq!(
                cached,
                draw_with(&scene, &fresh_view(&scene), 120, 40, at),
                "token {i}"
            );
        }
    }
    assert!(
        draw_with(&scene, &scene.view, 120, 40, ms + 900).contains("streaming"),
        "the reply is still streaming"
    );
    let now = scene.at(ms + 1_000);
    let fx = scene.engine.handle(
        Input::Finished {
            id,
            backend,
            result: Ok(()),
        },
        now,
    );
    scene.run(fx, 3_000);
    let before = chat_misses(&scene.view);
    let done = draw_with(&scene, &scene.view, 120, 40, 3_100);
    assert_eq!(chat_misses(&scene.view), before + 1, "the finished reply");
    assert_eq!(done, draw_with(&scene, &fresh_view(&scene), 120, 40, 3_100));
    assert!(!done.contains("streaming"));
    draw_with(&scene, &scene.view, 120, 40, 3_200);
    assert_eq!(
        chat_misses(&scene.view),
        before + 1,
        "nothing changed since"
    );
}

/// The lifecycle order as it was built before the registry kept indexes:
/// sort everything, roots newest first with their children, then the rest.
fn lifecycle_rows_by_sorting(engine: &Engine) -> Vec<RequestId> {
    let registry = engine.registry();
    let all = registry.all();
    let mut rows = Vec::new();
    for root in all.iter().rev().filter(|r| r.parent.is_none()) {
        rows.push(root.id);
        for child in &root.children {
            if let Some(child) = registry.get(*child) {
                rows.push(child.id);
            }
        }
    }
    let shown: std::collections::HashSet<_> = rows.iter().copied().collect();
    rows.extend(
        all.iter()
            .rev()
            .filter(|r| !shown.contains(&r.id))
            .map(|r| r.id),
    );
    rows
}

/// The short ids in the first column of the lifecycle table, top to bottom.
fn lifecycle_ids_on_screen(screen: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.contains("│id ") && l.contains("elapsed/limit"))
        .expect("the lifecycle table's header");
    lines[header + 1..]
        .iter()
        .map_while(|l| {
            let cell: String = l.chars().skip(2).take(6).collect();
            cell.chars()
                .all(|c| c.is_ascii_alphanumeric())
                .then_some(cell)
        })
        .collect()
}

#[test]
fn the_lifecycle_table_builds_only_the_rows_on_screen_in_the_same_order() {
    let mut scene = Scene::with(EngineConfig {
        history_cap: 60,
        ..EngineConfig::default()
    });
    for i in 0..30 {
        ask(
            &mut scene,
            format!("the first encounter ({i})"),
            100 + 100 * i,
        );
    }
    // A request in flight and a cancelled one among the finished.
    let now = scene.at(5_000);
    scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "an ambush at the bridge".into(),
            seed: Some(3),
        }),
        now,
    );
    let rows: Vec<RequestId> = ui::lifecycle_rows(&scene.engine)
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(rows, lifecycle_rows_by_sorting(&scene.engine));
    assert_eq!(rows.len(), ui::lifecycle_row_count(&scene.engine));
    assert!(rows.len() > 60, "the ring is full and one request is live");
    for (i, id) in rows.iter().enumerate() {
        assert_eq!(ui::lifecycle_row(&scene.engine, i).map(|r| r.id), Some(*id));
    }
    assert!(ui::lifecycle_row(&scene.engine, rows.len()).is_none());

    scene.view.focus = Focus::Lifecycle;
    let last = rows.len() - 1;
    for selected in [0, 5, 20, 21, 40, last, last + 50] {
        scene.view.lifecycle_selected = selected;
        let screen = draw_with(&scene, &scene.view, 120, 40, 6_000);
        assert_eq!(
            screen,
            draw_with(&scene, &fresh_view(&scene), 120, 40, 6_000)
        );
        let shown = lifecycle_ids_on_screen(&screen);
        assert!(shown.len() > 5, "{screen}");
        // The table scrolls just far enough to show the selection, as
        // ratatui does with every row built.
        let selected = selected.min(last);
        let first = (selected + 1).saturating_sub(shown.len());
        let expected: Vec<String> = rows[first..first + shown.len()]
            .iter()
            .map(|id| id.short())
            .collect();
        assert_eq!(shown, expected, "selected {selected}");
    }
}

/// A history for the lifecycle table's filter, sort and pause: a scenario
/// whose retrieval timed out (and answered late), three questions, and a
/// scenario still in flight.
fn lifecycle_scene() -> Scene {
    let mut scene = Scene::new();
    let fx = scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "the first encounter".into(),
            seed: Some(9),
        }),
        scene.at(0),
    );
    let Some(Effect::Dispatch { id: retrieve, .. }) = fx.first().cloned() else {
        panic!("retrieval expected");
    };
    let fx = scene.engine.handle(Input::Tick, scene.at(10_000));
    scene.run(fx, 10_000);
    scene.engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![]),
        },
        scene.at(12_000),
    );
    for (i, q) in [
        "who guards the waystone?",
        "where is the ford?",
        "what of the bridge?",
    ]
    .into_iter()
    .enumerate()
    {
        ask(&mut scene, q.to_string(), 13_000 + 1_000 * i as u64);
    }
    let now = scene.at(16_000);
    scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "an ambush at the bridge".into(),
            seed: Some(5),
        }),
        now,
    );
    scene.view.focus = Focus::Lifecycle;
    scene
}

#[test]
fn lifecycle_filtered_to_timed_out_requests() {
    let mut scene = lifecycle_scene();
    scene.view.lifecycle.set_filter("state:timed-out");
    let wide = scene.draw(120, 40, 17_000);
    assert!(wide.contains("filter: state:timed-out · "), "{wide}");
    let shown = lifecycle_ids_on_screen(&wide);
    assert_eq!(shown.len(), 1, "{wide}");
    insta::assert_snapshot!("lifecycle_filtered_120x40", wide);
    insta::assert_snapshot!("lifecycle_filtered_80x24", scene.draw(80, 24, 17_000));
}

#[test]
fn lifecycle_filter_prompt_in_the_border() {
    let mut scene = lifecycle_scene();
    scene.view.lifecycle.prompt = Some("kind:retrieve la".into());
    insta::assert_snapshot!(scene.draw(80, 24, 17_000));
}

#[test]
fn lifecycle_sorted_by_elapsed() {
    let mut scene = lifecycle_scene();
    scene.view.lifecycle.cycle_sort();
    let wide = scene.draw(120, 40, 17_000);
    assert!(wide.contains("sort: elapsed ↓"), "{wide}");
    insta::assert_snapshot!("lifecycle_sorted_120x40", wide);
    insta::assert_snapshot!("lifecycle_sorted_80x24", scene.draw(80, 24, 17_000));
}

#[test]
fn lifecycle_paused_counts_new_rows_without_showing_them() {
    let mut scene = lifecycle_scene();
    let before = lifecycle_ids_on_screen(&scene.draw(120, 40, 16_500));
    scene
        .view
        .lifecycle
        .toggle_pause(&scene.engine, scene.at(16_500));
    ask(&mut scene, "and the tower?".to_string(), 17_000);
    let wide = scene.draw(120, 40, 18_000);
    assert_eq!(lifecycle_ids_on_screen(&wide), before, "{wide}");
    assert!(wide.contains("paused · "), "{wide}");
    insta::assert_snapshot!("lifecycle_paused_120x40", wide);
    insta::assert_snapshot!("lifecycle_paused_80x24", scene.draw(80, 24, 18_000));
    // Resumed, the new rows are there.
    scene
        .view
        .lifecycle
        .toggle_pause(&scene.engine, scene.at(18_000));
    let resumed = lifecycle_ids_on_screen(&scene.draw(120, 40, 18_000));
    assert!(resumed.len() > before.len() || resumed != before);
}

/// The filter as its terms say, written out for each request.
fn naive_match(filter: &str, r: &loreweave::engine::request::Request) -> bool {
    filter.split_whitespace().all(|term| {
        if let Some(s) = term.strip_prefix("state:") {
            r.phase.label().replace(' ', "-") == s
        } else if let Some(b) = term.strip_prefix("backend:") {
            &*r.backend == b
        } else if let Some(k) = term.strip_prefix("kind:") {
            r.kind.label() == k
        } else if term == "late" {
            r.late_drops > 0
        } else {
            r.label.to_lowercase().contains(term) || r.id.to_string().to_lowercase().contains(term)
        }
    })
}

#[test]
fn the_filtered_and_sorted_table_shows_what_a_naive_filter_and_sort_over_all_requests_gives() {
    use loreweave::ui::SortBy;
    let mut scene = lifecycle_scene();
    for i in 0..8 {
        ask(&mut scene, format!("the waystone ({i})"), 20_000 + 700 * i);
    }
    let ms = 30_000;
    let now = scene.at(ms);
    let filters = [
        "",
        "state:timed-out",
        "state:completed kind:retrieve",
        "kind:generate",
        "backend:local",
        "late",
        "waystone",
        "state:dispatched",
        "kind:chat state:completed",
    ];
    let sorts = [
        SortBy::Pipeline,
        SortBy::Elapsed,
        SortBy::State,
        SortBy::Kind,
        SortBy::Backend,
        SortBy::Id,
    ];
    let mut nonempty = 0;
    for filter in filters {
        for sort in sorts {
            for inverted in [false, true] {
                let mut rows: Vec<&loreweave::engine::request::Request> =
                    lifecycle_rows_by_sorting(&scene.engine)
                        .into_iter()
                        .filter_map(|id| scene.engine.registry().get(id))
                        .filter(|r| naive_match(filter, r))
                        .collect();
                let key = |r: &loreweave::engine::request::Request| -> (Duration, String) {
                    match sort {
                        SortBy::Pipeline => (Duration::ZERO, String::new()),
                        // Longest first: the negated duration, as a key.
                        SortBy::Elapsed => (Duration::MAX - r.elapsed(now), String::new()),
                        SortBy::State => (Duration::ZERO, r.phase.label().to_string()),
                        SortBy::Kind => (Duration::ZERO, r.kind.label().to_string()),
                        SortBy::Backend => (Duration::ZERO, r.backend.to_string()),
                        SortBy::Id => (Duration::ZERO, r.id.to_string()),
                    }
                };
                if sort == SortBy::Pipeline {
                    if inverted {
                        rows.reverse();
                    }
                } else if inverted {
                    rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
                } else {
                    rows.sort_by_key(|r| key(r));
                }
                let expected: Vec<RequestId> = rows.iter().map(|r| r.id).collect();

                let mut view = fresh_view(&scene);
                view.lifecycle.set_filter(filter);
                while view.lifecycle.sort != sort {
                    view.lifecycle.cycle_sort();
                }
                if inverted {
                    view.lifecycle.invert();
                }
                let count = view.lifecycle.count(&scene.engine, now);
                let table: Vec<RequestId> = view
                    .lifecycle
                    .window(&scene.engine, 0, count + 5, now)
                    .iter()
                    .map(|r| r.id)
                    .collect();
                let case = format!("{filter:?} {sort:?} inverted {inverted}");
                assert_eq!(table, expected, "{case}");
                assert_eq!(
                    view.lifecycle.hidden(&scene.engine, now),
                    if filter.is_empty() {
                        0
                    } else {
                        scene.engine.registry().retained_len() - expected.len()
                    },
                    "{case}"
                );
                // What is drawn is the top of that list.
                let screen = draw_with(&scene, &view, 120, 40, ms);
                let shown = lifecycle_ids_on_screen(&screen);
                let top: Vec<String> = expected
                    .iter()
                    .take(shown.len())
                    .map(|id| id.short())
                    .collect();
                assert_eq!(shown, top, "{case}");
                assert_eq!(
                    shown.len(),
                    expected.len().min(shown.len().max(1)).min(expected.len()),
                    "{case}"
                );
                if !expected.is_empty() {
                    nonempty += 1;
                    assert!(!shown.is_empty(), "{case}\n{screen}");
                }
            }
        }
    }
    assert!(nonempty > 60, "{nonempty}");
}

#[test]
fn a_sorted_table_is_rebuilt_at_most_once_per_rebuild_interval() {
    let mut scene = lifecycle_scene();
    scene.view.lifecycle.cycle_sort();
    let table = &scene.view.lifecycle;
    let before = table.count(&scene.engine, scene.at(16_100));
    ask(&mut scene, "and the tower?".to_string(), 16_150);
    let table = &scene.view.lifecycle;
    let retained = scene.engine.registry().retained_len();
    assert!(retained > before);
    // Within the interval the frame reuses the list it built...
    let soon = scene.at(16_100) + ui::lifecycle_view::REBUILD / 2;
    assert_eq!(table.count(&scene.engine, soon), before);
    // ...and once it has passed, the new requests are in.
    let later = scene.at(16_100) + ui::lifecycle_view::REBUILD;
    assert_eq!(table.count(&scene.engine, later), retained);
    // A new sort or filter is applied at once.
    scene.view.lifecycle.set_filter("kind:chat");
    let chats = scene.view.lifecycle.count(&scene.engine, later);
    assert!(chats > 0 && chats < retained);
}

// --- The waterfall ---

/// The dispatches among `effects`: (id, is a generation).
fn dispatches(effects: &[Effect]) -> Vec<(RequestId, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch { id, call, .. } => Some((*id, matches!(call, Call::Generate(_)))),
            _ => None,
        })
        .collect()
}

/// A scenario whose retrieval fails once (HTTP 503, a retry after a
/// backoff), times out on its second attempt at 10 s, is observed and
/// answers 2 s late; generation runs without lore from 10 s, first token
/// at 10.4 s, done at 11 s. The waterfall is open on the retrieval.
fn waterfall_scene() -> (Scene, RequestId) {
    use loreweave::domain::BackendError;
    let mut scene = Scene::new();
    let fx = scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "the first encounter".into(),
            seed: Some(9),
        }),
        scene.at(0),
    );
    let [(retrieve, false)] = dispatches(&fx)[..] else {
        panic!("one retrieval: {fx:?}");
    };
    scene.engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Err(BackendError::transient("HTTP 503")),
        },
        scene.at(300),
    );
    // The backoff is at most 1 s (base 1 s, full jitter): redispatched by 1.3 s.
    let fx = scene.engine.handle(Input::Tick, scene.at(1_300));
    assert_eq!(dispatches(&fx), vec![(retrieve, false)], "the retry");
    let fx = scene.engine.handle(Input::Tick, scene.at(10_000));
    let [(generate, true)] = dispatches(&fx)[..] else {
        panic!("generation without lore: {fx:?}");
    };
    scene.engine.handle(
        Input::Token {
            id: generate,
            backend: "offline".into(),
            text: "# The Ford\n\nNo lore.".into(),
        },
        scene.at(10_400),
    );
    scene.engine.handle(
        Input::Finished {
            id: generate,
            backend: "offline".into(),
            result: Ok(()),
        },
        scene.at(11_000),
    );
    scene.engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![]),
        },
        scene.at(12_000),
    );
    let root = scene.engine.scenarios()[0].request;
    scene.view.focus = Focus::Lifecycle;
    scene.view.waterfall = Some(ui::Waterfall {
        root,
        selected: 1,
        back: None,
    });
    (scene, retrieve)
}

/// The row of `screen` whose bar starts with `name`, from the name on.
fn bar_row<'s>(screen: &'s str, name: &str) -> &'s str {
    screen
        .lines()
        .find_map(|l| l.find(name).map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no {name:?} bar in\n{screen}"))
}

#[test]
fn waterfall_with_a_retry_and_a_late_arrival() {
    let (scene, retrieve) = waterfall_scene();
    let r = scene.engine.registry().get(retrieve).expect("retained");
    assert_eq!(r.attempt, 2);
    let wide = scene.draw(120, 40, 13_000);
    let bar = bar_row(&wide, "└ retrieve local");
    // In flight, backoff, in flight again; the deadline and the timeout at
    // 10 s, the observed tail, the late arrival at 12 s (the axis end).
    for glyph in ['█', '·', '┆', '⏱', '╌', '◆'] {
        assert!(bar.contains(glyph), "{glyph} in {bar:?}");
    }
    let order: Vec<usize> = ['·', '┆', '⏱', '╌', '◆']
        .iter()
        .filter_map(|g| bar.find(*g))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{bar:?}");
    assert!(bar_row(&wide, "└ generate offline").contains('▓'), "{wide}");
    assert!(wide.contains("late arrival: retrieval result 2s after the deadline"));
    assert!(wide.contains("retry 1 in "), "{wide}");
    insta::assert_snapshot!("waterfall_retry_late_120x40", wide);
    let narrow = scene.draw(80, 24, 13_000);
    assert!(bar_row(&narrow, "└ retrieve").contains('◆'), "{narrow}");
    insta::assert_snapshot!("waterfall_retry_late_80x24", narrow);
}

#[test]
fn waterfall_of_a_chat_that_timed_out_while_streaming() {
    let mut scene = Scene::new();
    let fx = scene.engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "who guards the waystone?".into(),
            tag: None,
        }),
        scene.at(0),
    );
    let [(retrieve, false)] = dispatches(&fx)[..] else {
        panic!("one retrieval: {fx:?}");
    };
    let passages = scene
        .kb
        .search("who guards the waystone?", 5)
        .expect("search");
    let fx = scene.engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(passages),
        },
        scene.at(400),
    );
    let [(chat, true)] = dispatches(&fx)[..] else {
        panic!("the chat: {fx:?}");
    };
    scene.engine.handle(
        Input::Token {
            id: chat,
            backend: "offline".into(),
            text: "The waystone is guarded by".into(),
        },
        scene.at(2_000),
    );
    // Then nothing: 30 s idle later the chat times out.
    scene.engine.handle(Input::Tick, scene.at(32_000));
    let c = scene.engine.registry().get(chat).expect("retained");
    assert_eq!(c.phase.label(), "timed out");
    let root = c.parent.expect("a turn");
    scene.view.focus = Focus::Lifecycle;
    scene.view.waterfall = Some(ui::Waterfall {
        root,
        selected: 2,
        back: None,
    });
    let screen = scene.draw(100, 30, 33_000);
    let bar = bar_row(&screen, "└ chat offline");
    assert!(
        bar.contains('▓') && bar.contains('┆') && bar.contains('⏱'),
        "{bar:?}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn waterfall_of_a_live_streaming_request_grows_with_time() {
    // One generation slot: the chat waits for the scenario's generation.
    let mut cfg = EngineConfig::default();
    cfg.chat_policy.concurrency = 1;
    let mut scene = Scene::with(cfg);
    let fx = scene.engine.handle(
        Input::Command(Command::Scenario {
            conversation: C,
            prompt: "an ambush at the bridge".into(),
            seed: Some(5),
        }),
        scene.at(0),
    );
    let [(scenario_retrieve, false)] = dispatches(&fx)[..] else {
        panic!("one retrieval: {fx:?}");
    };
    let fx = scene.engine.handle(
        Input::Retrieved {
            id: scenario_retrieve,
            backend: "local".into(),
            result: Ok(vec![]),
        },
        scene.at(100),
    );
    let [(generate, true)] = dispatches(&fx)[..] else {
        panic!("the scenario's generation: {fx:?}");
    };
    let fx = scene.engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "where is the ford?".into(),
            tag: None,
        }),
        scene.at(200),
    );
    let [(retrieve, false)] = dispatches(&fx)[..] else {
        panic!("one retrieval: {fx:?}");
    };
    let fx = scene.engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![]),
        },
        scene.at(500),
    );
    assert!(dispatches(&fx).is_empty(), "the chat waits for the slot");
    let fx = scene.engine.handle(
        Input::Finished {
            id: generate,
            backend: "offline".into(),
            result: Ok(()),
        },
        scene.at(800),
    );
    let [(chat, true)] = dispatches(&fx)[..] else {
        panic!("the chat gets the slot: {fx:?}");
    };
    scene.engine.handle(
        Input::Token {
            id: chat,
            backend: "offline".into(),
            text: "The ford lies".into(),
        },
        scene.at(1_000),
    );
    let root = scene
        .engine
        .registry()
        .get(chat)
        .and_then(|c| c.parent)
        .expect("a turn");
    scene.view.focus = Focus::Lifecycle;
    scene.view.waterfall = Some(ui::Waterfall {
        root,
        selected: 2,
        back: None,
    });
    let early = scene.draw(80, 24, 2_000);
    let later = scene.draw(80, 24, 4_000);
    let streaming = |screen: &str| bar_row(screen, "└ chat").matches('▓').count();
    // On an axis from 0 to now the stream takes a growing share.
    assert!(streaming(&later) > streaming(&early), "{early}\n{later}");
    let bar = bar_row(&later, "└ chat");
    assert!(bar.contains('░') && bar.contains('▸'), "{later}");
    insta::assert_snapshot!(later);
}

// --- Layout: zoom, too small, ASCII, remapped keys --------------------------

/// A scene with a scenario and a question answered, as the main screen
/// snapshots have it.
fn busy_scene() -> Scene {
    let mut scene = Scene::new();
    scene.command(
        Command::Scenario {
            conversation: C,
            prompt: "the first encounter".into(),
            seed: None,
        },
        100,
    );
    scene.command(
        Command::Ask {
            conversation: C,
            text: "who guards the waystone?".into(),
            tag: None,
        },
        2_000,
    );
    scene
}

#[test]
fn zoomed_chat_80x24() {
    let mut scene = busy_scene();
    press(&mut scene, crossterm::event::KeyCode::Esc); // focus the chat
    press(&mut scene, crossterm::event::KeyCode::Char('z'));
    assert!(scene.view.zoom, "z zooms");
    let screen = scene.draw(80, 24, 3_000);
    assert!(!screen.contains("Scenarios"), "{screen}");
    assert!(!screen.contains("Request lifecycle"), "{screen}");
    insta::assert_snapshot!(screen);
    press(&mut scene, crossterm::event::KeyCode::Char('z'));
    assert!(!scene.view.zoom, "z again goes back");
    assert!(scene.draw(80, 24, 3_000).contains("Request lifecycle"));
}

#[test]
fn zoomed_lifecycle_follows_the_focus_120x40() {
    let mut scene = busy_scene();
    press(&mut scene, crossterm::event::KeyCode::Esc);
    press(&mut scene, crossterm::event::KeyCode::Char('z'));
    // Tab moves the focus, and the zoom shows the pane that has it.
    press(&mut scene, crossterm::event::KeyCode::Tab);
    press(&mut scene, crossterm::event::KeyCode::Tab);
    let screen = scene.draw(120, 40, 3_000);
    assert!(screen.contains("Request lifecycle"), "{screen}");
    assert!(!screen.contains(" Chat "), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn below_the_minimum_size_a_message_replaces_the_panes() {
    let scene = busy_scene();
    let screen = scene.draw(36, 11, 3_000);
    assert!(screen.contains("terminal too small"), "{screen}");
    assert!(
        screen.contains(&format!("need {} x {}", ui::MIN_WIDTH, ui::MIN_HEIGHT)),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
    // Every size draws, down to nothing, and the minimum shows the panes.
    for (w, h) in [(1, 1), (39, 40), (200, 11), (7, 3)] {
        let screen = scene.draw(w, h, 3_000);
        assert!(!screen.contains("Request lifecycle"), "{w}x{h}");
    }
    let at_minimum = scene.draw(ui::MIN_WIDTH, ui::MIN_HEIGHT, 3_000);
    assert!(at_minimum.contains("Request lifecycle"), "{at_minimum}");
}

/// No box drawing, block or arrow glyph anywhere on `screen`.
fn assert_ascii_only(screen: &str) {
    for c in screen.chars() {
        assert!(
            !('\u{2190}'..='\u{25ff}').contains(&c) && !"•…·›✓✗⏱⊘◆".contains(c),
            "{c:?} in ASCII mode:\n{screen}"
        );
    }
}

#[test]
fn ascii_mode_120x40() {
    let mut scene = busy_scene();
    scene.view.ascii = true;
    let screen = scene.draw(120, 40, 3_000);
    assert_ascii_only(&screen);
    insta::assert_snapshot!(screen);
}

#[test]
fn ascii_mode_80x24_with_the_help_overlay() {
    let mut scene = busy_scene();
    scene.view.ascii = true;
    let screen = scene.draw(80, 24, 3_000);
    assert_ascii_only(&screen);
    insta::assert_snapshot!(screen);
    press(&mut scene, crossterm::event::KeyCode::F(1));
    assert_ascii_only(&scene.draw(80, 24, 3_000));
}

#[test]
fn remapped_keys_show_in_the_hints_and_the_help() {
    let mut scene = busy_scene();
    let config =
        loreweave::config::parse("[keys]\nquit = \"Ctrl-Q\"\nchat.scroll_down = [\"j\", \"n\"]\n")
            .expect("a valid remap");
    let (keymap, problems) = config.keys.keymap();
    assert!(problems.is_empty(), "{problems:?}");
    scene.view.keymap = keymap;
    press(&mut scene, crossterm::event::KeyCode::Esc); // focus the chat
    let screen = scene.draw(120, 40, 3_000);
    assert!(screen.contains("Ctrl-Q quit"), "{screen}");
    press(&mut scene, crossterm::event::KeyCode::Char('?'));
    let help = help_at_every_scroll(&mut scene, 120, 40).join("\n");
    assert!(help.contains("Ctrl-Q"), "{help}");
    assert!(help.contains("j n"), "{help}");
}

// --- Input and copy (issue 11 items 1 and 2) ---

fn press_key(scene: &mut Scene, key: crossterm::event::KeyEvent) {
    let actions = loreweave::tui::keys::on_key(key, &mut scene.view, &scene.engine);
    for action in actions {
        if let loreweave::tui::keys::Action::Notice(text, is_error) = action {
            scene.engine.set_notice(text, is_error);
        }
    }
}

fn type_in(scene: &mut Scene, text: &str) {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    for c in text.chars() {
        press_key(scene, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
}

#[test]
fn multi_line_input_grows_to_six_lines_then_scrolls() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut scene = Scene::new();
    type_in(&mut scene, "three lines:");
    press_key(&mut scene, KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    type_in(&mut scene, "the second");
    press_key(
        &mut scene,
        KeyEvent::new(KeyCode::Char('j'), KeyModifiers::CONTROL),
    );
    type_in(&mut scene, "and the third");
    insta::assert_snapshot!("input_three_lines_80x24", scene.draw(80, 24, 0));
    for n in 4..=9 {
        press_key(
            &mut scene,
            KeyEvent::new(KeyCode::Char('j'), KeyModifiers::CONTROL),
        );
        type_in(&mut scene, &format!("line {n}"));
    }
    // Nine lines: six show, the cursor's (the last) among them.
    insta::assert_snapshot!("input_nine_lines_scrolled_80x24", scene.draw(80, 24, 0));
}

#[test]
fn a_message_over_max_input_is_refused_and_stays() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut scene = Scene::new();
    scene.view.max_input = 20;
    type_in(&mut scene, "a question that is far too long");
    press_key(
        &mut scene,
        KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
    );
    assert_eq!(
        scene.view.input.lines(),
        ["a question that is far too long"]
    );
    insta::assert_snapshot!("input_refused_over_max_input_80x24", scene.draw(80, 24, 0));
}

#[test]
fn the_selected_chat_message_is_marked() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut scene = Scene::new();
    ask(&mut scene, "who guards the waystone?".into(), 100);
    ask(&mut scene, "where is the ford?".into(), 2_000);
    scene.view.focus = Focus::Chat;
    scene.draw(100, 30, 3_000);
    // Up from nothing selects the newest message; twice more, the first
    // question's reply.
    for _ in 0..3 {
        press_key(&mut scene, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    }
    assert_eq!(scene.view.chat_selected, Some(1));
    insta::assert_snapshot!("chat_selected_message_100x30", scene.draw(100, 30, 3_000));
}
