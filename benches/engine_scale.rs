//! The engine at scale: inputs per second with 100, 10,000 and 100,000 live
//! pipelines and a full history ring, and peak memory with 100,000 retained
//! requests. A plain `harness = false` bench:
//!
//! ```text
//! cargo bench --bench engine_scale            # the figures
//! cargo bench --bench engine_scale -- --quick # a smoke run (scripts/check)
//! # one size, one run (for callgrind): the bench binary with
//! #   --profile LIVE INPUTS    (INPUTS rounded up to whole cycles)
//! ```
//!
//! Every `handle` call of a complete pipeline counts as one input: the
//! scenario command, the retrieval's result, 20 tokens of the reply and the
//! end of the stream (23 inputs per pipeline). Live pipelines are advanced
//! round-robin, one input each, so `live` of them are in flight at every
//! moment; a finished pipeline is replaced by a new one. The engine's
//! clock moves 1 µs per input and the deadlines are an hour away, so
//! nothing expires. Pipelines advance in step (one round = one input for
//! each), so a run counts whole cycles of 23 rounds (`23 x live` inputs):
//! every kind of input in its share whatever the size (2,000,000 inputs,
//! rounded up: 2,300,000 at 100,000 live). Figures are medians of 5 runs;
//! the flatness ratio is the largest rate over the smallest, measured in
//! the same run.
//!
//! After the rates, the floor under the flatness ratio: the least state
//! any engine must touch per token (one record in the engine's own id map
//! and the reply's text, per stream) with register work standing for the
//! rest of an input, set so that its cost at the smallest size equals the
//! engine's; then the same at the largest size, and the ratio.
//!
//! Memory is measured in a child process per figure (so one figure's peak
//! cannot hide another's): `VmHWM` of a process that only built an empty
//! engine (idle), and of one that retained 100,000 finished requests in a
//! history ring of that size plus `live` pipelines in flight.

use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::process::Command as Process;
use std::time::{Duration, Instant, SystemTime};

use loreweave::domain::Passage;
use loreweave::engine::limits::BackendPolicy;
use loreweave::engine::request::{IdMap, RequestId};
use loreweave::engine::workspace::ConversationId;
use loreweave::engine::{Call, Command, Effect, Engine, EngineConfig, Input};

const C: ConversationId = ConversationId(1);
const TOKENS: u32 = 20;
const RETRIEVER: &str = "local";
const GENERATOR: &str = "offline";

/// Where a pipeline stands: the next input it will send.
#[derive(Clone, Copy)]
enum Step {
    Submit,
    Retrieved(RequestId),
    Token(RequestId, u32),
    Finish(RequestId),
}

struct Driver {
    engine: Engine,
    t0: Instant,
    inputs: u64,
    pipelines: u64,
    prompts: Vec<String>,
    passages: Vec<Passage>,
}

fn config(history_cap: usize, live: usize) -> EngineConfig {
    let hour = Duration::from_secs(3_600);
    let wide = |policy: BackendPolicy| BackendPolicy {
        concurrency: live.max(1),
        ..policy
    };
    let mut policies = BTreeMap::new();
    policies.insert(RETRIEVER.to_string(), wide(BackendPolicy::retrieval()));
    policies.insert(GENERATOR.to_string(), wide(BackendPolicy::chat()));
    EngineConfig {
        retriever: RETRIEVER.into(),
        generator: GENERATOR.into(),
        retrieval_timeout: hour,
        first_token_timeout: hour,
        idle_timeout: hour,
        history_cap,
        policies,
        ..EngineConfig::default()
    }
}

impl Driver {
    fn new(history_cap: usize, live: usize) -> Self {
        let t0 = Instant::now();
        let mut engine = Engine::new(config(history_cap, live), t0, SystemTime::UNIX_EPOCH, 7);
        engine.open_conversation(C, "scale", Vec::new(), Vec::new());
        Self {
            engine,
            t0,
            inputs: 0,
            pipelines: 0,
            // Distinct prompts among the live pipelines (the last `live`
            // submitted): identical live retrievals would be joined.
            prompts: (0..(2 * live + 1_024))
                .map(|i| format!("the keep at dawn {i}"))
                .collect(),
            passages: vec![Passage {
                id: "lore.md#1".into(),
                title: "The keep".into(),
                source: "lore.md".into(),
                kind: None,
                heading: None,
                text: "The keep stands on the cliff.".into(),
                score: 1.0,
                entities: Vec::new(),
                location: Default::default(),
            }],
        }
    }

    fn input(&mut self, input: Input) -> Vec<Effect> {
        self.inputs += 1;
        let now = self.t0 + Duration::from_micros(self.inputs);
        self.engine.handle(input, now)
    }

    /// One input for a pipeline; its next step, or `None` when it ended.
    fn step(&mut self, step: Step) -> Option<Step> {
        match step {
            Step::Submit => {
                let n = self.pipelines;
                self.pipelines += 1;
                let prompt = self.prompts[(n % self.prompts.len() as u64) as usize].clone();
                let fx = self.input(Input::Command(Command::Scenario {
                    conversation: C,
                    prompt,
                    seed: Some(n),
                }));
                dispatched(fx, RETRIEVER).map(Step::Retrieved)
            }
            Step::Retrieved(id) => {
                let fx = self.input(Input::Retrieved {
                    id,
                    backend: RETRIEVER.into(),
                    result: Ok(self.passages.clone()),
                });
                dispatched(fx, GENERATOR).map(|g| Step::Token(g, 0))
            }
            Step::Token(id, n) => {
                black_box(self.input(Input::Token {
                    id,
                    backend: GENERATOR.into(),
                    text: "word ".into(),
                }));
                Some(if n + 1 == TOKENS {
                    Step::Finish(id)
                } else {
                    Step::Token(id, n + 1)
                })
            }
            Step::Finish(id) => {
                black_box(self.input(Input::Finished {
                    id,
                    backend: GENERATOR.into(),
                    result: Ok(()),
                }));
                None
            }
        }
    }

    /// Run complete pipelines, `live` at a time, for `inputs` inputs.
    fn run(&mut self, live: usize, inputs: u64, ring: &mut VecDeque<Step>) {
        let stop = self.inputs + inputs;
        while ring.len() < live {
            ring.push_back(Step::Submit);
        }
        while self.inputs < stop {
            let Some(step) = ring.pop_front() else {
                return;
            };
            let next = self.step(step).unwrap_or(Step::Submit);
            ring.push_back(next);
        }
    }
}

fn dispatched(fx: Vec<Effect>, backend: &str) -> Option<RequestId> {
    fx.into_iter().find_map(|e| match e {
        Effect::Dispatch {
            id,
            backend: b,
            call: Call::Retrieve(_) | Call::Generate(_),
        } if b == backend => Some(id),
        _ => None,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `inputs` rounded up to whole cycles of `live` pipelines (23 rounds).
fn whole_cycles(inputs: u64, live: usize) -> u64 {
    let cycle = 23 * live.max(1) as u64;
    inputs.div_ceil(cycle) * cycle
}

/// Inputs per second with `live` pipelines in flight and a full ring.
fn rate(live: usize, history_cap: usize, measured: u64) -> f64 {
    let mut driver = Driver::new(history_cap, live);
    let mut ring = VecDeque::new();
    // Warm up until the ring is full: three requests end per pipeline.
    let fill = (history_cap as u64 / 3 + live as u64 + 1) * 23;
    driver.run(live, fill, &mut ring);
    let elapsed = timed(&mut driver, live, measured, &mut ring);
    assert!(
        driver.engine.footprint().live >= live.min(1),
        "pipelines in flight"
    );
    measured as f64 / elapsed.as_secs_f64()
}

/// The timed part of [`rate`], apart so that a profiler can collect it
/// alone (`valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect='*timed*'`).
#[inline(never)]
fn timed(driver: &mut Driver, live: usize, measured: u64, ring: &mut VecDeque<Step>) -> Duration {
    let start = Instant::now();
    driver.run(live, measured, ring);
    start.elapsed()
}

/// The least state a stream could have in any engine: a small record in
/// the engine's own id map (what a token must read and move on: its
/// count, deadline, sequence and parent) and its reply's text.
struct Hot {
    tokens: u32,
    deadline: u64,
    seq: u64,
    parent: RequestId,
    reply: String,
}

/// Nanoseconds per token with `streams` streams fed round-robin (the
/// engine bench's order), each token doing only what any engine must
/// (find the stream's record, move its count and deadline on, append the
/// text) plus `work` rounds of arithmetic on registers, which stand for
/// the rest of an input's in-cache work and, like the engine's 3,500
/// instructions, keep one input's misses from overlapping the next's.
fn floor_ns(streams: usize, tokens: u64, work: u32) -> f64 {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let ids: Vec<RequestId> = (0..streams)
        .map(|_| RequestId(ulid::Ulid::from_parts(next() >> 16, u128::from(next()))))
        .collect();
    let mut map: IdMap<Hot> = IdMap::default();
    for (seq, id) in ids.iter().enumerate() {
        map.insert(
            *id,
            Hot {
                tokens: 0,
                deadline: 0,
                seq: seq as u64,
                parent: *id,
                reply: String::with_capacity(5 * TOKENS as usize),
            },
        );
    }
    let start = Instant::now();
    for n in 0..tokens {
        let id = ids[(n % streams as u64) as usize];
        let hot = map.get_mut(&id).expect("every stream has its record");
        hot.tokens += 1;
        hot.deadline = n + 1_000_000;
        if hot.tokens == TOKENS {
            hot.tokens = 0;
            hot.reply.clear();
        } else {
            hot.reply.push_str("word ");
        }
        black_box((&hot.parent, hot.seq));
        let mut x = n | 1;
        for _ in 0..work {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        black_box(x);
    }
    start.elapsed().as_nanos() as f64 / tokens as f64
}

/// The floor under the flatness target, beside the engine's own figures:
/// `work` chosen so that the floor's in-cache cost per token equals the
/// engine's per input at the smallest size (`small_ns`), then the floor
/// at the smallest and the largest size. Prints both and their ratio.
fn floor(small: usize, large: usize, small_ns: f64, tokens: u64) {
    // The cost is linear in `work`: two points give the slope (a round is
    // three dependent operations, at least a few tenths of a nanosecond;
    // the bounds keep a disturbed probe from asking for hours of work).
    let probe = |work: u32| median((0..3).map(|_| floor_ns(small, tokens, work)).collect());
    let (bare, at) = (probe(0), probe(1_024));
    let per_round = ((at - bare) / 1_024.0).max(0.1);
    let work = ((small_ns - bare) / per_round).clamp(0.0, 100_000.0) as u32;
    let runs = |streams: usize| median((0..3).map(|_| floor_ns(streams, tokens, work)).collect());
    let (a, b) = (runs(small), runs(large));
    println!(
        "engine_scale: floor (one record and a reply per stream, {work} rounds of register work per token): \
         {a:.0} ns per token with {small} streams, {b:.0} ns with {large}: {:.2}x",
        b / a
    );
}

fn vm(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Child mode: build the state, print VmHWM in kB.
fn memory_child(retained: usize, live: usize) {
    if retained > 0 {
        let mut driver = Driver::new(retained, live);
        let mut ring = VecDeque::new();
        driver.run(
            live,
            (retained as u64 / 3 + live as u64 + 1) * 23,
            &mut ring,
        );
        let f = driver.engine.footprint();
        eprintln!("footprint: {f:?}");
        eprintln!(
            "sizes: Request {} B, TimelineEntry {} B, EventKind {} B, LifecycleEvent {} B, ScenarioEntry {} B, Passage {} B",
            std::mem::size_of::<loreweave::engine::request::Request>(),
            std::mem::size_of::<loreweave::engine::request::TimelineEntry>(),
            std::mem::size_of::<loreweave::engine::event::EventKind>(),
            std::mem::size_of::<loreweave::engine::event::LifecycleEvent>(),
            std::mem::size_of::<loreweave::engine::workspace::ScenarioEntry>(),
            std::mem::size_of::<Passage>(),
        );
        black_box(&driver.engine);
    } else {
        let t0 = Instant::now();
        let engine = Engine::new(config(10_000, 1), t0, SystemTime::UNIX_EPOCH, 7);
        black_box(&engine);
    }
    println!("{}", vm("VmHWM:").unwrap_or(0));
}

fn peak_kb(retained: usize, live: usize) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = Process::new(exe)
        .args(["--memory-child", &retained.to_string(), &live.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--memory-child") {
        let n = |i: usize| args.get(at + i).and_then(|s| s.parse().ok()).unwrap_or(0);
        memory_child(n(1), n(2));
        return;
    }
    // One size, one run, for a profiler: `--profile LIVE INPUTS`.
    if let Some(at) = args.iter().position(|a| a == "--profile") {
        let n = |i: usize| args.get(at + i).and_then(|s| s.parse().ok()).unwrap_or(100);
        let live = n(1) as usize;
        let measured = whole_cycles(n(2), live);
        let r = rate(live, 10_000, measured);
        println!("engine_scale: {live} live pipelines: {r:.0} inputs/s ({measured} inputs)");
        return;
    }
    // `cargo bench` passes --bench; `--quick` (scripts/check) and `cargo
    // test` run small counts, to keep this compiling and running.
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let (lives, runs, measured, cap): (&[usize], usize, u64, usize) = if full {
        (&[100, 10_000, 100_000], 5, 2_000_000, 10_000)
    } else {
        (&[10, 100], 1, 2_000, 100)
    };
    let mut rates = Vec::new();
    for &live in lives {
        let measured = whole_cycles(measured, live);
        let r = median((0..runs).map(|_| rate(live, cap, measured)).collect());
        println!(
            "engine_scale: {live:>7} live pipelines, history ring {cap} full: {:>10.0} inputs/s ({:.3} µs per input)",
            r,
            1e6 / r
        );
        rates.push(r);
    }
    let max = rates.iter().copied().fold(f64::MIN, f64::max);
    let min = rates.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "engine_scale: slowest {min:.0} inputs/s (target >= 1,000,000); largest/smallest {:.2} (target <= 1.5)",
        max / min
    );
    floor(lives[0], lives[lives.len() - 1], 1e9 / rates[0], measured);
    let (retained, live) = if full { (100_000, 1_000) } else { (1_000, 10) };
    let idle = peak_kb(0, 0);
    let busy = peak_kb(retained, live);
    let mb =
        |kb: Option<u64>| kb.map_or("?".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0));
    println!(
        "engine_scale: peak RSS idle {} MB (target <= 20); with {retained} retained requests and {live} live pipelines {} MB (target <= 100)",
        mb(idle),
        mb(busy)
    );
}
