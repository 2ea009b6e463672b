//! Prints speed figures for the parts of loreweave that must stay fast:
//! the pure engine, the knowledge base, the offline generator and a full
//! frame. A plain `harness = false` bench: run `cargo bench --bench figures`.
//! Figures are medians over repeated runs on the same machine; compare
//! ratios measured in one run, not absolute numbers across machines.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use loreweave::backends::offline::{OfflineModel, Tables};
use loreweave::domain::{GenerationTask, TaskMode};
use loreweave::engine::workspace::ConversationId;
use loreweave::engine::{Command, Effect, Engine, EngineConfig, Input};
use loreweave::kb::{KnowledgeBase, embedded_lore};
use loreweave::ui::{self, Theme, ViewState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// The one conversation the figures talk in.
const C: ConversationId = ConversationId(1);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test` this is a quick smoke
    // run of the same code paths (debug build, small counts).
    let full = std::env::args().any(|a| a == "--bench");
    let scale = |n: usize| if full { n } else { 1 };
    // Engine: a scenario pipeline (parent + generation) per iteration.
    let n: u64 = if full { 100_000 } else { 1_000 };
    let engine_time = time(scale(5), || {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            rag: false,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 1);
        engine.open_conversation(C, "bench", Vec::new(), Vec::new());
        for i in 0..n {
            let now = t0 + Duration::from_micros(i);
            let fx = engine.handle(
                Input::Command(Command::Scenario {
                    conversation: C,
                    prompt: String::new(),
                    seed: Some(i),
                }),
                now,
            );
            if let Some(Effect::Dispatch { id, backend, .. }) = fx.into_iter().next() {
                engine.handle(
                    Input::Finished {
                        id,
                        backend,
                        result: Ok(()),
                    },
                    now,
                );
            }
        }
        engine
    });
    let per_request = engine_time / (2 * n as u32);
    println!(
        "engine: {} requests in {:.1} ms, {:.2} µs per request ({:.0} requests/s)",
        2 * n,
        engine_time.as_secs_f64() * 1e3,
        per_request.as_secs_f64() * 1e6,
        (2 * n) as f64 / engine_time.as_secs_f64()
    );

    let docs = embedded_lore();
    let build = time(scale(9), || {
        KnowledgeBase::build(docs.clone()).expect("index builds")
    });
    let kb = KnowledgeBase::build(docs.clone()).expect("index builds");
    println!(
        "kb: index of {} documents / {} chunks built in {:.2} ms",
        kb.document_count(),
        kb.chunk_count(),
        build.as_secs_f64() * 1e3
    );
    let queries = [
        "who guards the waystone?",
        "the first encounter",
        "glass desert gold",
        "an ambush at the bridge",
    ];
    let search = time(scale(201), || {
        for q in queries {
            black_box(kb.search(q, 5).expect("search"));
        }
    }) / queries.len() as u32;
    println!("kb: search (top 5) {:.1} µs", search.as_secs_f64() * 1e6);

    let model = OfflineModel::new(Arc::new(Tables::embedded().expect("tables")));
    let passages = kb.search("the first encounter", 5).expect("search");
    let task = GenerationTask {
        mode: TaskMode::Scenario {
            prompt: "the first encounter".into(),
            seed: 7,
        },
        passages,
        no_lore_reason: None,
    };
    let scenario = time(scale(201), || model.render(&task));
    println!(
        "offline: scenario written in {:.1} µs",
        scenario.as_secs_f64() * 1e6
    );

    // A full 120x40 frame after a scenario and a question.
    let t0 = Instant::now();
    let mut engine = Engine::new(EngineConfig::default(), t0, SystemTime::UNIX_EPOCH, 1);
    engine.open_conversation(C, "bench", Vec::new(), Vec::new());
    let view = ViewState::new(Theme::colour(), C);
    for command in [
        Command::Scenario {
            conversation: C,
            prompt: "the first encounter".into(),
            seed: None,
        },
        Command::Ask {
            conversation: C,
            text: "who guards the waystone?".into(),
            tag: None,
        },
    ] {
        let mut queue = engine.handle(Input::Command(command), t0);
        while let Some(effect) = queue.pop() {
            if let Effect::Dispatch { id, backend, call } = effect {
                let input = match call {
                    loreweave::engine::Call::Retrieve(q) => Input::Retrieved {
                        id,
                        backend,
                        result: Ok(kb.search(&q.query, q.top_k).expect("search")),
                    },
                    loreweave::engine::Call::Embed(_) | loreweave::engine::Call::Ingest(_) => {
                        continue;
                    }
                    loreweave::engine::Call::Generate(task) => {
                        engine.handle(
                            Input::Token {
                                id,
                                backend: backend.clone(),
                                text: model.render(&task),
                            },
                            t0,
                        );
                        Input::Finished {
                            id,
                            backend,
                            result: Ok(()),
                        }
                    }
                };
                queue.extend(engine.handle(input, t0));
            }
        }
    }
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let frame = time(scale(101), || {
        terminal
            .draw(|f| ui::draw(f, &engine, &view, t0))
            .map(|_| ())
            .expect("draw")
    });
    println!(
        "ui: full 120x40 frame drawn in {:.0} µs",
        frame.as_secs_f64() * 1e6
    );

    // Sanitiser throughput on 10 MB of mixed text with escapes (target
    // at least 200 MB/s).
    let text = mixed_text(if full { 10_000_000 } else { 100_000 });
    let clean = time(scale(9), || loreweave::sanitize::sanitize(&text));
    println!(
        "sanitize: {:.1} MB of mixed text with escapes in {:.2} ms: {:.0} MB/s",
        text.len() as f64 / 1e6,
        clean.as_secs_f64() * 1e3,
        text.len() as f64 / 1e6 / clean.as_secs_f64()
    );
}

/// About `bytes` of what untrusted text looks like: mostly ASCII prose with
/// some accented and CJK words, line breaks (LF and CRLF), tabs, and every
/// few lines an escape: SGR colours, a cursor move, an OSC title or
/// hyperlink, a C1 CSI, a bidi override or a tag character. Deterministic.
fn mixed_text(bytes: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "warden",
        "of",
        "waystone",
        "kept",
        "amber",
        "gate",
        "and",
        "a",
        "road",
        "Ünïcödé",
        "café",
        "—",
        "龍の道",
        "naïve",
        "mere",
        "beneath",
        "copper",
        "dusk",
    ];
    const ESCAPES: &[&str] = &[
        "\u{1b}[31m",
        "\u{1b}[0m",
        "\u{1b}[2J\u{1b}[H",
        "\u{1b}]0;title\u{7}",
        "\u{1b}]8;;http://example.com\u{1b}\\link\u{1b}]8;;\u{1b}\\",
        "\u{9b}2K",
        "\u{202e}",
        "\u{e0041}",
        "\u{7}",
        "\r",
    ];
    let mut out = String::with_capacity(bytes + 64);
    let mut state: u64 = 0x5EED;
    let mut next = || {
        // xorshift64: enough for a fixed mix.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut words = 0u64;
    while out.len() < bytes {
        let r = next();
        out.push_str(WORDS[(r % WORDS.len() as u64) as usize]);
        words += 1;
        match r >> 32 & 63 {
            0 => out.push_str(ESCAPES[(r >> 8) as usize % ESCAPES.len()]),
            1 => out.push('\t'),
            _ => {}
        }
        out.push_str(match words % 14 {
            0 => "\n",
            7 if r & 1 == 0 => "\r\n",
            _ => " ",
        });
    }
    out
}
