//! Late calls under a fake clock: a request past its deadline ends (timed
//! out, its slot given back) while its call is observed, detached, until it
//! answers (one late arrival, never applied) or its grace ends (aborted,
//! abandoned); `abort` backends and the `late_observe_max` cap abort at the
//! deadline instead.

use std::time::{Duration, Instant, SystemTime};

use super::limits::LatePolicy;
use super::request::{Kind, Outcome, Phase, RequestId};
use super::*;

const C: ConversationId = ConversationId(1);

struct H {
    engine: Engine,
    t0: Instant,
    now: Instant,
}

impl H {
    fn with(cfg: EngineConfig) -> Self {
        let t0 = Instant::now();
        let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 5);
        assert!(engine.open_conversation(C, "test", Vec::new(), Vec::new()));
        Self {
            engine,
            t0,
            now: t0,
        }
    }

    fn at(&mut self, secs: f64) {
        self.now = self.t0 + Duration::from_secs_f64(secs);
    }

    fn t(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
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

    fn retrieved(&mut self, id: RequestId, title: &str) -> Vec<Effect> {
        self.send(Input::Retrieved {
            id,
            backend: "local".into(),
            result: Ok(vec![p(title)]),
        })
    }

    fn request(&self, id: RequestId) -> &request::Request {
        self.engine.registry().get(id).expect("known request")
    }

    fn local(&self) -> &metrics::BackendMetrics {
        &self.engine.backends()["local"].metrics
    }

    fn said(&self, id: RequestId, start: &str) -> Vec<String> {
        self.request(id)
            .timeline
            .iter()
            .filter(|e| e.text().starts_with(start))
            .map(|e| e.text())
            .collect()
    }
}

fn dispatched(fx: &[Effect], kind: fn(&Call) -> bool) -> Vec<RequestId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Dispatch { id, call, .. } if kind(call) => Some(*id),
            _ => None,
        })
        .collect()
}

fn retrieves(fx: &[Effect]) -> Vec<RequestId> {
    dispatched(fx, |c| matches!(c, Call::Retrieve(_)))
}

fn generates(fx: &[Effect]) -> Vec<RequestId> {
    dispatched(fx, |c| matches!(c, Call::Generate(_)))
}

fn aborts(fx: &[Effect]) -> Vec<RequestId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Abort { id } => Some(*id),
            _ => None,
        })
        .collect()
}

fn observes(fx: &[Effect]) -> Vec<(RequestId, Instant)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Observe { id, until } => Some((*id, *until)),
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

fn one_slot() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.concurrency = 1;
    cfg
}

#[test]
fn an_observed_call_answering_2s_late_is_one_late_arrival_never_applied() {
    let mut h = H::with(one_slot());
    let [a] = retrieves(&h.scenario("first"))[..] else {
        panic!("one retrieval")
    };
    h.at(5.0);
    assert!(
        retrieves(&h.scenario("second")).is_empty(),
        "waits for the slot"
    );
    let b = h
        .engine
        .registry()
        .all()
        .into_iter()
        .find(|r| r.kind == Kind::Retrieve && r.id != a)
        .map(|r| r.id)
        .expect("the queued retrieval");
    assert_eq!(h.request(b).phase, Phase::Queued);

    h.at(10.0);
    let fx = h.tick();
    assert_eq!(
        observes(&fx),
        vec![(a, h.t(40))],
        "observed up to the grace"
    );
    assert!(aborts(&fx).is_empty(), "not aborted: {fx:?}");
    assert_eq!(
        retrieves(&fx),
        vec![b],
        "the slot was given back at the deadline"
    );
    assert_eq!(generates(&fx).len(), 1, "the first pipeline fell back");
    assert_eq!(h.request(a).outcome(), Some(&Outcome::TimedOut));
    assert_eq!(h.local().timed_out, 1);
    assert_eq!(h.local().observing, 1);
    assert_eq!(h.local().in_flight, 1, "only the second call holds a slot");
    assert_eq!(h.engine.observed_count(), 1);

    h.at(12.0);
    let fx = h.retrieved(a, "Too Late");
    assert!(
        fx.iter().all(|e| matches!(e, Effect::SaveRequests(_))),
        "a late arrival starts and stops nothing: {fx:?}"
    );
    assert!(
        h.engine.scenarios()[0].passages.is_empty(),
        "late passages never applied"
    );
    assert!(
        h.engine.registry().is_live(b),
        "the queued call is untouched"
    );
    assert_eq!(h.request(a).outcome(), Some(&Outcome::TimedOut));
    let m = h.local().snapshot();
    assert_eq!(m.late_arrivals, 1);
    assert_eq!(m.late_drops, 1);
    assert_eq!(m.late_abandoned, 0);
    assert_eq!(m.observing, 0);
    assert_eq!(m.timed_out, 1, "still one final state");
    let late_by = m.late_p50_ms.expect("a late-by recorded");
    assert!((1_990..=2_010).contains(&late_by), "late by {late_by} ms");
    assert_eq!(m.late_p95_ms, Some(late_by));
    assert_eq!(
        h.said(a, "late arrival"),
        vec!["late arrival: retrieval result 2s after the deadline".to_string()]
    );
    let last = h.engine.registry().events().back().expect("an event");
    assert_eq!(last.id, Some(a));
    assert!(last.text().starts_with("late arrival"), "{last:?}");
    assert_eq!(h.engine.observed_count(), 0);

    // Anything more from that call is an ordinary late drop: one arrival.
    h.at(13.0);
    h.retrieved(a, "Again");
    let m = h.local().snapshot();
    assert_eq!(m.late_arrivals, 1);
    assert_eq!(m.late_drops, 2);
    assert_eq!(h.said(a, "late arrival").len(), 1);
}

#[test]
fn under_abort_the_call_is_aborted_at_the_deadline() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.late_policy = LatePolicy::Abort;
    let mut h = H::with(cfg);
    let [a] = retrieves(&h.scenario("q"))[..] else {
        panic!("one retrieval")
    };
    h.at(10.0);
    let fx = h.tick();
    assert_eq!(aborts(&fx), vec![a]);
    assert!(observes(&fx).is_empty());
    assert_eq!(h.engine.observed_count(), 0);
    let [g] = generates(&fx)[..] else {
        panic!("generation goes on without lore")
    };

    // Generation defaults to abort: it costs tokens.
    assert_eq!(
        h.engine.backends()["offline"].policy.late_policy,
        LatePolicy::Abort
    );
    h.at(70.0);
    let fx = h.tick();
    assert_eq!(aborts(&fx), vec![g], "no first token within 60 s");
    assert!(observes(&fx).is_empty());
}

#[test]
fn the_cap_turns_observe_into_abort() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.late_observe_max = 1;
    let mut h = H::with(cfg);
    let a = retrieves(&h.scenario("one"))[0];
    let b = retrieves(&h.scenario("two"))[0];
    h.at(10.0);
    let fx = h.tick();
    assert_eq!(observes(&fx), vec![(a, h.t(40))]);
    assert_eq!(aborts(&fx), vec![b], "past late_observe_max: aborted");
    assert_eq!(h.local().observing, 1);
    assert_eq!(h.local().timed_out, 2);

    // Once a's call has answered, there is room to observe again.
    h.at(11.0);
    h.retrieved(a, "late");
    assert_eq!(h.local().observing, 0);
    let c = retrieves(&h.scenario("three"))[0];
    h.at(21.0);
    let fx = h.tick();
    assert_eq!(observes(&fx), vec![(c, h.t(51))]);
}

#[test]
fn an_identical_retrieval_is_not_joined_onto_an_observed_call() {
    let mut h = H::with(EngineConfig::default());
    let a = retrieves(&h.scenario("the waystone"))[0];
    h.at(10.0);
    assert_eq!(observes(&h.tick()).len(), 1);
    h.at(11.0);
    let fx = h.scenario("The  Waystone");
    let [b] = retrieves(&fx)[..] else {
        panic!("a call of its own, not a join: {fx:?}")
    };
    assert_ne!(a, b);
    assert!(h.said(b, "joined").is_empty());

    // a's late answer is not b's: b is still waiting for its own.
    h.at(12.0);
    h.retrieved(a, "for a");
    assert!(h.engine.registry().is_live(b));
    assert_eq!(h.engine.scenarios()[1].passages, vec![]);
    h.retrieved(b, "for b");
    assert_eq!(h.engine.scenarios()[1].passages, vec![p("for b")]);
    assert_eq!(h.local().late_arrivals, 1);
    assert_eq!(h.local().joined, 0);
}

#[test]
fn the_grace_end_aborts_and_counts_the_call_abandoned() {
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.late_grace = Duration::from_secs(5);
    let mut h = H::with(cfg);
    let a = retrieves(&h.scenario("q"))[0];
    h.at(10.0);
    let fx = h.tick();
    assert_eq!(observes(&fx), vec![(a, h.t(15))]);
    let g = generates(&fx)[0];
    h.send(Input::Finished {
        id: g,
        backend: "offline".into(),
        result: Ok(()),
    });
    assert!(
        !h.engine.is_busy(),
        "nothing waits for an observed call (headless commands end)"
    );
    assert_eq!(h.engine.observed_count(), 1);
    assert_eq!(h.engine.next_deadline(), Some(h.t(15)), "the grace's end");

    h.at(14.999);
    assert!(aborts(&h.tick()).is_empty());
    h.at(15.0);
    let fx = h.tick();
    assert_eq!(aborts(&fx), vec![a]);
    let m = h.local().snapshot();
    assert_eq!(m.late_abandoned, 1);
    assert_eq!(m.late_arrivals, 0);
    assert_eq!(m.observing, 0);
    assert_eq!(h.said(a, "abandoned").len(), 1);
    assert_eq!(h.engine.next_deadline(), None);

    // What slips through after the abort is a late drop, not an arrival.
    h.at(16.0);
    h.retrieved(a, "too late");
    assert_eq!(h.local().late_arrivals, 0);
    assert_eq!(h.local().late_drops, 1);
}

#[test]
fn calls_still_observed_at_exit_are_abandoned() {
    let mut h = H::with(EngineConfig::default());
    let a = retrieves(&h.scenario("q"))[0];
    h.at(10.0);
    h.tick();
    let fx = h.engine.abandon_observed(h.t(11));
    assert_eq!(aborts(&fx), vec![a]);
    assert_eq!(h.local().late_abandoned, 1);
    assert_eq!(h.engine.observed_count(), 0);
}

#[test]
fn an_observed_stream_is_aborted_at_its_first_late_token() {
    let mut cfg = EngineConfig::default();
    cfg.chat_policy.late_policy = LatePolicy::Observe;
    let mut h = H::with(cfg);
    let a = retrieves(&h.scenario("q"))[0];
    let fx = h.retrieved(a, "lore");
    let [g] = generates(&fx)[..] else {
        panic!("generation")
    };
    h.at(60.0);
    let fx = h.tick();
    assert_eq!(observes(&fx), vec![(g, h.t(90))]);
    h.at(61.5);
    let fx = h.send(Input::Token {
        id: g,
        backend: "offline".into(),
        text: "late".into(),
    });
    assert_eq!(aborts(&fx), vec![g], "the rest of the stream is not wanted");
    assert!(!h.engine.scenarios()[0].markdown.contains("late"));
    let m = h.engine.backends()["offline"].metrics.snapshot();
    assert_eq!(m.late_arrivals, 1);
    assert!(
        (1_490..=1_510).contains(&m.late_p50_ms.unwrap_or(0)),
        "{m:?}"
    );
}
