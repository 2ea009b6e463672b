//! Engine rules under a fake clock: no runtime, no terminal, no network.

use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::domain::{BackendError, Passage};
use crate::engine::request::{Outcome, Request};
use ulid::Ulid;

/// The conversation the tests talk in.
const C: ConversationId = ConversationId(1);

/// An engine with conversation `C` open.
fn engine_with(cfg: EngineConfig, t0: Instant, seed: u64) -> Engine {
    let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, seed);
    assert!(engine.open_conversation(C, "test", Vec::new(), Vec::new()));
    engine
}

struct Harness {
    engine: Engine,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            engine: engine_with(EngineConfig::default(), t0, 7),
            t0,
            now: t0,
        }
    }

    fn with(cfg: EngineConfig) -> Self {
        let t0 = Instant::now();
        Self {
            engine: engine_with(cfg, t0, 7),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, secs: f64) -> Instant {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self.now
    }

    fn send(&mut self, input: Input) -> Vec<Effect> {
        self.engine.handle(input, self.now)
    }

    fn scenario(&mut self, prompt: &str) -> Vec<Effect> {
        self.send(Input::Command(Command::Scenario {
            conversation: C,
            prompt: prompt.into(),
            seed: Some(1),
        }))
    }

    fn ask(&mut self, text: &str) -> Vec<Effect> {
        self.send(Input::Command(Command::Ask {
            conversation: C,
            text: text.into(),
            tag: None,
        }))
    }

    fn request(&self, id: RequestId) -> &Request {
        self.engine.registry().get(id).expect("request known")
    }

    fn conv(&self) -> &Conversation {
        self.engine.conversation(C).expect("conversation C is open")
    }
}

fn dispatched(fx: &[Effect]) -> Vec<(RequestId, String, Call)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Dispatch { id, backend, call } => Some((*id, backend.clone(), call.clone())),
            _ => None,
        })
        .collect()
}

fn aborted(fx: &[Effect]) -> Vec<RequestId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Abort { id } => Some(*id),
            _ => None,
        })
        .collect()
}

fn passage(title: &str) -> Passage {
    Passage {
        location: Default::default(),
        id: format!("{title}#0"),
        title: title.into(),
        source: format!("{title}.md"),
        kind: Some("place".into()),
        heading: None,
        text: format!("{title} is a place."),
        score: 1.0,
        entities: vec![],
    }
}

fn single_dispatch(fx: &[Effect]) -> (RequestId, Call) {
    let d = dispatched(fx);
    assert_eq!(d.len(), 1, "expected one dispatch in {fx:?}");
    (d[0].0, d[0].2.clone())
}

#[test]
fn scenario_runs_retrieve_then_generate_and_completes_only_after_both() {
    let mut h = Harness::new();
    let fx = h.scenario("the first encounter");
    let (retrieve, call) = single_dispatch(&fx);
    assert!(matches!(call, Call::Retrieve(ref q) if q.query == "the first encounter"));
    let parent = h.request(retrieve).parent.expect("retrieve has a parent");
    assert_eq!(h.request(parent).kind, Kind::Scenario);

    h.at(0.1);
    let fx = h.send(Input::Retrieved {
        id: retrieve,
        backend: "local".into(),
        result: Ok(vec![passage("Waystone")]),
    });
    let (generate, call) = single_dispatch(&fx);
    let Call::Generate(task) = call else {
        panic!("generation expected")
    };
    assert_eq!(task.passages.len(), 1);
    assert_eq!(task.no_lore_reason, None);
    assert_eq!(h.request(retrieve).outcome(), Some(&Outcome::Completed));
    assert!(
        h.engine.registry().is_live(parent),
        "parent waits for its generation"
    );

    h.at(0.2);
    h.send(Input::Token {
        id: generate,
        backend: "offline".into(),
        text: "# The Title\n".into(),
    });
    assert_eq!(h.request(generate).phase, Phase::Streaming);
    assert!(h.engine.registry().is_live(parent));
    h.send(Input::Finished {
        id: generate,
        backend: "offline".into(),
        result: Ok(()),
    });
    assert_eq!(h.request(parent).outcome(), Some(&Outcome::Completed));
    let entry = &h.engine.scenarios()[0];
    assert_eq!(entry.status, ScenarioStatus::Done);
    assert_eq!(entry.title(), "The Title");
    assert_eq!(entry.passages.len(), 1);
    assert_eq!(h.request(parent).children, vec![retrieve, generate]);
}

#[test]
fn retrieval_timeout_falls_back_without_lore_exactly_at_the_deadline() {
    let mut h = Harness::new();
    let fx = h.scenario("the first encounter");
    let (retrieve, _) = single_dispatch(&fx);
    assert_eq!(
        h.engine.next_deadline(),
        Some(h.t0 + Duration::from_secs(10))
    );

    h.at(9.999);
    let fx = h.send(Input::Tick);
    assert!(fx.is_empty(), "nothing is due before the deadline");
    assert!(h.engine.registry().is_live(retrieve));

    h.at(10.0);
    let fx = h.send(Input::Tick);
    assert!(aborted(&fx).is_empty(), "retrieval observes late calls");
    assert!(
        fx.contains(&Effect::Observe {
            id: retrieve,
            until: h.t0 + Duration::from_secs(40)
        }),
        "the hung task runs on, detached, for the grace: {fx:?}"
    );
    let (_, call) = single_dispatch(&fx);
    let Call::Generate(task) = call else {
        panic!("generation expected")
    };
    assert!(task.passages.is_empty());
    assert_eq!(
        task.no_lore_reason.as_deref(),
        Some("retrieval timed out after 10 s")
    );
    assert_eq!(h.request(retrieve).outcome(), Some(&Outcome::TimedOut));
    assert_eq!(
        h.request(retrieve).ended,
        Some(h.t0 + Duration::from_secs(10))
    );
    assert_eq!(h.engine.backends()["local"].metrics.timed_out, 1);
}

#[test]
fn retrieval_failure_falls_back_at_once() {
    let mut h = Harness::new();
    let fx = h.ask("who guards the waystone?");
    let (retrieve, _) = single_dispatch(&fx);
    h.at(0.05);
    let fx = h.send(Input::Retrieved {
        id: retrieve,
        backend: "local".into(),
        result: Err(BackendError::permanent("index is corrupt")),
    });
    let (_, call) = single_dispatch(&fx);
    let Call::Generate(task) = call else {
        panic!("generation expected")
    };
    assert_eq!(
        task.no_lore_reason.as_deref(),
        Some("retrieval failed: index is corrupt")
    );
    assert!(
        matches!(h.request(retrieve).outcome(), Some(Outcome::Failed(m)) if m == "index is corrupt")
    );
    assert_eq!(h.engine.backends()["local"].metrics.failed, 1);
    let reply = &h.conv().messages[1];
    assert_eq!(
        reply.no_lore.as_deref(),
        Some("retrieval failed: index is corrupt")
    );
}

#[test]
fn late_result_is_dropped_counted_and_never_applied() {
    // Under `abort` the task is gone, but a result it sent just before
    // can still come in: a late drop.
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.late_policy = limits::LatePolicy::Abort;
    let mut h = Harness::with(cfg);
    let fx = h.scenario("the first encounter");
    let (retrieve, _) = single_dispatch(&fx);
    h.at(10.0);
    let fx = h.send(Input::Tick);
    let (generate, _) = single_dispatch(&fx);

    h.at(12.0);
    let fx = h.send(Input::Retrieved {
        id: retrieve,
        backend: "local".into(),
        result: Ok(vec![passage("Too Late")]),
    });
    assert!(
        fx.iter().all(|e| matches!(e, Effect::SaveRequests(_))),
        "a late result starts nothing: {fx:?}"
    );
    assert_eq!(h.engine.backends()["local"].metrics.late_drops, 1);
    assert_eq!(h.request(retrieve).late_drops, 1);
    assert_eq!(
        h.request(retrieve).outcome(),
        Some(&Outcome::TimedOut),
        "final state unchanged"
    );
    assert!(
        h.engine.scenarios()[0].passages.is_empty(),
        "late passages not applied"
    );
    let last = h.engine.registry().events().back().expect("an event");
    assert!(last.text().starts_with("late drop"), "{last:?}");

    // A token for a request nobody ever made is a late drop too, not "unknown".
    let stranger = RequestId(Ulid::from_parts(1, 1));
    h.send(Input::Token {
        id: stranger,
        backend: "offline".into(),
        text: "boo".into(),
    });
    assert_eq!(h.engine.backends()["offline"].metrics.late_drops, 1);
    assert_eq!(h.engine.total_late_drops(), 2);
    assert!(h.engine.registry().is_live(generate));
}

#[test]
fn expiry_produces_exactly_one_final_state() {
    let mut h = Harness::new();
    let fx = h.scenario("x");
    let (retrieve, _) = single_dispatch(&fx);
    h.at(10.0);
    h.send(Input::Tick);
    h.at(30.0);
    h.send(Input::Tick);
    h.send(Input::Retrieved {
        id: retrieve,
        backend: "local".into(),
        result: Err(BackendError::transient("boom")),
    });
    let request = h.request(retrieve);
    let finals = request
        .timeline
        .iter()
        .filter(|e| e.event.is_final())
        .count();
    assert_eq!(finals, 1, "{:?}", request.timeline);
    assert_eq!(h.engine.backends()["local"].metrics.finished(), 1);
}

#[test]
fn generation_first_token_and_idle_deadlines() {
    let mut h = Harness::new();
    let fx = h.ask("q");
    let (retrieve, _) = single_dispatch(&fx);
    let fx = h.send(Input::Retrieved {
        id: retrieve,
        backend: "local".into(),
        result: Ok(vec![]),
    });
    let (chat, _) = single_dispatch(&fx);
    assert_eq!(h.request(chat).kind, Kind::Chat);
    // The registry's deadlines (the engine's also wakes for the finished
    // retrieval's summary batch).
    assert_eq!(
        h.engine.registry().next_deadline(),
        Some(h.t0 + Duration::from_secs(60))
    );
    h.at(5.0);
    h.send(Input::Token {
        id: chat,
        backend: "offline".into(),
        text: "partial ".into(),
    });
    assert_eq!(
        h.engine.registry().next_deadline(),
        Some(h.t0 + Duration::from_secs(35))
    );
    h.at(35.0);
    let fx = h.send(Input::Tick);
    assert_eq!(aborted(&fx), vec![chat]);
    let reply = &h.conv().messages[1];
    assert_eq!(reply.text, "partial ", "partial text is kept");
    assert!(matches!(reply.status, MessageStatus::Failed(_)));
    let parent = h.request(chat).parent.expect("parent");
    assert_eq!(h.request(parent).outcome(), Some(&Outcome::TimedOut));
}

#[test]
fn conversation_is_fifo_and_a_failure_does_not_stop_it() {
    let mut h = Harness::new();
    let fx = h.ask("first");
    let (r1, _) = single_dispatch(&fx);
    assert!(dispatched(&h.ask("second")).is_empty(), "second waits");
    assert!(dispatched(&h.ask("third")).is_empty(), "third waits");
    assert_eq!(h.conv().queue.len(), 2);

    // The first turn fails in generation.
    let fx = h.send(Input::Retrieved {
        id: r1,
        backend: "local".into(),
        result: Ok(vec![]),
    });
    let (g1, _) = single_dispatch(&fx);
    let fx = h.send(Input::Finished {
        id: g1,
        backend: "offline".into(),
        result: Err(BackendError::permanent("model exploded")),
    });
    let (r2, call) = single_dispatch(&fx);
    assert!(matches!(call, Call::Retrieve(ref q) if q.query == "second"));
    let fx = h.send(Input::Retrieved {
        id: r2,
        backend: "local".into(),
        result: Ok(vec![]),
    });
    let (g2, _) = single_dispatch(&fx);
    h.send(Input::Token {
        id: g2,
        backend: "offline".into(),
        text: "two".into(),
    });
    let fx = h.send(Input::Finished {
        id: g2,
        backend: "offline".into(),
        result: Ok(()),
    });
    let (_, call) = single_dispatch(&fx);
    assert!(matches!(call, Call::Retrieve(ref q) if q.query == "third"));
    let texts: Vec<&str> = h.conv().messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["first", "", "second", "two", "third", ""]);
}

#[test]
fn cancelling_a_turn_aborts_its_children_and_ends_it() {
    let mut h = Harness::new();
    let fx = h.ask("q");
    let (retrieve, _) = single_dispatch(&fx);
    let fx = h.send(Input::Command(Command::CancelRunning { conversation: C }));
    assert_eq!(aborted(&fx), vec![retrieve]);
    assert!(dispatched(&fx).is_empty(), "no generation after a cancel");
    let parent = h.request(retrieve).parent.expect("parent");
    assert_eq!(h.request(parent).outcome(), Some(&Outcome::Cancelled));
    assert_eq!(h.request(retrieve).outcome(), Some(&Outcome::Cancelled));
    assert_eq!(h.conv().messages[1].status, MessageStatus::Cancelled);
    assert_eq!(h.engine.registry().live_count(), 0);
}

#[test]
fn rag_off_skips_retrieval_and_says_so() {
    let mut h = Harness::new();
    h.send(Input::Command(Command::SetRag(false)));
    let fx = h.scenario("x");
    let (id, call) = single_dispatch(&fx);
    assert_eq!(h.request(id).kind, Kind::Generate);
    let Call::Generate(task) = call else { panic!() };
    assert_eq!(task.no_lore_reason.as_deref(), Some("RAG is off"));
}

#[test]
fn same_prompt_same_seed_and_regenerate_picks_a_new_one() {
    let mut h = Harness::new();
    h.send(Input::Command(Command::Scenario {
        conversation: C,
        prompt: "The first  encounter".into(),
        seed: None,
    }));
    assert_eq!(
        h.engine.scenarios()[0].seed,
        seed_for_prompt("the first encounter")
    );
    h.send(Input::Command(Command::Regenerate { scenario: 0 }));
    assert_eq!(h.engine.scenarios().len(), 2);
    assert_ne!(h.engine.scenarios()[1].seed, h.engine.scenarios()[0].seed);
    assert_eq!(h.engine.scenarios()[1].prompt, "The first  encounter");
}

#[test]
fn history_ring_stays_bounded() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        history_cap: 50,
        rag: false,
        ..EngineConfig::default()
    };
    let mut engine = engine_with(cfg, t0, 1);
    for i in 0..500u64 {
        let now = t0 + Duration::from_millis(i);
        let fx = engine.handle(
            Input::Command(Command::Scenario {
                conversation: C,
                prompt: format!("p{i}"),
                seed: Some(i),
            }),
            now,
        );
        let (id, _) = single_dispatch(&fx);
        engine.handle(
            Input::Finished {
                id,
                backend: "offline".into(),
                result: Ok(()),
            },
            now,
        );
    }
    assert_eq!(engine.registry().live_count(), 0);
    assert_eq!(engine.registry().history_len(), 50);
    assert_eq!(engine.backends()["offline"].metrics.ok, 500);
}

#[test]
fn usage_the_server_reports_is_recorded_on_the_running_generation_only() {
    let mut h = Harness::new();
    let fx = h.scenario("the first encounter");
    let (retrieve, _) = single_dispatch(&fx);
    let usage = crate::backends::Usage {
        input_tokens: Some(10),
        output_tokens: Some(2),
    };
    h.at(0.1);
    let fx = h.send(Input::Retrieved {
        id: retrieve,
        backend: "local".into(),
        result: Ok(vec![passage("Waystone")]),
    });
    // A request no longer in flight: nothing recorded.
    h.send(Input::Usage {
        id: retrieve,
        backend: "local".into(),
        usage,
    });
    let (generate, _) = single_dispatch(&fx);
    h.send(Input::Usage {
        id: generate,
        backend: "offline".into(),
        usage,
    });
    let texts = |h: &Harness, id| -> Vec<String> {
        h.request(id).timeline.iter().map(|e| e.text()).collect()
    };
    assert!(texts(&h, generate).contains(&"tokens: 10 in, 2 out".to_string()));
    assert!(!texts(&h, retrieve).iter().any(|t| t.starts_with("tokens")));
}

impl Harness {
    /// A scenario run to its end: retrieval, one token, end of stream.
    /// Returns the effects of its last input.
    fn complete_scenario(&mut self, prompt: &str) -> Vec<Effect> {
        let fx = self.scenario(prompt);
        let (retrieve, _) = single_dispatch(&fx);
        let fx = self.send(Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![passage("Waystone")]),
        });
        let (generate, _) = single_dispatch(&fx);
        self.send(Input::Token {
            id: generate,
            backend: "offline".into(),
            text: format!("# {prompt}\n"),
        });
        self.send(Input::Finished {
            id: generate,
            backend: "offline".into(),
            result: Ok(()),
        })
    }
}

/// Finished scenarios past the cap leave memory (each was saved when it
/// ended); indexes never shift, so the TUI's numbers, `/regenerate N` and
/// `/export N` keep naming the same scenario, and a dropped one says so.
#[test]
fn scenarios_past_the_cap_leave_memory_and_indexes_stay() {
    let mut h = Harness::new();
    h.engine.scenarios = scenarios::ScenarioLog::with_cap(2);
    let mut saved = 0;
    for n in 0..5 {
        let fx = h.complete_scenario(&format!("tale {n}"));
        saved += fx
            .iter()
            .filter(|e| matches!(e, Effect::SaveScenario { .. }))
            .count();
    }
    assert_eq!(saved, 5, "every scenario is saved as it ends");
    let log = h.engine.scenarios();
    assert_eq!((log.first(), log.end(), log.len()), (3, 5, 2));
    assert_eq!(log[3].title(), "tale 3");
    assert_eq!(log[4].title(), "tale 4");
    assert!(log.get(2).is_none());

    let fx = h.send(Input::Command(Command::Export { scenario: 1 }));
    assert!(fx.is_empty());
    let notice = h.engine.notice().expect("a notice");
    assert!(notice.is_error && notice.text.contains("scenario 2 is no longer held"));
    let fx = h.send(Input::Command(Command::Export { scenario: 4 }));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Export { contents, .. } if contents.contains("tale 4")))
    );

    // A regenerated one gets the next index and holds its pipeline while
    // it runs, even past the cap.
    h.send(Input::Command(Command::Regenerate { scenario: 3 }));
    h.send(Input::Command(Command::Regenerate { scenario: 4 }));
    h.send(Input::Command(Command::Regenerate { scenario: 5 }));
    let log = h.engine.scenarios();
    // The finished ones made way; the three running ones stay.
    assert_eq!((log.first(), log.end(), log.len()), (5, 8, 3));
    assert_eq!(log[5].prompt, "tale 3");
    assert_eq!(log[7].prompt, "tale 3");
    assert!(log.iter().all(|e| e.status == ScenarioStatus::Running));
}

/// Under load, finished requests' summaries go out in batches of at most
/// SUMMARY_BATCH_MAX (plus what one input ends) long before the second is
/// up, each summary once.
#[test]
fn summaries_go_out_in_bounded_batches_under_load() {
    let mut h = Harness::new();
    // One scenario stays live (waiting for its retrieval): never idle.
    let fx = h.scenario("the long one");
    assert_eq!(dispatched(&fx).len(), 1);
    let mut batches = Vec::new();
    let mut finished = 0;
    for n in 0..(SUMMARY_BATCH_MAX + 200) {
        let fx = h.send(Input::Command(Command::KbAdd {
            paths: vec![format!("doc{n}.md")],
        }));
        let (id, _) = single_dispatch(&fx);
        let fx = h.send(Input::Ingested {
            id,
            backend: KB_BACKEND.into(),
            result: Ok("1 file".into()),
        });
        finished += 1;
        batches.extend(fx.into_iter().filter_map(|e| match e {
            Effect::SaveRequests(batch) => Some(batch),
            _ => None,
        }));
    }
    assert_eq!(h.now, h.t0, "no time passed");
    assert_eq!(batches.len(), 1, "one full batch so far");
    assert_eq!(batches[0].len(), SUMMARY_BATCH_MAX);
    assert_eq!(h.engine.footprint().summaries, finished - SUMMARY_BATCH_MAX);
    let mut ids: Vec<RequestId> = batches.iter().flatten().map(|s| s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), SUMMARY_BATCH_MAX, "each summary once");
}
