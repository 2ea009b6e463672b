//! Frame cost with long sessions: draws the full UI on ratatui's
//! `TestBackend` at 200x60 with 10, 1,000 and 5,000 messages in the open
//! conversation and with 100, 10,000 and 100,000 retained requests, and
//! prints the median frame time of each, plus largest/smallest. The
//! conversation is built by driving the engine with the real knowledge base
//! and the offline generator, as a person chatting would.
//!
//! `cargo bench --bench frames` (release) prints the table. Under
//! `cargo test --all-targets` it runs a smoke pass (tiny sizes, a frame or
//! two each). For repeatable instruction counts on a noisy machine, run one
//! case under callgrind, counting only inside `ui::draw`:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='loreweave::ui::draw*' \
//!     target/release/deps/frames-* --bench --only messages=5000 --series idle --frames 20
//! ```
//!
//! With `--only`, exactly one first frame and then `--frames` frames of the
//! `--series` (`idle`, `top` or `streaming`) are drawn, with no time limit:
//! two runs with different `--frames` give the instructions of one frame as
//! (Ir(20) - Ir(10)) / 10, without the first frame's. `--only` takes
//! `messages=N`, `requests=N` or `questions=N` (N questions in one chat with
//! the default configuration: the issue's "300 questions" case).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use loreweave::backends::offline::{OfflineModel, Tables};
use loreweave::domain::Passage;
use loreweave::engine::{Call, Command, Effect, Engine, EngineConfig, Input};
use loreweave::kb::{KnowledgeBase, embedded_lore};
use loreweave::ui::{self, Theme, ViewState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;

const QUESTIONS: [&str; 8] = [
    "who guards the waystone?",
    "what happened at the bridge?",
    "tell me about the glass desert",
    "where is the gold hidden?",
    "who are the wardens of the pass?",
    "what does the shattered waystone do?",
    "the first encounter: who is there?",
    "which factions trade in the city?",
];

/// An engine driven synchronously, the way the runtime would, under a fake
/// clock that moves a few milliseconds per step.
struct Session {
    engine: Engine,
    kb: Arc<KnowledgeBase>,
    model: Arc<OfflineModel>,
    t0: Instant,
    ms: u64,
    /// Retrieval results by query, so filling a large history stays quick.
    searches: std::collections::HashMap<String, Vec<Passage>>,
}

/// The one conversation the bench fills.
const C: loreweave::engine::workspace::ConversationId =
    loreweave::engine::workspace::ConversationId(1);

impl Session {
    fn new(cfg: EngineConfig, kb: Arc<KnowledgeBase>, model: Arc<OfflineModel>) -> Self {
        let t0 = Instant::now();
        Self {
            engine: {
                let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 7);
                engine.open_conversation(C, "bench", Vec::new(), Vec::new());
                engine
            },
            kb,
            model,
            t0,
            ms: 0,
            searches: Default::default(),
        }
    }

    fn now(&mut self) -> Instant {
        self.ms += 3;
        self.t0 + Duration::from_millis(self.ms)
    }

    fn search(&mut self, query: &str, top_k: usize) -> Vec<Passage> {
        if let Some(found) = self.searches.get(query) {
            return found.clone();
        }
        let found = self.kb.search(query, top_k).expect("search");
        self.searches.insert(query.to_string(), found.clone());
        found
    }

    /// Run a command to the end; generations write the offline model's
    /// text when `write` is set, nothing otherwise.
    fn command(&mut self, command: Command, write: bool) {
        let now = self.now();
        let mut queue = self.engine.handle(Input::Command(command), now);
        while let Some(effect) = queue.pop() {
            let Effect::Dispatch { id, backend, call } = effect else {
                continue;
            };
            let input = match call {
                Call::Retrieve(q) => Input::Retrieved {
                    id,
                    backend,
                    result: Ok(self.search(&q.query, q.top_k)),
                },
                Call::Embed(_) | Call::Ingest(_) => continue,
                Call::Generate(task) => {
                    if write {
                        let text = self.model.render(&task);
                        let now = self.now();
                        self.engine.handle(
                            Input::Token {
                                id,
                                backend: backend.clone(),
                                text,
                            },
                            now,
                        );
                    }
                    Input::Finished {
                        id,
                        backend,
                        result: Ok(()),
                    }
                }
            };
            let now = self.now();
            queue.extend(self.engine.handle(input, now));
        }
    }

    fn ask(&mut self, i: usize) {
        let text = format!("{} (question {})", QUESTIONS[i % QUESTIONS.len()], i + 1);
        self.command(
            Command::Ask {
                conversation: C,
                text,
                tag: None,
            },
            true,
        );
    }

    fn messages(&self) -> usize {
        self.engine.conversation(C).map_or(0, |c| c.messages.len())
    }

    /// Start one more question and stop when its reply is about to stream:
    /// the generation's id, backend and full text, to be fed as tokens.
    fn start_streaming(&mut self) -> (loreweave::engine::request::RequestId, String, String) {
        let now = self.now();
        let mut queue = self.engine.handle(
            Input::Command(Command::Ask {
                conversation: C,
                text: "tell me everything about the waystone".into(),
                tag: None,
            }),
            now,
        );
        while let Some(effect) = queue.pop() {
            let Effect::Dispatch { id, backend, call } = effect else {
                continue;
            };
            match call {
                Call::Retrieve(q) => {
                    let result = Ok(self.search(&q.query, q.top_k));
                    let now = self.now();
                    queue.extend(self.engine.handle(
                        Input::Retrieved {
                            id,
                            backend,
                            result,
                        },
                        now,
                    ));
                }
                Call::Generate(task) => {
                    // A reply a few times the offline one, so it streams for
                    // the whole measurement.
                    let text = self.model.render(&task).repeat(4);
                    return (id, backend, text);
                }
                Call::Embed(_) | Call::Ingest(_) => {}
            }
        }
        panic!("the question never reached its generation");
    }
}

#[derive(Default)]
struct Figures {
    /// The first frame (the caches start empty).
    first: Duration,
    /// Median of frames with nothing changed (a keypress in another pane).
    idle: Duration,
    /// Median with the chat scrolled to its top.
    top: Duration,
    /// Median of frames while the newest reply streams (a token between
    /// frames; only the draw is timed).
    streaming: Duration,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

struct Budget {
    frames: usize,
    /// Stop a series early after this long (slow cases in the old
    /// renderer); `None` draws exactly `frames` (for callgrind).
    time: Option<Duration>,
}

/// Which series to draw.
#[derive(Clone, Copy, PartialEq)]
enum Series {
    All,
    Idle,
    Top,
    Streaming,
}

fn draw(terminal: &mut Terminal<TestBackend>, session: &Session, view: &ViewState) -> Duration {
    let now = session.t0 + Duration::from_millis(session.ms);
    let start = Instant::now();
    terminal
        .draw(|f| ui::draw(f, &session.engine, view, now))
        .expect("draw");
    let took = start.elapsed();
    black_box(terminal.backend());
    took
}

fn series(
    budget: &Budget,
    mut frame: impl FnMut() -> Duration,
    mut between: impl FnMut(),
) -> Duration {
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < budget.frames
        && (samples.len() < 3 || budget.time.is_none_or(|t| started.elapsed() < t))
    {
        between();
        samples.push(frame());
    }
    median(samples)
}

fn measure(mut session: Session, budget: &Budget, which: Series) -> Figures {
    let mut view = ViewState::new(Theme::colour(), C);
    view.kb_status = "kb sample · 32 docs".into();
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");
    let mut figures = Figures {
        first: draw(&mut terminal, &session, &view),
        ..Figures::default()
    };
    if matches!(which, Series::All | Series::Idle) {
        figures.idle = series(budget, || draw(&mut terminal, &session, &view), || {});
    }
    if matches!(which, Series::All | Series::Top) {
        view.chat_scroll = usize::MAX;
        figures.top = series(budget, || draw(&mut terminal, &session, &view), || {});
        view.chat_scroll = 0;
    }
    if !matches!(which, Series::All | Series::Streaming) {
        return figures;
    }
    let (id, backend, text) = session.start_streaming();
    let tokens: Vec<String> = text
        .split_inclusive(' ')
        .map(str::to_string)
        .collect::<Vec<_>>();
    let mut next = tokens.into_iter().cycle();
    let session = std::cell::RefCell::new(session);
    if which == Series::All {
        draw(&mut terminal, &session.borrow(), &view);
    }
    figures.streaming = series(
        budget,
        || draw(&mut terminal, &session.borrow(), &view),
        || {
            let mut s = session.borrow_mut();
            let now = s.now();
            let text = next.next().unwrap_or_default();
            s.engine.handle(
                Input::Token {
                    id,
                    backend: backend.clone(),
                    text,
                },
                now,
            );
        },
    );
    figures
}

/// A chat of `messages` messages, with at most 100 retained requests.
fn with_messages(messages: usize, kb: &Arc<KnowledgeBase>, model: &Arc<OfflineModel>) -> Session {
    let cfg = EngineConfig {
        history_cap: 100,
        ..EngineConfig::default()
    };
    let mut session = Session::new(cfg, kb.clone(), model.clone());
    let mut i = 0;
    while session.messages() < messages {
        session.ask(i);
        i += 1;
    }
    session
}

/// A chat of 10 messages, then scenarios until `requests` requests are
/// retained (each scenario is three: the pipeline, its retrieval and its
/// generation; only the last one writes text).
fn with_requests(requests: usize, kb: &Arc<KnowledgeBase>, model: &Arc<OfflineModel>) -> Session {
    let cfg = EngineConfig {
        history_cap: requests,
        ..EngineConfig::default()
    };
    let mut session = Session::new(cfg, kb.clone(), model.clone());
    for i in 0..5 {
        session.ask(i);
    }
    let retained = |s: &Session| s.engine.registry().history_len();
    let mut seed = 0;
    while retained(&session) < requests {
        seed += 1;
        let last = retained(&session) + 3 >= requests;
        session.command(
            Command::Scenario {
                conversation: C,
                prompt: "an ambush at the bridge".into(),
                seed: Some(seed),
            },
            last,
        );
    }
    session
}

/// `questions` questions in one chat, default configuration.
fn with_questions(questions: usize, kb: &Arc<KnowledgeBase>, model: &Arc<OfflineModel>) -> Session {
    let mut session = Session::new(EngineConfig::default(), kb.clone(), model.clone());
    for i in 0..questions {
        session.ask(i);
    }
    session
}

/// Frames of the lifecycle pane sorted by elapsed time (and filtered by
/// `filter`), the clock moving 16 ms a frame as on a live screen: the
/// median frame, and the slowest one (a rebuild of the sorted list, which
/// happens at most once per `lifecycle_view::REBUILD`).
fn sorted_frames(session: &mut Session, budget: &Budget, filter: &str) -> (Duration, Duration) {
    let mut view = ViewState::new(Theme::colour(), C);
    view.kb_status = "kb sample · 32 docs".into();
    view.focus = loreweave::ui::Focus::Lifecycle;
    view.lifecycle.cycle_sort();
    view.lifecycle.set_filter(filter);
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < budget.frames.max(40)
        && (samples.len() < 40 || budget.time.is_none_or(|t| started.elapsed() < t))
    {
        session.ms += 16;
        samples.push(draw(&mut terminal, session, &view));
    }
    let slowest = samples.iter().copied().max().unwrap_or_default();
    (median(samples), slowest)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn report(label: &str, f: &Figures) {
    println!(
        "{label:<36} first {:>10}  idle {:>10}  top {:>10}  streaming {:>10}",
        us(f.first),
        us(f.idle),
        us(f.top),
        us(f.streaming)
    );
}

fn ratio(name: &str, figures: &[Figures]) {
    let of = |pick: fn(&Figures) -> Duration| {
        let v: Vec<f64> = figures.iter().map(|f| pick(f).as_secs_f64()).collect();
        let max = v.iter().cloned().fold(f64::MIN, f64::max);
        let min = v.iter().cloned().fold(f64::MAX, f64::min);
        max / min
    };
    println!(
        "{name}: largest/smallest idle {:.2}x, top {:.2}x, streaming {:.2}x",
        of(|f| f.idle),
        of(|f| f.top),
        of(|f| f.streaming)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; under `cargo test` this is a smoke pass.
    let full = args.iter().any(|a| a == "--bench");
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only = arg("--only");
    let frames: usize = arg("--frames")
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 200 } else { 2 });
    let budget = Budget {
        frames,
        time: match only {
            Some(_) => None,
            None => Some(Duration::from_secs(if full { 3 } else { 1 })),
        },
    };
    let which = match arg("--series").as_deref() {
        None | Some("all") => Series::All,
        Some("idle") => Series::Idle,
        Some("top") => Series::Top,
        Some("streaming") => Series::Streaming,
        Some(other) => panic!("--series {other}: all, idle, top or streaming"),
    };
    let kb = Arc::new(KnowledgeBase::build(embedded_lore()).expect("index builds"));
    let model = Arc::new(OfflineModel::new(Arc::new(
        Tables::embedded().expect("tables"),
    )));

    if let Some(only) = only {
        let (what, n) = only.split_once('=').expect("--only what=N");
        let n: usize = n.parse().expect("--only what=N");
        let session = match what {
            "messages" => with_messages(n, &kb, &model),
            "requests" => {
                let mut session = with_requests(n, &kb, &model);
                for filter in ["", "kind:retrieve"] {
                    let (frame, rebuild) = sorted_frames(&mut session, &budget, filter);
                    println!(
                        "{only}: sorted by elapsed, filter {filter:?}: frame {}  rebuild {}",
                        us(frame),
                        us(rebuild)
                    );
                }
                session
            }
            "questions" => with_questions(n, &kb, &model),
            other => panic!("--only {other}=N: messages, requests or questions"),
        };
        report(&only, &measure(session, &budget, which));
        return;
    }

    let (messages, requests, questions): (&[usize], &[usize], &[usize]) = if full {
        (&[10, 1_000, 5_000], &[100, 10_000, 100_000], &[0, 300])
    } else {
        (&[2, 10], &[10, 30], &[0, 2])
    };
    println!("frame at {WIDTH}x{HEIGHT}, medians over up to {frames} frames");
    let mut figures = Vec::new();
    for &n in messages {
        let session = with_messages(n, &kb, &model);
        let label = format!("{} messages, {} requests", session.messages(), {
            session.engine.registry().history_len()
        });
        let f = measure(session, &budget, Series::All);
        report(&label, &f);
        figures.push(f);
    }
    ratio("messages", &figures);
    let mut figures = Vec::new();
    for &n in requests {
        let session = with_requests(n, &kb, &model);
        let label = format!(
            "{} retained requests, {} messages",
            session.engine.registry().history_len(),
            session.messages()
        );
        // What a key in the lifecycle pane costs today: the keymap asks
        // for every row (`lifecycle_rows`), where one row would do.
        let mut samples = Vec::new();
        for _ in 0..budget.frames.min(50) {
            let start = Instant::now();
            black_box(ui::lifecycle_rows(&session.engine).len());
            samples.push(start.elapsed());
        }
        let all_rows = median(samples);
        let mut session = session;
        let (sorted, sorted_rebuild) = sorted_frames(&mut session, &budget, "");
        let (filtered, filtered_rebuild) = sorted_frames(&mut session, &budget, "kind:retrieve");
        let f = measure(session, &budget, Series::All);
        report(&label, &f);
        println!("{:<36} lifecycle_rows() {:>10}", "", us(all_rows));
        println!(
            "{:<36} sort by elapsed: frame {:>10}  rebuild {:>10}",
            "",
            us(sorted),
            us(sorted_rebuild)
        );
        println!(
            "{:<36} kind:retrieve + elapsed: frame {:>10}  rebuild {:>10}",
            "",
            us(filtered),
            us(filtered_rebuild)
        );
        figures.push(f);
    }
    ratio("requests", &figures);
    let mut figures = Vec::new();
    for &n in questions {
        let session = with_questions(n, &kb, &model);
        let label = format!("{n} questions (default config)");
        let f = measure(session, &budget, Series::All);
        report(&label, &f);
        figures.push(f);
    }
    if let [empty, .., long] = &figures[..] {
        println!(
            "{} questions / empty chat: idle {:.1}x, streaming {:.1}x",
            questions[questions.len() - 1],
            long.idle.as_secs_f64() / empty.idle.as_secs_f64(),
            long.streaming.as_secs_f64() / empty.streaming.as_secs_f64()
        );
    }
}
