//! Property test: random interleavings of submissions, results, tokens,
//! timer firings and cancellations. Whatever happens, every request reaches
//! exactly one final state and keeps it, no result lands after it, the
//! per-backend counters add up to what was submitted, and no backend ever has
//! more calls in flight than it has slots.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use loreweave::domain::{BackendError, Passage};
use loreweave::engine::request::{Phase, RequestId};
use loreweave::engine::{Call, Command, Effect, Engine, EngineConfig, Input};
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
    CancelRunning,
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
        1 => Just(Step::CancelRunning),
    ]
}

struct World {
    engine: Engine,
    now: Instant,
    /// Every call ever dispatched (answered or not): late answers are fair game.
    calls: Vec<(RequestId, String, Call)>,
    finals: HashMap<RequestId, (String, Option<Instant>)>,
    concurrency: HashMap<String, u64>,
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
        Self {
            engine: Engine::new(cfg, now, SystemTime::UNIX_EPOCH, 5),
            now,
            calls: Vec::new(),
            finals: HashMap::new(),
            concurrency,
        }
    }

    fn apply(&mut self, input: Input) {
        let fx = self.engine.handle(input, self.now);
        for effect in fx {
            if let Effect::Dispatch { id, backend, call } = effect {
                self.calls.push((id, backend, call));
            }
        }
        self.check();
    }

    fn pick(&self, n: usize) -> Option<(RequestId, String, Call)> {
        (!self.calls.is_empty()).then(|| self.calls[n % self.calls.len()].clone())
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Scenario(p) => self.apply(Input::Command(Command::Scenario {
                prompt: format!("prompt {p}"),
                seed: Some(u64::from(p)),
            })),
            Step::Ask(p) => self.apply(Input::Command(Command::Ask {
                conversation: 0,
                text: format!("question {p}"),
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
            Step::CancelRunning => {
                self.apply(Input::Command(Command::CancelRunning { conversation: 0 }))
            }
        }
    }

    fn check(&mut self) {
        let all = self.engine.registry().all();
        for r in &all {
            let finals = r
                .timeline
                .iter()
                .filter(|e| {
                    ["completed", "timed out", "cancelled", "short-circuited"]
                        .contains(&e.what.as_str())
                        || e.what.starts_with("failed")
                        || e.what.starts_with("joined ") && !e.what.contains(':')
                })
                .count();
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
            let submitted = all.iter().filter(|r| &r.backend == name).count() as u64;
            let live = all
                .iter()
                .filter(|r| &r.backend == name && !r.phase.is_final())
                .count() as u64;
            assert_eq!(
                m.finished() + live,
                submitted,
                "{name}: counters do not add up"
            );
            let running = all
                .iter()
                .filter(|r| {
                    &r.backend == name && matches!(r.phase, Phase::Dispatched | Phase::Streaming)
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
        assert!(self.engine.conversations()[0].queue.is_empty());
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_invariants_hold_under_any_interleaving(embed in any::<bool>(), steps in prop::collection::vec(step(), 1..80)) {
        let mut world = World::new(embed);
        for step in steps {
            world.step(step);
        }
        world.drain();
    }
}
