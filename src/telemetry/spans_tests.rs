//! The span builder from synthetic typed events: parent links, kinds,
//! attributes, error status, observed spans kept open until the arrival.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{Span, status};
use ulid::Ulid;

use super::*;
use crate::engine::event::{EventKind, LateAfter, LifecycleEvent};
use crate::engine::request::{Kind, Outcome, RequestId};
use crate::engine::workspace::ConversationId;

struct Table {
    requests: HashMap<RequestId, RequestInfo>,
    outputs: HashMap<RequestId, String>,
}

impl Lookup for Table {
    fn request(&self, id: RequestId) -> Option<RequestInfo> {
        self.requests.get(&id).cloned()
    }
    fn output(&self, id: RequestId) -> Option<String> {
        self.outputs.get(&id).cloned()
    }
}

/// A scenario with a retrieval (hayhooks) and a generation (openai).
struct Pipeline {
    t0: Instant,
    root: RequestId,
    retrieve: RequestId,
    generate: RequestId,
    table: Table,
}

const UNIX_T0: u64 = 1_700_000_000_000_000_000;

fn id(n: u128) -> RequestId {
    RequestId(Ulid(
        (0x0190_0000_0000_u128 << 80) | (n << 64) | (0xABCD_0000 + n),
    ))
}

fn pipeline() -> Pipeline {
    let t0 = Instant::now();
    let (root, retrieve, generate) = (id(1), id(2), id(3));
    let info = |kind, backend: &str, parent, ms| RequestInfo {
        kind,
        backend: backend.into(),
        parent,
        root,
        conversation: Some(ConversationId(7)),
        label: format!("{} query", kind.label()),
        created: t0 + Duration::from_millis(ms),
        attempt: 1,
    };
    let mut requests = HashMap::new();
    requests.insert(root, info(Kind::Scenario, "pipeline", None, 0));
    requests.insert(retrieve, info(Kind::Retrieve, "hayhooks", Some(root), 1));
    requests.insert(generate, info(Kind::Generate, "openai", Some(root), 500));
    Pipeline {
        t0,
        root,
        retrieve,
        generate,
        table: Table {
            requests,
            outputs: HashMap::from([(root, "# The answer".to_string())]),
        },
    }
}

fn builder(p: &Pipeline, capture_content: bool) -> SpanBuilder {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_nanos(UNIX_T0);
    let backends = HashMap::from([
        (
            "hayhooks".to_string(),
            BackendInfo {
                provider: "hayhooks".into(),
                model: None,
                remote: true,
            },
        ),
        (
            "openai".to_string(),
            BackendInfo {
                provider: "openai".into(),
                model: Some("gpt-4o-mini".into()),
                remote: true,
            },
        ),
    ]);
    SpanBuilder::new(
        WallClock::new(p.t0, wall),
        SpanOptions {
            backends,
            top_k: 4,
            capture_content,
        },
    )
}

fn ev(p: &Pipeline, ms: u64, who: RequestId, event: EventKind) -> LifecycleEvent {
    let info = &p.table.requests[&who];
    LifecycleEvent {
        at: p.t0 + Duration::from_millis(ms),
        t_ms: ms,
        id: Some(who),
        parent: info.parent,
        kind: Some(info.kind),
        backend: info.backend.as_str().into(),
        conversation: info.conversation,
        event,
    }
}

fn final_(outcome: Outcome) -> EventKind {
    EventKind::Final { outcome }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attr(span, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::IntValue(n)) => Some(*n),
        _ => None,
    }
}

fn event_names(span: &Span) -> Vec<&str> {
    span.events.iter().map(|e| e.name.as_str()).collect()
}

fn ns(ms: u64) -> u64 {
    UNIX_T0 + ms * 1_000_000
}

#[test]
fn a_pipeline_is_one_trace_with_parent_links_kinds_and_attributes() {
    let p = pipeline();
    let mut b = builder(&p, false);
    let first = b.on_events(
        &[
            ev(&p, 2, p.retrieve, EventKind::Dispatched { attempt: 1 }),
            ev(
                &p,
                120,
                p.retrieve,
                EventKind::PassagesRetrieved { count: 3 },
            ),
            ev(&p, 120, p.retrieve, final_(Outcome::Completed)),
        ],
        &p.table,
    );
    assert_eq!(first.len(), 1, "the retrieval ended");
    let retrieval = &first[0];
    let mut rest = b.on_events(
        &[
            ev(&p, 500, p.generate, EventKind::Dispatched { attempt: 1 }),
            ev(&p, 800, p.generate, EventKind::FirstToken),
            ev(&p, 900, p.generate, final_(Outcome::Completed)),
            ev(&p, 900, p.root, final_(Outcome::Completed)),
        ],
        &p.table,
    );
    assert_eq!(rest.len(), 2);
    let root = rest.pop().unwrap();
    let chat = rest.pop().unwrap();
    assert_eq!(b.open_count(), 0);

    let trace = p.root.0.to_bytes().to_vec();
    for span in [retrieval, &chat, &root] {
        assert_eq!(
            span.trace_id, trace,
            "{}: one trace per pipeline",
            span.name
        );
        assert_eq!(
            span.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Ok as i32)
        );
        assert_eq!(text(span, "gen_ai.conversation.id").as_deref(), Some("7"));
        assert_eq!(
            text(span, "input.value"),
            None,
            "no content without capture_content"
        );
    }
    assert_eq!(root.name, "scenario");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.span_id, span_id(p.root).to_vec());
    assert_eq!(
        text(&root, "openinference.span.kind").as_deref(),
        Some("CHAIN")
    );
    assert_eq!(
        (root.start_time_unix_nano, root.end_time_unix_nano),
        (ns(0), ns(900))
    );

    assert_eq!(retrieval.name, "retrieval hayhooks");
    assert_eq!(retrieval.parent_span_id, span_id(p.root).to_vec());
    assert_eq!(retrieval.span_id, span_id(p.retrieve).to_vec());
    assert_eq!(
        text(retrieval, "openinference.span.kind").as_deref(),
        Some("RETRIEVER")
    );
    assert_eq!(
        text(retrieval, "gen_ai.operation.name").as_deref(),
        Some("retrieval")
    );
    assert_eq!(
        text(retrieval, "gen_ai.provider.name").as_deref(),
        Some("hayhooks")
    );
    assert_eq!(int(retrieval, "gen_ai.request.top_k"), Some(4));
    assert_eq!(int(retrieval, "loreweave.retrieval.documents"), Some(3));
    assert_eq!(int(retrieval, "loreweave.attempts"), Some(1));
    assert_eq!(
        text(retrieval, "loreweave.request.id"),
        Some(p.retrieve.to_string())
    );
    assert_eq!(event_names(retrieval), ["dispatched", "passages_retrieved"]);
    assert_eq!(
        (retrieval.start_time_unix_nano, retrieval.end_time_unix_nano),
        (ns(1), ns(120))
    );

    assert_eq!(chat.name, "chat gpt-4o-mini");
    assert_eq!(chat.parent_span_id, span_id(p.root).to_vec());
    assert_eq!(
        text(&chat, "openinference.span.kind").as_deref(),
        Some("LLM")
    );
    assert_eq!(
        text(&chat, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        text(&chat, "gen_ai.request.model").as_deref(),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        text(&chat, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    match attr(&chat, "gen_ai.response.time_to_first_chunk") {
        Some(Value::DoubleValue(secs)) => assert!((secs - 0.3).abs() < 1e-9, "{secs}"),
        other => panic!("time to first chunk: {other:?}"),
    }
    assert_ne!(retrieval.span_id, chat.span_id);
}

#[test]
fn failures_timeouts_and_short_circuits_are_errors_with_a_type() {
    for (outcome, message, error_type) in [
        (
            Outcome::Failed("HTTP 500: boom".into()),
            "HTTP 500: boom",
            "failed",
        ),
        (Outcome::TimedOut, "timed out", "timeout"),
        (
            Outcome::ShortCircuited,
            "short-circuited: the backend's breaker is open",
            "circuit_open",
        ),
    ] {
        let p = pipeline();
        let mut b = builder(&p, false);
        let spans = b.on_events(&[ev(&p, 50, p.retrieve, final_(outcome.clone()))], &p.table);
        assert_eq!(spans.len(), 1, "{outcome:?}: not observed, so it ends");
        let status = spans[0].status.clone().unwrap();
        assert_eq!(status.code, status::StatusCode::Error as i32, "{outcome:?}");
        assert_eq!(status.message, message);
        assert_eq!(text(&spans[0], "error.type").as_deref(), Some(error_type));
    }
    // Cancelled is not an error; its status stays unset.
    let p = pipeline();
    let mut b = builder(&p, false);
    let spans = b.on_events(
        &[ev(&p, 50, p.retrieve, final_(Outcome::Cancelled))],
        &p.table,
    );
    assert_eq!(spans[0].status.as_ref().map(|s| s.code), Some(0));
    assert_eq!(text(&spans[0], "error.type"), None);
}

#[test]
fn an_observed_call_keeps_its_span_open_until_the_late_arrival() {
    let p = pipeline();
    let mut b = builder(&p, false);
    b.on_events(
        &[ev(&p, 2, p.retrieve, EventKind::Dispatched { attempt: 1 })],
        &p.table,
    );
    // The deadline: the final outcome and the observation, in one input.
    let at_deadline = b.on_events(
        &[
            ev(&p, 1_000, p.retrieve, final_(Outcome::TimedOut)),
            ev(
                &p,
                1_000,
                p.retrieve,
                EventKind::Observed { grace_ms: 30_000 },
            ),
            ev(
                &p,
                1_000,
                p.root,
                EventKind::Fallback {
                    to: crate::engine::event::FallbackTo::NoLore,
                    reason: "retrieval timed out".into(),
                },
            ),
        ],
        &p.table,
    );
    assert!(at_deadline.is_empty(), "the observed span stays open");
    assert_eq!(b.open_count(), 2);
    let root = b.on_events(
        &[ev(&p, 1_500, p.root, final_(Outcome::Completed))],
        &p.table,
    );
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].name, "scenario");
    assert_eq!(event_names(&root[0]), ["fallback"]);

    let late = b.on_events(
        &[ev(
            &p,
            3_000,
            p.retrieve,
            EventKind::late_arrival("passages", LateAfter::Deadline, Some(2_000)),
        )],
        &p.table,
    );
    assert_eq!(late.len(), 1, "the arrival ends the span");
    let span = &late[0];
    assert_eq!(b.open_count(), 0);
    assert_eq!(
        span.end_time_unix_nano,
        ns(3_000),
        "how long the backend really took"
    );
    let status = span.status.clone().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (status::StatusCode::Error as i32, "timed out")
    );
    assert_eq!(text(span, "error.type").as_deref(), Some("timeout"));
    assert_eq!(int(span, "loreweave.late.by_ms"), Some(2_000));
    assert_eq!(
        event_names(span),
        ["dispatched", "deadline", "observed", "late_arrival"]
    );
    let deadline = span.events.iter().find(|e| e.name == "deadline").unwrap();
    assert_eq!(deadline.time_unix_nano, ns(1_000));
    assert_eq!(span.parent_span_id, span_id(p.root).to_vec());
}

#[test]
fn an_abandoned_call_ends_at_the_end_of_its_grace_and_exit_closes_the_rest() {
    let p = pipeline();
    let mut b = builder(&p, false);
    b.on_events(
        &[
            ev(&p, 1_000, p.retrieve, final_(Outcome::TimedOut)),
            ev(
                &p,
                1_000,
                p.retrieve,
                EventKind::Observed { grace_ms: 5_000 },
            ),
            ev(&p, 1_000, p.generate, EventKind::Dispatched { attempt: 1 }),
        ],
        &p.table,
    );
    let spans = b.on_events(
        &[ev(
            &p,
            6_000,
            p.retrieve,
            EventKind::Abandoned { after_ms: 5_000 },
        )],
        &p.table,
    );
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].end_time_unix_nano, ns(6_000));
    assert_eq!(
        event_names(&spans[0]),
        ["deadline", "observed", "abandoned"]
    );
    // A late drop after the span went out has nothing to go on.
    let none = b.on_events(
        &[ev(
            &p,
            7_000,
            p.retrieve,
            EventKind::late_arrival(
                "passages",
                LateAfter::End {
                    phase: "timed out".into(),
                },
                Some(6_000),
            ),
        )],
        &p.table,
    );
    assert!(none.is_empty());
    // At exit the generation, still running, is closed as an error.
    let closed = b.close_all(p.t0 + Duration::from_millis(8_000));
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].name, "chat gpt-4o-mini");
    assert_eq!(closed[0].end_time_unix_nano, ns(8_000));
    assert_eq!(
        closed[0].status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32)
    );
    assert_eq!(b.open_count(), 0);
}

#[test]
fn breaker_changes_go_on_the_spans_in_flight_on_that_backend() {
    let p = pipeline();
    let mut b = builder(&p, false);
    b.on_events(
        &[
            ev(&p, 2, p.retrieve, EventKind::Dispatched { attempt: 1 }),
            ev(&p, 500, p.generate, EventKind::Dispatched { attempt: 1 }),
            ev(
                &p,
                600,
                p.retrieve,
                EventKind::RetryScheduled {
                    retry: 1,
                    delay_ms: 200,
                    reason: "HTTP 503".into(),
                },
            ),
        ],
        &p.table,
    );
    let breaker = LifecycleEvent {
        at: p.t0 + Duration::from_millis(700),
        t_ms: 700,
        id: None,
        parent: None,
        kind: None,
        backend: "hayhooks".into(),
        conversation: None,
        event: EventKind::breaker("closed", "open", "5 failures"),
    };
    b.on_events(&[breaker], &p.table);
    let spans = b.on_events(
        &[
            ev(
                &p,
                800,
                p.retrieve,
                final_(Outcome::Failed("HTTP 503".into())),
            ),
            ev(&p, 900, p.generate, final_(Outcome::Completed)),
        ],
        &p.table,
    );
    let retrieval = spans
        .iter()
        .find(|s| s.name.starts_with("retrieval"))
        .unwrap();
    let chat = spans.iter().find(|s| s.name.starts_with("chat")).unwrap();
    assert_eq!(event_names(retrieval), ["dispatched", "retry", "breaker"]);
    let breaker = &retrieval.events[2];
    assert!(
        breaker
            .attributes
            .iter()
            .any(|kv| kv.key == "loreweave.breaker.to")
    );
    assert_eq!(
        event_names(chat),
        ["dispatched"],
        "another backend's breaker"
    );
}

#[test]
fn content_goes_on_spans_only_with_capture_content() {
    for capture in [false, true] {
        let p = pipeline();
        let mut b = builder(&p, capture);
        let spans = b.on_events(
            &[
                ev(&p, 100, p.retrieve, final_(Outcome::Completed)),
                ev(&p, 900, p.root, final_(Outcome::Completed)),
            ],
            &p.table,
        );
        assert_eq!(spans.len(), 2);
        let input = text(&spans[0], "input.value");
        let output = text(&spans[1], "output.value");
        if capture {
            assert_eq!(input.as_deref(), Some("retrieve query"));
            assert_eq!(output.as_deref(), Some("# The answer"));
        } else {
            assert_eq!((input, output), (None, None));
        }
    }
}

#[test]
fn token_usage_the_server_reports_becomes_gen_ai_usage() {
    let p = pipeline();
    let mut b = builder(&p, false);
    let spans = b.on_events(
        &[
            ev(&p, 500, p.generate, EventKind::Dispatched { attempt: 1 }),
            ev(&p, 800, p.generate, EventKind::FirstToken),
            ev(
                &p,
                899,
                p.generate,
                EventKind::Usage {
                    input_tokens: Some(26),
                    output_tokens: Some(4),
                },
            ),
            ev(&p, 900, p.generate, final_(Outcome::Completed)),
        ],
        &p.table,
    );
    let chat = spans.first().expect("the generation ended");
    assert_eq!(int(chat, "gen_ai.usage.input_tokens"), Some(26));
    assert_eq!(int(chat, "gen_ai.usage.output_tokens"), Some(4));
    assert_eq!(int(chat, "llm.token_count.completion"), Some(4));
}
