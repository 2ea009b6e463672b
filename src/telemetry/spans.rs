//! Spans from typed lifecycle events: one span per request, built as the
//! events arrive and handed out when it ends.
//!
//! - One trace per root request (a scenario or a chat turn): the trace id
//!   is the root's ULID (16 bytes), a span id the low 64 bits of its
//!   request's ULID (the random part), so parent links follow the engine's
//!   parent/child links without any table of ids.
//! - Names and attributes follow the GenAI semantic conventions
//!   (`{gen_ai.operation.name} {gen_ai.request.model}`, `gen_ai.*`) and
//!   OpenInference's `openinference.span.kind` (CHAIN, RETRIEVER, LLM,
//!   EMBEDDING), so Arize Phoenix shows a pipeline as a RAG trace.
//! - Lifecycle events become span events; a breaker change (a backend
//!   event) goes on every span in flight on that backend.
//! - A timed-out call that is observed past its deadline keeps its span
//!   open: ERROR status and a `deadline` event at the deadline, the end at
//!   the late arrival or at the end of the grace (`abandoned`).
//!
//! Invariants: a span is handed out once, after its request's final event
//! (or its late arrival / abandonment when observed); content (queries,
//! prompts, answers) is on a span only with `capture_content`; the number
//! of open spans is bounded ([`MAX_OPEN`]), past it new requests are not
//! traced (and counted).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};

use crate::engine::event::{EventKind, LateAfter, LifecycleEvent, QueueReason};
use crate::engine::request::{Kind, Outcome, RequestId};
use crate::engine::workspace::ConversationId;

/// Spans open at once, at most.
pub const MAX_OPEN: usize = 10_000;

/// What the builder needs to know about a request that the events do not
/// carry.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    pub kind: Kind,
    pub backend: String,
    pub parent: Option<RequestId>,
    /// The top of its pipeline (itself when it has no parent).
    pub root: RequestId,
    pub conversation: Option<ConversationId>,
    /// The query or prompt.
    pub label: String,
    pub created: Instant,
    /// Attempts made so far.
    pub attempt: u32,
}

/// Where the builder reads requests from: the engine's registry, or a
/// table in tests.
pub trait Lookup {
    fn request(&self, id: RequestId) -> Option<RequestInfo>;
    /// The answer or scenario a finished parent produced (asked only with
    /// `capture_content`).
    fn output(&self, _id: RequestId) -> Option<String> {
        None
    }
}

/// Who serves a backend name: the provider and the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `gen_ai.provider.name`: "openai", "ollama", "hayhooks", "loreweave".
    pub provider: String,
    /// `gen_ai.request.model`, when there is one.
    pub model: Option<String>,
    /// Over the network (span kind CLIENT) or in process (INTERNAL).
    pub remote: bool,
}

/// Instants to Unix nanoseconds, anchored once.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    at: Instant,
    unix_nanos: u64,
}

impl WallClock {
    /// `at` happened at `wall`.
    pub fn new(at: Instant, wall: SystemTime) -> Self {
        let unix_nanos = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self { at, unix_nanos }
    }

    pub fn nanos(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.at) {
            Some(after) => self.unix_nanos.saturating_add(nanos(after)),
            None => self
                .unix_nanos
                .saturating_sub(nanos(self.at.saturating_duration_since(at))),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The trace id of a pipeline: its root's ULID.
pub fn trace_id(root: RequestId) -> [u8; 16] {
    root.0.to_bytes()
}

/// The span id of a request: the low 64 bits of its ULID (random), never 0.
pub fn span_id(id: RequestId) -> [u8; 8] {
    let low = (id.0.0 as u64).max(1);
    low.to_be_bytes()
}

/// How the builder names and labels spans.
#[derive(Debug, Clone, Default)]
pub struct SpanOptions {
    /// Backend name -> provider and model.
    pub backends: HashMap<String, BackendInfo>,
    /// `top_k` of retrievals.
    pub top_k: usize,
    pub capture_content: bool,
}

#[derive(Debug)]
struct OpenSpan {
    span: Span,
    kind: Kind,
    backend: String,
    dispatched: Option<Instant>,
    /// Its final event was seen (the span ends unless it is observed).
    ended: bool,
    /// Timed out, and the call runs on past the deadline.
    observed: bool,
    order: u64,
}

/// Typed events in, finished spans out.
#[derive(Debug)]
pub struct SpanBuilder {
    clock: WallClock,
    options: SpanOptions,
    open: HashMap<RequestId, OpenSpan>,
    opened: u64,
    /// Requests not traced because [`MAX_OPEN`] spans were open.
    skipped: u64,
}

impl SpanBuilder {
    pub fn new(clock: WallClock, options: SpanOptions) -> Self {
        Self {
            clock,
            options,
            open: HashMap::new(),
            opened: 0,
            skipped: 0,
        }
    }

    /// Spans open now (live requests and observed calls).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Requests not traced because too many spans were open.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Take the events one input produced; returns the spans that ended.
    pub fn on_events(&mut self, events: &[LifecycleEvent], lookup: &dyn Lookup) -> Vec<Span> {
        let mut touched: Vec<RequestId> = Vec::new();
        for event in events {
            match event.id {
                Some(id) => {
                    if self.apply(id, event, lookup) && !touched.contains(&id) {
                        touched.push(id);
                    }
                }
                None => self.backend_event(event),
            }
        }
        // A final event and the `observed` that keeps the span open come
        // from the same input: decide only once the whole batch is seen.
        let mut done = Vec::new();
        for id in touched {
            let finished = self.open.get(&id).is_some_and(|s| s.ended && !s.observed);
            if finished && let Some(open) = self.open.remove(&id) {
                if self.options.capture_content && is_parent(open.kind) {
                    let mut span = open.span;
                    if let Some(text) = lookup.output(id) {
                        push_attr(&mut span.attributes, "output.value", text);
                    }
                    done.push(span);
                } else {
                    done.push(open.span);
                }
            }
        }
        done
    }

    /// loreweave is leaving: every span still open ends now (an observed
    /// call that was not abandoned, a request that never ended).
    pub fn close_all(&mut self, now: Instant) -> Vec<Span> {
        let end = self.clock.nanos(now);
        let mut spans: Vec<OpenSpan> = self.open.drain().map(|(_, s)| s).collect();
        spans.sort_by_key(|s| s.order);
        spans
            .into_iter()
            .map(|mut open| {
                open.span.events.push(event_at(end, "exit", Vec::new()));
                if !open.ended {
                    open.span.status = Some(error_status("loreweave exited before it ended"));
                }
                open.span.end_time_unix_nano = end.max(open.span.start_time_unix_nano);
                open.span
            })
            .collect()
    }

    /// A backend event (breaker, chaos) on every span in flight there.
    fn backend_event(&mut self, event: &LifecycleEvent) {
        let time = self.clock.nanos(event.at);
        let (name, attributes) = match &event.event {
            EventKind::Breaker(change) => (
                "breaker",
                vec![
                    kv("loreweave.breaker.from", change.from.clone()),
                    kv("loreweave.breaker.to", change.to.clone()),
                    kv("loreweave.breaker.why", change.why.clone()),
                ],
            ),
            EventKind::Chaos { text } => ("chaos", vec![kv("message", text.clone())]),
            // Nothing else is a backend event today.
            other => (other.name(), vec![kv("message", other.to_string())]),
        };
        for open in self.open.values_mut() {
            if *open.backend == *event.backend && !open.ended {
                open.span
                    .events
                    .push(event_at(time, name, attributes.clone()));
            }
        }
    }

    /// Apply one request event; `true` when the request has a span.
    fn apply(&mut self, id: RequestId, event: &LifecycleEvent, lookup: &dyn Lookup) -> bool {
        if !self.open.contains_key(&id) {
            // A late drop for a request whose span has gone out: nothing
            // to put it on.
            let gone = match &event.event {
                EventKind::LateArrival(late) => {
                    matches!(late.after, LateAfter::End { .. } | LateAfter::Unknown)
                }
                EventKind::Abandoned { .. } => true,
                _ => false,
            };
            if gone {
                return false;
            }
            if self.open.len() >= MAX_OPEN {
                self.skipped += 1;
                return false;
            }
            let info = lookup.request(id).unwrap_or_else(|| RequestInfo {
                kind: event.kind.unwrap_or(Kind::Retrieve),
                backend: event.backend.to_string(),
                parent: event.parent,
                root: event.parent.unwrap_or(id),
                conversation: event.conversation,
                label: String::new(),
                created: event.at,
                attempt: 0,
            });
            let span = self.start_span(id, &info);
            self.opened += 1;
            self.open.insert(
                id,
                OpenSpan {
                    span,
                    kind: info.kind,
                    backend: info.backend,
                    dispatched: None,
                    ended: false,
                    observed: false,
                    order: self.opened,
                },
            );
        }
        let time = self.clock.nanos(event.at);
        let capture = self.options.capture_content;
        let attempts = lookup.request(id).map(|info| info.attempt);
        let Some(open) = self.open.get_mut(&id) else {
            return false;
        };
        let span = &mut open.span;
        match &event.event {
            EventKind::Created { .. } => {}
            EventKind::Queued { reason } => {
                let attrs = match reason {
                    QueueReason::Slots { busy, limit } => vec![
                        kv("loreweave.wait", "slots"),
                        int("loreweave.slots.busy", *busy),
                        int("loreweave.slots.limit", *limit as u64),
                    ],
                    QueueReason::RateLimit { per_minute } => vec![
                        kv("loreweave.wait", "rate_limit"),
                        int("loreweave.rate_per_minute", u64::from(*per_minute)),
                    ],
                };
                span.events.push(event_at(time, "queued", attrs));
            }
            EventKind::Dispatched { attempt } => {
                open.dispatched = Some(event.at);
                span.events.push(event_at(
                    time,
                    "dispatched",
                    vec![int("loreweave.attempt", u64::from(*attempt))],
                ));
            }
            EventKind::FirstToken => {
                if let Some(dispatched) = open.dispatched {
                    let secs = event.at.saturating_duration_since(dispatched).as_secs_f64();
                    set_attr(
                        &mut span.attributes,
                        "gen_ai.response.time_to_first_chunk",
                        AnyValue {
                            value: Some(any_value::Value::DoubleValue(secs)),
                        },
                    );
                }
                span.events.push(event_at(time, "first_token", Vec::new()));
            }
            EventKind::Usage {
                input_tokens,
                output_tokens,
            } => {
                for (key, value) in [
                    ("gen_ai.usage.input_tokens", input_tokens),
                    ("gen_ai.usage.output_tokens", output_tokens),
                    ("llm.token_count.prompt", input_tokens),
                    ("llm.token_count.completion", output_tokens),
                ] {
                    if let Some(value) = value {
                        set_attr(&mut span.attributes, key, int_value(*value));
                    }
                }
            }
            EventKind::PassagesRetrieved { count } => {
                set_attr(
                    &mut span.attributes,
                    "loreweave.retrieval.documents",
                    int_value(*count as u64),
                );
                span.events.push(event_at(
                    time,
                    "passages_retrieved",
                    vec![int("loreweave.retrieval.documents", *count as u64)],
                ));
            }
            EventKind::Embedded { dimensions } => {
                set_attr(
                    &mut span.attributes,
                    "gen_ai.embeddings.dimension.count",
                    int_value(*dimensions as u64),
                );
                span.events.push(event_at(time, "embedded", Vec::new()));
            }
            EventKind::RetryScheduled {
                retry,
                delay_ms,
                reason,
            } => span.events.push(event_at(
                time,
                "retry",
                vec![
                    int("loreweave.retry", u64::from(*retry)),
                    int("loreweave.retry.delay_ms", *delay_ms),
                    kv("loreweave.retry.reason", reason.clone()),
                ],
            )),
            EventKind::Observed { grace_ms } => {
                open.observed = true;
                span.events.push(event_at(
                    time,
                    "observed",
                    vec![int("loreweave.late.grace_ms", *grace_ms)],
                ));
            }
            EventKind::LateArrival(late) => {
                let crate::engine::event::LateArrival {
                    what,
                    after,
                    late_by_ms,
                } = &**late;
                let mut attrs = vec![kv("loreweave.late.what", what.clone())];
                if let Some(ms) = late_by_ms {
                    attrs.push(int("loreweave.late.by_ms", *ms));
                }
                match after {
                    LateAfter::Deadline if open.observed => {
                        // The observed call answered: the span ends here,
                        // showing how long the backend really took.
                        if let Some(ms) = late_by_ms {
                            set_attr(&mut span.attributes, "loreweave.late.by_ms", int_value(*ms));
                        }
                        span.events.push(event_at(time, "late_arrival", attrs));
                        span.end_time_unix_nano = time;
                        open.observed = false;
                    }
                    _ => span.events.push(event_at(time, "late_drop", attrs)),
                }
            }
            EventKind::Abandoned { after_ms } => {
                span.events.push(event_at(
                    time,
                    "abandoned",
                    vec![int("loreweave.late.after_ms", *after_ms)],
                ));
                span.end_time_unix_nano = time;
                set_attr(
                    &mut span.attributes,
                    "loreweave.late.abandoned",
                    AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    },
                );
                open.observed = false;
            }
            EventKind::Final { outcome } => {
                open.ended = true;
                span.end_time_unix_nano = time;
                let (status, error_type) = match outcome {
                    Outcome::Completed | Outcome::Joined(_) => (ok_status(), None),
                    Outcome::Cancelled => (Status::default(), None),
                    Outcome::Failed(reason) => (error_status(reason), Some("failed")),
                    Outcome::TimedOut => {
                        span.events.push(event_at(time, "deadline", Vec::new()));
                        (error_status("timed out"), Some("timeout"))
                    }
                    Outcome::ShortCircuited => (
                        error_status("short-circuited: the backend's breaker is open"),
                        Some("circuit_open"),
                    ),
                };
                span.status = Some(status);
                if let Some(error_type) = error_type {
                    set_attr(&mut span.attributes, "error.type", str_value(error_type));
                }
                set_attr(
                    &mut span.attributes,
                    "loreweave.outcome",
                    str_value(outcome.label()),
                );
                if let Some(attempts) = attempts.filter(|_| !is_parent(open.kind)) {
                    set_attr(
                        &mut span.attributes,
                        "loreweave.attempts",
                        int_value(u64::from(attempts)),
                    );
                }
                if let Outcome::Joined(leader) = outcome {
                    let leader_trace = lookup.request(*leader).map_or(*leader, |i| i.root);
                    span.links.push(span::Link {
                        trace_id: trace_id(leader_trace).to_vec(),
                        span_id: span_id(*leader).to_vec(),
                        attributes: vec![kv("loreweave.link", "joined")],
                        ..Default::default()
                    });
                }
            }
            // Content-free text: reasons, summaries, ids.
            other @ (EventKind::Note { .. }
            | EventKind::Ingested { .. }
            | EventKind::Fallback { .. }
            | EventKind::ChildTimedOut { .. }
            | EventKind::Joined { .. }
            | EventKind::TookOver { .. }
            | EventKind::HalfOpenProbe
            | EventKind::Working
            | EventKind::ChunkVectors { .. }
            | EventKind::StaleResult { .. }
            | EventKind::Breaker(_)
            | EventKind::Chaos { .. }) => {
                let attrs = if capture || !matches!(other, EventKind::Note { .. }) {
                    vec![kv("message", other.to_string())]
                } else {
                    Vec::new()
                };
                span.events.push(event_at(time, other.name(), attrs));
            }
        }
        true
    }

    fn start_span(&self, id: RequestId, info: &RequestInfo) -> Span {
        let backend = self.options.backends.get(&info.backend);
        let model = backend.and_then(|b| b.model.clone());
        let provider = backend.map_or_else(|| info.backend.clone(), |b| b.provider.clone());
        let remote = backend.is_some_and(|b| b.remote);
        let (operation, span_kind_oi) = match info.kind {
            Kind::Scenario | Kind::Turn | Kind::Ingest => (None, "CHAIN"),
            Kind::Retrieve => (Some("retrieval"), "RETRIEVER"),
            Kind::Chat | Kind::Generate => (Some("chat"), "LLM"),
            Kind::Embed => (Some("embeddings"), "EMBEDDING"),
        };
        let name = match (info.kind, operation) {
            (Kind::Scenario | Kind::Turn, _) => info.kind.label().to_string(),
            (Kind::Ingest, _) => format!("ingest {}", info.backend),
            (Kind::Retrieve, Some(op)) => format!("{op} {}", info.backend),
            (_, Some(op)) => format!("{op} {}", model.as_deref().unwrap_or(&info.backend)),
            (_, None) => info.kind.label().to_string(),
        };
        let mut attributes = vec![
            kv("openinference.span.kind", span_kind_oi),
            kv("loreweave.request.id", id.to_string()),
            kv("loreweave.request.kind", info.kind.label()),
            kv("loreweave.backend", info.backend.clone()),
        ];
        if let Some(op) = operation {
            attributes.push(kv("gen_ai.operation.name", op));
            attributes.push(kv("gen_ai.provider.name", provider.clone()));
            if let Some(model) = &model {
                attributes.push(kv("gen_ai.request.model", model.clone()));
            }
        }
        match info.kind {
            Kind::Retrieve => {
                let top_k = self.options.top_k as u64;
                attributes.push(int("gen_ai.request.top_k", top_k));
                attributes.push(int("gen_ai.retrieval.top_k", top_k));
                attributes.push(kv("gen_ai.data_source.id", info.backend.clone()));
            }
            Kind::Chat | Kind::Generate => {
                // OpenInference's names, which Phoenix reads.
                attributes.push(kv("llm.provider", provider));
                if let Some(model) = &model {
                    attributes.push(kv("llm.model_name", model.clone()));
                }
            }
            Kind::Embed => {
                if let Some(model) = &model {
                    attributes.push(kv("embedding.model_name", model.clone()));
                }
            }
            _ => {}
        }
        if let Some(conversation) = info.conversation {
            attributes.push(kv("gen_ai.conversation.id", conversation.to_string()));
            attributes.push(kv("session.id", conversation.to_string()));
        }
        if self.options.capture_content && !info.label.is_empty() {
            attributes.push(kv("input.value", info.label.clone()));
        }
        Span {
            trace_id: trace_id(info.root).to_vec(),
            span_id: span_id(id).to_vec(),
            parent_span_id: info.parent.map(|p| span_id(p).to_vec()).unwrap_or_default(),
            name,
            kind: if remote {
                span::SpanKind::Client
            } else {
                span::SpanKind::Internal
            } as i32,
            start_time_unix_nano: self.clock.nanos(info.created),
            attributes,
            ..Default::default()
        }
    }
}

/// A pipeline's top: a scenario or a chat turn.
fn is_parent(kind: Kind) -> bool {
    matches!(kind, Kind::Scenario | Kind::Turn)
}

fn ok_status() -> Status {
    Status {
        code: status::StatusCode::Ok as i32,
        message: String::new(),
    }
}

fn error_status(message: &str) -> Status {
    Status {
        code: status::StatusCode::Error as i32,
        message: message.to_string(),
    }
}

fn event_at(time: u64, name: &str, attributes: Vec<KeyValue>) -> span::Event {
    span::Event {
        time_unix_nano: time,
        name: name.to_string(),
        attributes,
        dropped_attributes_count: 0,
    }
}

fn str_value(value: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    }
}

fn int_value(value: u64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(
            i64::try_from(value).unwrap_or(i64::MAX),
        )),
    }
}

pub(crate) fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(str_value(value)),
        ..Default::default()
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(int_value(value)),
        ..Default::default()
    }
}

fn push_attr(attributes: &mut Vec<KeyValue>, key: &str, value: String) {
    set_attr(attributes, key, str_value(value));
}

fn set_attr(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
