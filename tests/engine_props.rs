//! Property test: random interleavings of submissions (in two
//! conversations), results, tokens, timer firings, cancellations and the
//! closing of a conversation. Whatever happens, every request reaches
//! exactly one final state and keeps it, no result lands after it, the
//! per-backend counters add up to what was submitted, and no backend ever has
//! more calls in flight than it has slots. What the engine asks to persist
//! stays cheap and consistent: a reply is saved at most every 250 ms while
//! it runs and never after its final save, every finished request is
//! summarised exactly once, and nothing is saved for a closed conversation.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use loreweave::domain::{BackendError, Passage};
use loreweave::engine::request::{Phase, RequestId};
use loreweave::engine::workspace::{ConversationId, MessageKey, MessageStatus};
use loreweave::engine::{Call, Command, Effect, Engine, EngineConfig, Input, REPLY_SAVE_EVERY};

/// The two conversations; the second may be closed along the way.
const A: ConversationId = ConversationId(1);
const B: ConversationId = ConversationId(2);

fn conversation(p: u8) -> ConversationId {
    if p.is_multiple_of(2) { A } else { B }
}
use loreweave::engine::event::EventKind;
use loreweave::runtime::Tap;
use loreweave::trace::{Recorder, Recording, Snapshot, TraceLine};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Scenario(u8),
    Ask(u8),
    Ok(usize),
    Transient(usize),
    Permanent(usize),
    Token(usize),
    Advance(u32),
    Cancel(usize),
    CancelRunning(u8),
    CloseB,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4).prop_map(Step::Scenario),
        2 => (0u8..4).prop_map(Step::Ask),
        4 => any::<usize>().prop_map(Step::Ok),
        2 => any::<usize>().prop_map(Step::Transient),
        1 => any::<usize>().prop_map(Step::Permanent),
        2 => any::<usize>().prop_map(Step::Token),
        3 => (0u32..15_000).prop_map(Step::Advance),
        1 => any::<usize>().prop_map(Step::Cancel),
        1 => (0u8..2).prop_map(Step::CancelRunning),
        1 => Just(Step::CloseB),
    ]
}

struct World {
    engine: Engine,
    now: Instant,
    /// Every call ever dispatched (answered or not): late answers are fair game.
    calls: Vec<(RequestId, String, Call)>,
    finals: HashMap<RequestId, (String, Option<Instant>)>,
    concurrency: HashMap<String, u64>,
    /// Per saved reply: when it was last saved while running, and whether
    /// its final save has been seen.
    replies: HashMap<(ConversationId, MessageKey), (Option<Instant>, bool)>,
    summarised: HashSet<RequestId>,
    b_closed: bool,
    /// Records every input and event, as `--trace` does.
    recorder: Recorder,
    recording: Recording,
}

impl World {
    fn new(embed: bool) -> Self {
        let mut cfg = EngineConfig {
            history_cap: 100_000,
            ..EngineConfig::default()
        };
        cfg.retrieval_policy.concurrency = 2;
        cfg.retrieval_policy.breaker_failures = 3;
        cfg.retrieval_policy.breaker_open = Duration::from_secs(20);
        cfg.chat_policy.concurrency = 1;
        // Half the worlds embed their queries first.
        cfg.embedder = embed.then(|| "embed".to_string());
        let concurrency = HashMap::from([
            ("local".to_string(), 2),
            ("offline".to_string(), 1),
            ("embed".to_string(), 4),
        ]);
        let now = Instant::now();
        let mut engine = Engine::new(cfg, now, SystemTime::UNIX_EPOCH, 5);
        assert!(engine.open_conversation(A, "a", Vec::new(), Vec::new()));
        assert!(engine.open_conversation(B, "b", Vec::new(), Vec::new()));
        engine.set_event_tap(true);
        let recording = Recording::new(usize::MAX);
        let recorder = Recorder::new(&engine, recording.clone());
        Self {
            recorder,
            recording,
            engine,
            now,
            calls: Vec::new(),
            finals: HashMap::new(),
            concurrency,
            replies: HashMap::new(),
            summarised: HashSet::new(),
            b_closed: false,
        }
    }

    fn apply(&mut self, input: Input) {
        self.recorder.input(self.now, &input);
        let fx = self.engine.handle(input, self.now);
        let events = self.engine.take_events();
        self.recorder.events(&self.engine, &events);
        self.effects(fx);
        self.check();
    }

    fn effects(&mut self, fx: Vec<Effect>) {
        for effect in fx {
            match effect {
                Effect::Dispatch { id, backend, call } => self.calls.push((id, backend, call)),
                Effect::SaveReply {
                    conversation,
                    message,
                    status,
                    ..
                } => {
                    assert!(
                        !(self.b_closed && conversation == B),
                        "a reply saved for a closed conversation"
                    );
                    let (last, ended) = self
                        .replies
                        .entry((conversation, message))
                        .or_insert((None, false));
                    assert!(!*ended, "{message} saved after its final save");
                    if status == MessageStatus::Running {
                        if let Some(last) = *last {
                            assert!(
                                self.now >= last + REPLY_SAVE_EVERY,
                                "{message} saved twice within 250 ms"
                            );
                        }
                        *last = Some(self.now);
                    } else {
                        *ended = true;
                    }
                }
                Effect::SaveRequests(batch) => {
                    assert!(!batch.is_empty(), "an empty batch");
                    for summary in batch {
                        assert!(
                            !(self.b_closed && summary.conversation == Some(B)),
                            "a summary saved for a closed conversation"
                        );
                        assert!(
                            self.summarised.insert(summary.id),
                            "{} summarised twice",
                            summary.id
                        );
                        let finished = self
                            .engine
                            .registry()
                            .get(summary.id)
                            .is_some_and(|r| r.phase.is_final());
                        assert!(finished, "{} summarised before it ended", summary.id);
                    }
                }
                Effect::SaveScenario { conversation, .. } => {
                    assert!(
                        !(self.b_closed && conversation == B),
                        "a scenario saved for a closed conversation"
                    );
                }
                _ => {}
            }
        }
    }

    fn pick(&self, n: usize) -> Option<(RequestId, String, Call)> {
        (!self.calls.is_empty()).then(|| self.calls[n % self.calls.len()].clone())
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Scenario(p) => self.apply(Input::Command(Command::Scenario {
                conversation: conversation(p),
                prompt: format!("prompt {p}"),
                seed: Some(u64::from(p)),
            })),
            Step::Ask(p) => self.apply(Input::Command(Command::Ask {
                conversation: conversation(p),
                text: format!("question {p}"),
                tag: None,
            })),
            Step::Ok(n) | Step::Transient(n) | Step::Permanent(n) => {
                let Some((id, backend, call)) = self.pick(n) else {
                    return;
                };
                let error = match step {
                    Step::Transient(_) => Some(BackendError::transient("503")),
                    Step::Permanent(_) => Some(BackendError::permanent("400")),
                    _ => None,
                };
                let input = match call {
                    Call::Retrieve(_) => Input::Retrieved {
                        id,
                        backend,
                        result: match error {
                            Some(e) => Err(e),
                            None => Ok(vec![passage()]),
                        },
                    },
                    Call::Embed(_) => Input::Embedded {
                        id,
                        backend,
                        result: match error {
                            Some(e) => Err(e),
                            None => Ok(vec![vec![0.6, 0.8]]),
                        },
                    },
                    Call::Generate(_) => Input::Finished {
                        id,
                        backend,
                        result: error.map_or(Ok(()), Err),
                    },
                    Call::Ingest(_) => Input::Ingested {
                        id,
                        backend,
                        result: error.map_or(Ok("done".into()), |e| Err(e.message)),
                    },
                };
                self.apply(input);
            }
            Step::Token(n) => {
                let Some((id, backend, _)) = self.pick(n) else {
                    return;
                };
                self.apply(Input::Token {
                    id,
                    backend,
                    text: "tok ".into(),
                });
            }
            Step::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.apply(Input::Tick);
            }
            Step::Cancel(n) => {
                let Some((id, _, _)) = self.pick(n) else {
                    return;
                };
                self.apply(Input::Command(Command::Cancel { id: id.to_string() }));
            }
            Step::CancelRunning(p) => self.apply(Input::Command(Command::CancelRunning {
                conversation: conversation(p),
            })),
            Step::CloseB => {
                let fx = self.engine.close_conversation(B, self.now);
                let events = self.engine.take_events();
                self.recorder.events(&self.engine, &events);
                self.b_closed = true;
                self.effects(fx);
                self.check();
                assert!(
                    self.engine
                        .registry()
                        .live_requests()
                        .all(|r| r.conversation != Some(B)),
                    "closing B left its requests running"
                );
            }
        }
    }

    fn check(&mut self) {
        let all = self.engine.registry().all();
        for r in &all {
            let finals = r.timeline.iter().filter(|e| e.event.is_final()).count();
            assert!(
                finals <= 1,
                "{} has {finals} final events: {:?}",
                r.id,
                r.timeline
            );
            if let Phase::Done(_) = r.phase {
                assert_eq!(finals, 1, "{}: {:?}", r.id, r.timeline);
                let seen = (r.phase.label().to_string(), r.ended);
                let before = self.finals.entry(r.id).or_insert_with(|| seen.clone());
                assert_eq!(*before, seen, "a final state changed for {}", r.id);
            } else {
                assert!(
                    !self.finals.contains_key(&r.id),
                    "{} came back to life",
                    r.id
                );
            }
        }
        for (name, backend) in self.engine.backends() {
            let m = &backend.metrics;
            assert!(
                m.in_flight <= self.concurrency[name],
                "{name}: {} in flight",
                m.in_flight
            );
            let submitted = all.iter().filter(|r| *r.backend == **name).count() as u64;
            let live = all
                .iter()
                .filter(|r| *r.backend == **name && !r.phase.is_final())
                .count() as u64;
            assert_eq!(
                m.finished() + live,
                submitted,
                "{name}: counters do not add up"
            );
            let running = all
                .iter()
                .filter(|r| {
                    *r.backend == **name && matches!(r.phase, Phase::Dispatched | Phase::Streaming)
                })
                .count() as u64;
            assert_eq!(
                m.in_flight, running,
                "{name}: in_flight disagrees with the registry"
            );
        }
    }

    /// Let every deadline pass: nothing may wait forever.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            let Some(next) = self.engine.next_deadline() else {
                break;
            };
            self.now = self.now.max(next);
            self.apply(Input::Tick);
        }
        assert!(
            !self.engine.is_busy(),
            "requests still live after every deadline passed"
        );
        assert!(
            self.engine
                .registry()
                .all()
                .iter()
                .all(|r| r.phase.is_final())
        );
        assert!(self.engine.conversations().all(|(_, c)| c.queue.is_empty()));
        // Idle: every finished request of an open conversation (or of none)
        // has been summarised.
        for r in self.engine.registry().all() {
            if !(self.b_closed && r.conversation == Some(B)) {
                assert!(self.summarised.contains(&r.id), "{} never summarised", r.id);
            }
        }
    }
}

fn passage() -> Passage {
    Passage {
        location: Default::default(),
        id: "a#0".into(),
        title: "A".into(),
        source: "a.md".into(),
        kind: None,
        heading: None,
        text: "A.".into(),
        score: 1.0,
        entities: vec![],
    }
}

impl World {
    /// The trace of this world, written and parsed back.
    fn trace(&self, redact: bool) -> (String, Vec<TraceLine>) {
        let snapshot = Snapshot::take(
            &self.engine,
            Some(&self.recording),
            serde_json::json!({}),
            redact,
        );
        let mut out = Vec::new();
        snapshot.write_to(&mut out).expect("written to memory");
        let text = String::from_utf8(out).expect("UTF-8");
        let lines = loreweave::trace::parse(&text).unwrap_or_else(|(n, e)| panic!("line {n}: {e}"));
        (text, lines)
    }

    /// The trace's invariants: one final event per request, children end
    /// before their parents, late arrivals only after the end, and every
    /// line round-trips through serde.
    fn check_trace(&self) {
        let (text, lines) = self.trace(false);
        assert!(matches!(lines.first(), Some(TraceLine::Header(h)) if h.complete && !h.redacted));
        // Round trip: parse, write again, the same line.
        for (raw, line) in text.lines().zip(&lines) {
            let again = serde_json::to_string(line).expect("serialised");
            assert_eq!(again, raw, "line does not round-trip");
        }
        let mut final_at: HashMap<RequestId, usize> = HashMap::new();
        let mut parent_of: HashMap<RequestId, RequestId> = HashMap::new();
        for (n, line) in lines.iter().enumerate() {
            let TraceLine::Event(e) = line else { continue };
            let Some(id) = e.id else { continue };
            if let Some(parent) = e.parent {
                parent_of.insert(id, parent);
            }
            match &e.event {
                EventKind::Final { .. } => {
                    assert!(
                        final_at.insert(id, n).is_none(),
                        "{id} has two final events"
                    );
                }
                EventKind::LateArrival(_)
                | EventKind::Observed { .. }
                | EventKind::Abandoned { .. } => {
                    // Late arrivals (and an observed call's end) only ever follow the end.
                    assert!(
                        final_at.contains_key(&id),
                        "{} before {id} ended (line {n})",
                        e.text
                    );
                }
                _ => assert!(
                    !final_at.contains_key(&id),
                    "{} after {id} ended (line {n})",
                    e.text
                ),
            }
        }
        let requests: Vec<_> = lines
            .iter()
            .filter_map(|l| match l {
                TraceLine::Request(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), self.engine.registry().all().len());
        for r in &requests {
            assert!(final_at.contains_key(&r.id), "{} has no final event", r.id);
            if let Some(parent) = r.parent {
                assert!(
                    final_at[&r.id] < final_at[&parent],
                    "child {} ends after its parent {parent}",
                    r.id
                );
            }
        }
        // Redacted: the same lines, no text of the user's left.
        let (redacted, lines_r) = self.trace(true);
        assert_eq!(lines_r.len(), lines.len());
        for secret in ["question ", "prompt ", "tok ", "a.md"] {
            assert!(!redacted.contains(secret), "{secret:?} survived --redact");
        }
    }

    /// Re-drive a fresh engine with the trace's inputs at their times: it
    /// must do exactly what this one did (the trace is complete).
    fn check_redrive(&self) {
        let (_, lines) = self.trace(false);
        let Some(TraceLine::Header(header)) = lines.first() else {
            panic!("no header");
        };
        let origin = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(header.started_ms);
        let mut engine = Engine::new(header.engine.clone(), origin, wall, header.seed);
        engine.open_conversation(A, "a", Vec::new(), Vec::new());
        engine.open_conversation(B, "b", Vec::new(), Vec::new());
        engine.set_event_tap(true);
        let mut replayed = Vec::new();
        for line in &lines {
            if let TraceLine::Input { t_us, input } = line {
                engine.handle(input.clone(), origin + Duration::from_micros(*t_us));
                replayed.extend(
                    engine
                        .take_events()
                        .into_iter()
                        .map(|e| (e.t_ms, e.id, e.event)),
                );
            }
        }
        let recorded: Vec<_> = lines
            .iter()
            .filter_map(|l| match l {
                TraceLine::Event(e) => Some((e.t_ms, e.id, e.event.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            replayed, recorded,
            "re-driving the trace did something else"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_invariants_hold_under_any_interleaving(embed in any::<bool>(), steps in prop::collection::vec(step(), 1..80)) {
        let mut world = World::new(embed);
        let redrivable = !steps.iter().any(|s| matches!(s, Step::CloseB));
        for step in steps {
            world.step(step);
        }
        world.drain();
        world.check_trace();
        // Closing a conversation is not an engine input (the trace cannot
        // replay it); every other world must replay exactly.
        if redrivable {
            world.check_redrive();
        }
    }
}
