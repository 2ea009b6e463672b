//! Resilience rules under a fake clock: breakers, retries, slots, rate
//! limits, de-duplication, cancellation and bounded memory.

use std::time::{Duration, Instant, SystemTime};

use super::breaker::Force;
use super::request::{Kind, Outcome, Phase, RequestId};
use super::*;
use crate::domain::BackendError;

const C: ConversationId = ConversationId(1);

fn engine_with(cfg: EngineConfig, t0: Instant, seed: u64) -> Engine {
    let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, seed);
    assert!(engine.open_conversation(C, "test", Vec::new(), Vec::new()));
    engine
}

struct H {
    engine: Engine,
    t0: Instant,
    now: Instant,
}

impl H {
    fn with(cfg: EngineConfig) -> Self {
        let t0 = Instant::now();
        Self {
            engine: engine_with(cfg, t0, 11),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, secs: f64) {
        self.now = self.t0 + Duration::from_secs_f64(secs);
    }

    fn send(&mut self, input: Input) -> Vec<Effect> {
        self.engine.handle(input, self.now)
    }

    fn tick(&mut self) -> Vec<Effect> {
        self.send(Input::Tick)
    }

    fn scenario(&mut self, prompt: &str) -> Vec<Effect> {
        self.send(Input::Command(Command::Scenario {
            conversation: C,
            prompt: prompt.into(),
            seed: Some(1),
        }))
    }

    fn retrieved(
        &mut self,
        id: RequestId,
        result: Result<Vec<Passage>, BackendError>,
    ) -> Vec<Effect> {
        self.send(Input::Retrieved {
            id,
            backend: "local".into(),
            result,
        })
    }

    fn request(&self, id: RequestId) -> &request::Request {
        self.engine.registry().get(id).expect("known request")
    }

    /// Every request of `kind`, oldest first.
    fn of_kind(&self, kind: Kind) -> Vec<RequestId> {
        self.engine
            .registry()
            .all()
            .into_iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.id)
            .collect()
    }

    fn conv(&self) -> &Conversation {
        self.engine.conversation(C).expect("conversation C is open")
    }

    fn local(&self) -> &limits::Backend {
        &self.engine.backends()["local"]
    }
}

fn no_retries() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.retry.max_retries = 0;
    cfg
}

fn retrieves(fx: &[Effect]) -> Vec<RequestId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Dispatch {
                id,
                call: Call::Retrieve(_),
                ..
            } => Some(*id),
            _ => None,
        })
        .collect()
}

fn p(title: &str) -> Passage {
    Passage {
        location: Default::default(),
        id: format!("{title}#0"),
        title: title.into(),
        source: format!("{title}.md"),
        kind: None,
        heading: None,
        text: format!("{title}."),
        score: 1.0,
        entities: vec![],
    }
}

fn http(status: u16) -> BackendError {
    if status >= 500 || status == 429 || status == 408 {
        BackendError::transient(format!("HTTP {status}"))
    } else {
        BackendError::permanent(format!("HTTP {status}"))
    }
}

fn breaker_events(h: &H) -> Vec<String> {
    h.engine
        .registry()
        .events()
        .iter()
        .filter(|e| e.id.is_none() && &*e.backend == "local" && e.text().starts_with("breaker"))
        .map(|e| e.text())
        .collect()
}

#[test]
fn breaker_opens_on_exactly_the_fifth_failure_and_the_sixth_call_never_dispatches() {
    let mut h = H::with(no_retries());
    for n in 1..=5 {
        let fx = h.scenario(&format!("q{n}"));
        let [id] = retrieves(&fx)[..] else {
            panic!("one retrieval")
        };
        h.retrieved(id, Err(http(503)));
        let opened = breaker_events(&h).len();
        assert_eq!(opened, usize::from(n == 5), "after failure {n}");
    }
    assert_eq!(h.local().breaker.label(), "open");
    let fx = h.scenario("q6");
    assert!(
        retrieves(&fx).is_empty(),
        "the 6th call never reaches the backend"
    );
    let sixth = *h.of_kind(Kind::Retrieve).last().expect("a sixth retrieve");
    assert_eq!(h.request(sixth).outcome(), Some(&Outcome::ShortCircuited));
    assert_eq!(h.local().metrics.short_circuited, 1);
    // Generation went on without lore, at once.
    let entry = h.engine.scenarios().last().expect("scenario");
    assert_eq!(
        entry.no_lore.as_deref(),
        Some("retrieval skipped: breaker open on local")
    );
    assert_eq!(
        breaker_events(&h).len(),
        1,
        "the transition is published once"
    );
}

#[test]
fn a_success_in_between_resets_the_count() {
    let mut h = H::with(no_retries());
    for n in 0..9 {
        let fx = h.scenario(&format!("q{n}"));
        let [id] = retrieves(&fx)[..] else {
            panic!("one retrieval")
        };
        // Four failures, a success, four failures: never five in a row.
        let result = if n == 4 {
            Ok(vec![p("x")])
        } else {
            Err(http(500))
        };
        h.retrieved(id, result);
    }
    assert_eq!(h.local().breaker.label(), "closed");
    assert!(breaker_events(&h).is_empty());
}

#[test]
fn after_the_open_period_exactly_one_probe_goes_out() {
    let mut h = H::with(no_retries());
    for n in 0..5 {
        let fx = h.scenario(&format!("q{n}"));
        let [id] = retrieves(&fx)[..] else { panic!() };
        h.retrieved(id, Err(http(503)));
    }
    assert_eq!(
        h.local().breaker.next_change(),
        Some(h.t0 + Duration::from_secs(60))
    );
    h.at(59.9);
    assert!(
        retrieves(&h.scenario("early")).is_empty(),
        "still open at 59.9 s"
    );
    h.at(60.0);
    h.tick();
    assert_eq!(h.local().breaker.label(), "half-open");
    let probe = retrieves(&h.scenario("probe"));
    assert_eq!(probe.len(), 1, "one probe");
    assert!(
        retrieves(&h.scenario("other 1")).is_empty(),
        "short-circuited while probing"
    );
    assert!(retrieves(&h.scenario("other 2")).is_empty());
    h.retrieved(probe[0], Ok(vec![p("back")]));
    assert_eq!(h.local().breaker.label(), "closed");
    assert_eq!(retrieves(&h.scenario("after")).len(), 1);
    let events = breaker_events(&h);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[1].contains("open -> half-open"), "{events:?}");
    assert!(events[2].contains("half-open -> closed"), "{events:?}");
}

#[test]
fn a_probe_that_times_out_reopens_the_breaker() {
    let mut h = H::with(no_retries());
    for n in 0..5 {
        let fx = h.scenario(&format!("q{n}"));
        let [id] = retrieves(&fx)[..] else { panic!() };
        h.retrieved(id, Err(http(503)));
    }
    h.at(60.0);
    let probe = retrieves(&h.scenario("probe"));
    assert_eq!(probe.len(), 1);
    h.at(70.0);
    let fx = h.tick();
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Observe { id, .. } if *id == probe[0])),
        "the timed-out probe is observed (retrieval's late policy): {fx:?}"
    );
    assert_eq!(
        h.local().breaker.label(),
        "open",
        "half-open cannot get stuck"
    );
}

#[test]
fn transient_errors_are_retried_with_jittered_backoff_at_the_exact_time() {
    let mut h = H::with(EngineConfig::default());
    let fx = h.scenario("q");
    let [id] = retrieves(&fx)[..] else { panic!() };
    let fx = h.retrieved(id, Err(http(503)));
    assert!(retrieves(&fx).is_empty(), "waits for the backoff");
    let Phase::Retrying { until } = h.request(id).phase else {
        panic!("retrying expected, got {:?}", h.request(id).phase)
    };
    let delay = until - h.now;
    assert!(
        delay <= Duration::from_secs(1),
        "first window is base = 1 s: {delay:?}"
    );
    assert_eq!(h.engine.next_deadline(), Some(until));
    assert_eq!(h.local().metrics.retries, 1);
    assert_eq!(
        h.local().metrics.in_flight,
        0,
        "no slot held while backing off"
    );
    // One tick just before: nothing. At `until`: attempt 2 goes out.
    h.now = until - Duration::from_millis(1);
    assert!(retrieves(&h.tick()).is_empty());
    h.now = until;
    assert_eq!(retrieves(&h.tick()), vec![id]);
    assert_eq!(h.request(id).attempt, 2);
    let timeline: Vec<String> = h.request(id).timeline.iter().map(|e| e.text()).collect();
    assert!(
        timeline
            .iter()
            .any(|w| w.starts_with("retry 1 in") && w.ends_with("HTTP 503")),
        "{timeline:?}"
    );
    // A late answer from attempt 1 cannot land: it was already over.
    h.retrieved(id, Ok(vec![p("second")]));
    assert_eq!(h.request(id).outcome(), Some(&Outcome::Completed));
}

#[test]
fn at_most_two_retries_then_failure_and_fallback() {
    let mut h = H::with(EngineConfig::default());
    let fx = h.scenario("q");
    let [id] = retrieves(&fx)[..] else { panic!() };
    for _ in 0..2 {
        h.retrieved(id, Err(http(502)));
        let Phase::Retrying { until } = h.request(id).phase else {
            panic!()
        };
        h.now = until;
        assert_eq!(retrieves(&h.tick()), vec![id]);
    }
    h.retrieved(id, Err(http(502)));
    assert_eq!(
        h.request(id).outcome(),
        Some(&Outcome::Failed(
            "HTTP 502 (gave up after 2 retries)".into()
        ))
    );
    assert_eq!(h.request(id).attempt, 3);
    let entry = h.engine.scenarios().last().expect("scenario");
    assert_eq!(
        entry.no_lore.as_deref(),
        Some("retrieval failed: HTTP 502 (gave up after 2 retries)")
    );
}

#[test]
fn client_errors_are_never_retried() {
    for status in [400, 401, 404, 422] {
        let mut h = H::with(EngineConfig::default());
        let fx = h.scenario("q");
        let [id] = retrieves(&fx)[..] else { panic!() };
        h.retrieved(id, Err(http(status)));
        assert_eq!(h.request(id).attempt, 1);
        assert!(
            matches!(h.request(id).outcome(), Some(Outcome::Failed(_))),
            "{status}"
        );
        assert_eq!(h.local().metrics.retries, 0);
    }
}

#[test]
fn retry_after_longer_than_the_deadline_fails_fast() {
    let mut h = H::with(EngineConfig::default());
    let fx = h.scenario("q");
    let [id] = retrieves(&fx)[..] else { panic!() };
    h.at(1.0);
    let mut error = http(429);
    error.retry_after = Some(Duration::from_secs(30));
    h.retrieved(id, Err(error));
    let Some(Outcome::Failed(reason)) = h.request(id).outcome() else {
        panic!("fails at once: {:?}", h.request(id).phase)
    };
    assert!(
        reason.contains("Retry-After in 30s would pass the deadline"),
        "{reason}"
    );
    assert_eq!(h.request(id).ended, Some(h.t0 + Duration::from_secs(1)));
}

#[test]
fn retry_after_within_the_deadline_is_honoured() {
    let mut h = H::with(EngineConfig::default());
    let fx = h.scenario("q");
    let [id] = retrieves(&fx)[..] else { panic!() };
    let mut error = http(503);
    error.retry_after = Some(Duration::from_secs(3));
    h.retrieved(id, Err(error));
    assert_eq!(
        h.request(id).phase,
        Phase::Retrying {
            until: h.t0 + Duration::from_secs(3)
        }
    );
}

#[test]
fn no_retry_starts_after_the_deadline() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.retry.max_retries = 50;
    cfg.retrieval_policy.breaker_failures = 1_000;
    let mut h = H::with(cfg);
    let fx = h.scenario("q");
    let [id] = retrieves(&fx)[..] else { panic!() };
    let deadline = h.t0 + Duration::from_secs(10);
    let mut dispatch_times = vec![h.now];
    loop {
        h.retrieved(id, Err(http(500)));
        match h.request(id).phase {
            Phase::Retrying { until } => {
                assert!(until < deadline, "retry scheduled at or after the deadline");
                h.now = until;
                if !retrieves(&h.tick()).is_empty() {
                    dispatch_times.push(h.now);
                }
            }
            Phase::Done(_) => break,
            ref other => panic!("{other:?}"),
        }
    }
    assert!(dispatch_times.iter().all(|t| *t < deadline));
    let outcome = h.request(id).outcome().cloned();
    assert!(
        matches!(&outcome, Some(Outcome::Failed(r)) if r.contains("would pass the deadline")),
        "{outcome:?} after {} dispatches",
        dispatch_times.len()
    );
}

#[test]
fn concurrency_slots_queue_in_fifo_order() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.concurrency = 2;
    let mut h = H::with(cfg);
    let mut started = Vec::new();
    for n in 0..5 {
        started.extend(retrieves(&h.scenario(&format!("distinct {n}"))));
    }
    assert_eq!(started.len(), 2);
    assert_eq!(h.local().metrics.in_flight, 2);
    assert_eq!(h.local().metrics.queued, 3);
    let all = h.of_kind(Kind::Retrieve);
    assert_eq!(h.request(all[2]).phase, Phase::Queued);
    // Finishing one lets exactly the oldest waiting one go.
    let fx = h.retrieved(started[0], Ok(vec![]));
    assert_eq!(retrieves(&fx), vec![all[2]]);
    let fx = h.retrieved(started[1], Err(http(404)));
    assert_eq!(retrieves(&fx), vec![all[3]]);
    assert_eq!(h.local().metrics.queued, 1);
    assert!(h.local().metrics.in_flight <= 2);
}

#[test]
fn queued_requests_time_out_at_their_deadline_too() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.concurrency = 1;
    let mut h = H::with(cfg);
    h.scenario("a");
    h.scenario("b");
    let waiting = h.of_kind(Kind::Retrieve)[1];
    assert_eq!(h.request(waiting).phase, Phase::Queued);
    h.at(10.0);
    let fx = h.tick();
    assert_eq!(h.request(waiting).outcome(), Some(&Outcome::TimedOut));
    assert!(
        !fx.contains(&Effect::Abort { id: waiting }),
        "nothing ran, nothing to abort"
    );
    assert_eq!(h.local().metrics.queued, 0);
}

#[test]
fn rate_limit_spaces_calls_out() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.rate_per_minute = Some(60);
    let mut h = H::with(cfg);
    assert_eq!(retrieves(&h.scenario("a")).len(), 1);
    assert!(retrieves(&h.scenario("b")).is_empty(), "no token left");
    assert_eq!(
        h.engine.next_deadline(),
        Some(h.t0 + Duration::from_secs(1))
    );
    h.at(1.0);
    assert_eq!(retrieves(&h.tick()).len(), 1, "one token a second");
}

#[test]
fn identical_inflight_retrievals_share_one_call() {
    let mut h = H::with(EngineConfig::default());
    let leader = retrieves(&h.scenario("The  first encounter"));
    assert_eq!(leader.len(), 1);
    assert!(
        retrieves(&h.scenario("the first ENCOUNTER")).is_empty(),
        "joined, no second call"
    );
    let all = h.of_kind(Kind::Retrieve);
    let follower = all[1];
    assert!(
        h.request(follower)
            .timeline
            .iter()
            .any(|e| e.text().starts_with("joined"))
    );
    h.retrieved(leader[0], Ok(vec![p("shared")]));
    assert_eq!(
        h.request(follower).outcome(),
        Some(&Outcome::Joined(leader[0]))
    );
    let scenarios = h.engine.scenarios();
    assert_eq!(scenarios[0].passages, vec![p("shared")]);
    assert_eq!(
        scenarios[1].passages,
        vec![p("shared")],
        "the follower got the leader's documents"
    );
    assert_eq!(h.local().metrics.joined, 1);
    assert_eq!(h.local().metrics.ok, 1);
    // After the leader ended, the same query is a new call.
    assert_eq!(retrieves(&h.scenario("the first encounter")).len(), 1);
}

#[test]
fn followers_share_a_failure_and_survive_a_cancelled_leader() {
    let mut h = H::with(no_retries());
    let leader = retrieves(&h.scenario("q"))[0];
    h.scenario("q");
    h.retrieved(leader, Err(http(500)));
    let entry = &h.engine.scenarios()[1];
    assert_eq!(entry.no_lore.as_deref(), Some("retrieval failed: HTTP 500"));

    let mut h = H::with(EngineConfig::default());
    let leader = retrieves(&h.scenario("q"))[0];
    h.scenario("q");
    let follower = h.of_kind(Kind::Retrieve)[1];
    let fx = h.send(Input::Command(Command::Cancel { id: leader.short() }));
    assert_eq!(
        retrieves(&fx),
        vec![follower],
        "the follower takes the call over"
    );
    h.retrieved(follower, Ok(vec![p("mine")]));
    assert_eq!(h.engine.scenarios()[1].passages, vec![p("mine")]);
    assert_eq!(h.engine.scenarios()[0].status, ScenarioStatus::Cancelled);
}

#[test]
fn queued_conversation_messages_can_be_cancelled_one_by_one() {
    let mut h = H::with(EngineConfig::default());
    for text in ["one", "two", "three"] {
        h.send(Input::Command(Command::Ask {
            conversation: C,
            text: text.into(),
            tag: None,
        }));
    }
    let queue: Vec<u64> = h.conv().queue.iter().map(|q| q.number).collect();
    h.send(Input::Command(Command::CancelQueued {
        conversation: C,
        number: queue[0],
    }));
    let left: Vec<&str> = h.conv().queue.iter().map(|q| q.text.as_str()).collect();
    assert_eq!(left, vec!["three"]);
}

#[test]
fn forcing_a_breaker_by_hand() {
    let mut h = H::with(EngineConfig::default());
    h.send(Input::Command(Command::ForceBreaker {
        backend: "local".into(),
        force: Force::Open,
    }));
    assert!(retrieves(&h.scenario("q")).is_empty());
    assert_eq!(h.local().breaker.label(), "forced open");
    h.send(Input::Command(Command::ForceBreaker {
        backend: "local".into(),
        force: Force::Auto,
    }));
    assert_eq!(retrieves(&h.scenario("q2")).len(), 1);
    h.send(Input::Command(Command::ForceBreaker {
        backend: "nope".into(),
        force: Force::Open,
    }));
    assert!(
        h.engine
            .notice()
            .is_some_and(|n| n.is_error && n.text.contains("nope"))
    );
}

#[test]
fn chaos_commands_become_effects_and_are_remembered() {
    let mut h = H::with(EngineConfig::default());
    let fx = h.send(Input::Command(Command::Chaos {
        backend: Some("local".into()),
        mode: Some(ChaosMode::Hang),
    }));
    assert_eq!(
        fx,
        vec![Effect::Chaos {
            backend: "local".into(),
            mode: Some(ChaosMode::Hang)
        }]
    );
    assert_eq!(h.engine.chaos().get("local"), Some(&ChaosMode::Hang));
    let fx = h.send(Input::Command(Command::Chaos {
        backend: None,
        mode: None,
    }));
    assert_eq!(
        fx,
        vec![Effect::Chaos {
            backend: "local".into(),
            mode: None
        }]
    );
    assert!(h.engine.chaos().is_empty());
}

#[test]
fn a_million_requests_leave_every_collection_at_its_bound() {
    let cfg = EngineConfig {
        history_cap: 10_000,
        rag: false,
        ..EngineConfig::default()
    };
    let t0 = Instant::now();
    let mut engine = engine_with(cfg, t0, 3);
    // Each scenario is two requests (the parent and its generation).
    for i in 0..500_000u64 {
        let now = t0 + Duration::from_micros(i);
        let fx = engine.handle(
            Input::Command(Command::Scenario {
                conversation: C,
                prompt: String::new(),
                seed: Some(i),
            }),
            now,
        );
        let Some(Effect::Dispatch { id, .. }) = fx.into_iter().next() else {
            panic!("generation dispatched")
        };
        let result = if i % 3 == 0 { Err(http(400)) } else { Ok(()) };
        engine.handle(
            Input::Finished {
                id,
                backend: "offline".into(),
                result,
            },
            now,
        );
    }
    let f = engine.footprint();
    assert_eq!(f.live, 0);
    assert_eq!(f.history, 10_000);
    assert!(f.events <= 2_000);
    assert_eq!(
        (
            f.jobs,
            f.calls,
            f.dedup,
            f.followers,
            f.waiting,
            f.summaries
        ),
        (0, 0, 0, 0, 0, 0)
    );
    let m = &engine.backends()["offline"].metrics;
    assert_eq!(m.finished(), 500_000, "every generation counted once");
}

fn with_embedder() -> EngineConfig {
    EngineConfig {
        embedder: Some("ollama-embed".into()),
        ..EngineConfig::default()
    }
}

#[test]
fn queries_are_embedded_before_retrieval_and_the_vector_is_passed_on() {
    let mut h = H::with(with_embedder());
    let fx = h.scenario("the first encounter");
    let [
        Effect::Dispatch {
            id: embed,
            backend,
            call: Call::Embed(texts),
        },
    ] = &fx[..]
    else {
        panic!("the embed step goes first: {fx:?}")
    };
    assert_eq!(backend, "ollama-embed");
    assert_eq!(texts, &vec!["the first encounter".to_string()]);
    assert_eq!(h.request(*embed).kind, Kind::Embed);
    let fx = h.send(Input::Embedded {
        id: *embed,
        backend: "ollama-embed".into(),
        result: Ok(vec![vec![0.1, 0.2, 0.3]]),
    });
    let [
        Effect::Dispatch {
            call: Call::Retrieve(query),
            ..
        },
    ] = &fx[..]
    else {
        panic!("then retrieval: {fx:?}")
    };
    assert_eq!(query.vector, Some(vec![0.1, 0.2, 0.3]));
    assert_eq!(h.engine.backends()["ollama-embed"].metrics.ok, 1);
    assert_eq!(
        h.engine.backends()["ollama-embed"].policy.concurrency,
        4,
        "embeddings default to 4 slots"
    );
}

#[test]
fn a_failed_or_slow_embedding_falls_back_to_keyword_retrieval() {
    let mut cfg = with_embedder();
    cfg.embed_timeout = Duration::from_secs(2);
    let mut h = H::with(cfg);
    let fx = h.scenario("q");
    let [Effect::Dispatch { id: embed, .. }] = &fx[..] else {
        panic!()
    };
    let embed = *embed;
    h.at(2.0);
    let fx = h.tick();
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Observe { id, .. } if *id == embed)),
        "a slow embedding is observed past its deadline: {fx:?}"
    );
    let Some(Effect::Dispatch {
        call: Call::Retrieve(query),
        ..
    }) = fx.iter().find(|e| matches!(e, Effect::Dispatch { .. }))
    else {
        panic!("retrieval goes on: {fx:?}")
    };
    assert_eq!(query.vector, None);
    let parent = h.request(embed).parent.expect("parent");
    assert!(
        h.request(parent)
            .timeline
            .iter()
            .any(|e| e.text() == "keyword retrieval only (embedding timed out after 2 s)"),
        "{:?}",
        h.request(parent).timeline
    );

    // A permanent error does the same at once.
    let mut h = H::with(with_embedder());
    let fx = h.scenario("q");
    let [Effect::Dispatch { id: embed, .. }] = &fx[..] else {
        panic!()
    };
    let fx = h.send(Input::Embedded {
        id: *embed,
        backend: "ollama-embed".into(),
        result: Err(BackendError::permanent("model not found")),
    });
    assert!(
        matches!(&fx[..], [Effect::Dispatch { call: Call::Retrieve(q), .. }] if q.vector.is_none())
    );
}

#[test]
fn knowledge_base_chunk_batches_are_requests_whose_vectors_go_to_their_keeper() {
    let mut h = H::with(with_embedder());
    let fx = h.send(Input::Command(Command::EmbedChunks {
        batch: 7,
        texts: vec!["a".into(), "b".into()],
    }));
    let [
        Effect::Dispatch {
            id,
            backend,
            call: Call::Embed(texts),
        },
    ] = &fx[..]
    else {
        panic!("one embed call: {fx:?}")
    };
    assert_eq!(backend, "ollama-embed");
    assert_eq!(texts.len(), 2);
    assert_eq!(h.request(*id).kind, Kind::Embed);
    let id = *id;
    let fx = h.send(Input::Embedded {
        id,
        backend: "ollama-embed".into(),
        result: Ok(vec![vec![1.0], vec![2.0]]),
    });
    assert!(
        fx.contains(&Effect::ChunkVectors {
            batch: 7,
            result: Ok(vec![vec![1.0], vec![2.0]])
        }),
        "{fx:?}"
    );
    assert_eq!(h.request(id).outcome(), Some(&Outcome::Completed));

    // A batch that times out is reported, so its keeper stops waiting.
    let fx = h.send(Input::Command(Command::EmbedChunks {
        batch: 8,
        texts: vec!["c".into()],
    }));
    let [Effect::Dispatch { id, .. }] = &fx[..] else {
        panic!("{fx:?}")
    };
    let id = *id;
    h.at(120.0);
    let fx = h.tick();
    assert!(
        fx.iter().any(|e| matches!(
            e,
            Effect::ChunkVectors { batch: 8, result: Err(why) } if why.contains("timed out")
        )),
        "{fx:?}"
    );
    assert_eq!(h.request(id).outcome(), Some(&Outcome::TimedOut));
    // Its late answer is dropped, not delivered twice.
    let fx = h.send(Input::Embedded {
        id,
        backend: "ollama-embed".into(),
        result: Ok(vec![vec![1.0]]),
    });
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::ChunkVectors { .. })),
        "{fx:?}"
    );
}

#[test]
fn chunk_batches_without_an_embedder_fail_at_once() {
    let mut h = H::with(EngineConfig::default());
    let fx = h.send(Input::Command(Command::EmbedChunks {
        batch: 1,
        texts: vec!["a".into()],
    }));
    assert!(
        matches!(
            &fx[..],
            [Effect::ChunkVectors {
                batch: 1,
                result: Err(_)
            }]
        ),
        "{fx:?}"
    );
}
