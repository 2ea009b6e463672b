//! Typed lifecycle events: what happened to a request (or a backend), as
//! data. The registry records them on each request's timeline and in the
//! event feed; the view styles them by variant; `--json`, the JSON Lines
//! trace and the OpenTelemetry exporter serialise them. `Display` gives the
//! one-line text the inspector shows.
//!
//! The serde form is stable and versioned by [`EVENT_FORMAT_VERSION`]: a
//! variant's tag (`"event"`) and fields only ever gain optional fields
//! within a version. A timeline saved before events were typed reads back
//! as [`EventKind::Note`] with its old text.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::request::{Kind, Outcome, RequestId, Shared, format_duration};
use super::spoken_duration;
use super::workspace::ConversationId;

/// Version of the serde form of events (and of `--json` lines).
pub const EVENT_FORMAT_VERSION: u32 = 2;

/// Why a request waits before dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "wait", rename_all = "snake_case")]
pub enum QueueReason {
    /// Every concurrency slot of its backend is busy.
    Slots { busy: u64, limit: usize },
    /// The backend's rate limit has no token.
    RateLimit { per_minute: u32 },
}

/// What a fallback fell back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackTo {
    /// Hybrid retrieval ran keyword-only (the embedder failed).
    KeywordOnly,
    /// Generation ran without passages.
    NoLore,
}

/// What a late result was measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "after", rename_all = "snake_case")]
pub enum LateAfter {
    /// An observed call answered after its deadline.
    Deadline,
    /// A result for a request that had already ended (`phase` says how).
    End { phase: String },
    /// The request is older than the history ring.
    Unknown,
}

/// What [`EventKind::LateArrival`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateArrival {
    pub what: String,
    pub after: LateAfter,
    /// How long after the deadline or the end.
    pub late_by_ms: Option<u64>,
}

/// What [`EventKind::Breaker`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerChange {
    pub from: String,
    pub to: String,
    pub why: String,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The request exists; `label` is its query or prompt (the request's
    /// own label, shared, not copied).
    Created {
        #[serde(with = "super::request::shared_str")]
        label: Shared,
    },
    /// It waits for a slot or a rate token.
    Queued { reason: QueueReason },
    /// The breaker let it through as the half-open probe.
    HalfOpenProbe,
    /// Handed to the backend (attempt 1 is the first try).
    Dispatched { attempt: u32 },
    /// A parent began its own work (generation after retrieval).
    Working,
    /// The first token of a stream arrived.
    FirstToken,
    /// A retrieval answered.
    PassagesRetrieved { count: usize },
    /// An embedding answered.
    Embedded { dimensions: usize },
    /// A batch of chunk vectors answered.
    ChunkVectors { count: usize },
    /// The server's token counts for a generation.
    Usage {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
    },
    /// An ingest's summary.
    Ingested { summary: String },
    /// A retry is scheduled `delay_ms` from now; `retry` counts from 1.
    RetryScheduled {
        retry: u32,
        delay_ms: u64,
        reason: String,
    },
    /// De-duplicated onto an identical request in flight.
    Joined { leader: RequestId },
    /// Its leader was cancelled; this follower now runs the call.
    TookOver { leader: RequestId },
    /// A pipeline degraded instead of failing.
    Fallback { to: FallbackTo, reason: String },
    /// A child of this parent timed out (`what` names it).
    ChildTimedOut { what: String },
    /// The call outlived the request's deadline and is observed for `grace_ms`.
    Observed { grace_ms: u64 },
    /// A result arrived after the deadline or the end; never applied.
    /// (Boxed, as `Breaker`: rare, and inline it made every event, on
    /// every retained request's timeline, 32 bytes larger. The serde form
    /// is the same: the fields sit next to the tag.)
    LateArrival(Box<LateArrival>),
    /// A result from an earlier attempt of a request that is still live (it
    /// was retried or re-queued since): dropped, never applied.
    StaleResult { what: String },
    /// An observed call gave no answer within its grace and was aborted.
    Abandoned { after_ms: u64 },
    /// A backend's breaker changed state.
    Breaker(Box<BreakerChange>),
    /// Fault injection changed (`/chaos`).
    Chaos { text: String },
    /// The request ended. Exactly one per request.
    Final { outcome: Outcome },
    /// Free text: timelines saved before events were typed.
    Note { text: String },
}

impl EventKind {
    /// A result that arrived after the deadline or the end.
    pub fn late_arrival(
        what: impl Into<String>,
        after: LateAfter,
        late_by_ms: Option<u64>,
    ) -> Self {
        EventKind::LateArrival(Box::new(LateArrival {
            what: what.into(),
            after,
            late_by_ms,
        }))
    }

    /// A breaker's change of state.
    pub fn breaker(from: impl Into<String>, to: impl Into<String>, why: impl Into<String>) -> Self {
        EventKind::Breaker(Box::new(BreakerChange {
            from: from.into(),
            to: to.into(),
            why: why.into(),
        }))
    }

    /// The variant's stable name (the serde tag), for filters and styling.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::Queued { .. } => "queued",
            EventKind::HalfOpenProbe => "half_open_probe",
            EventKind::Dispatched { .. } => "dispatched",
            EventKind::Working => "working",
            EventKind::FirstToken => "first_token",
            EventKind::PassagesRetrieved { .. } => "passages_retrieved",
            EventKind::Embedded { .. } => "embedded",
            EventKind::ChunkVectors { .. } => "chunk_vectors",
            EventKind::Usage { .. } => "usage",
            EventKind::Ingested { .. } => "ingested",
            EventKind::RetryScheduled { .. } => "retry_scheduled",
            EventKind::Joined { .. } => "joined",
            EventKind::TookOver { .. } => "took_over",
            EventKind::Fallback { .. } => "fallback",
            EventKind::ChildTimedOut { .. } => "child_timed_out",
            EventKind::Observed { .. } => "observed",
            EventKind::LateArrival(_) => "late_arrival",
            EventKind::StaleResult { .. } => "stale_result",
            EventKind::Abandoned { .. } => "abandoned",
            EventKind::Breaker(_) => "breaker",
            EventKind::Chaos { .. } => "chaos",
            EventKind::Final { .. } => "final",
            EventKind::Note { .. } => "note",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, EventKind::Final { .. })
    }

    /// A late result (after the deadline, the end, or its attempt).
    pub fn is_late(&self) -> bool {
        matches!(
            self,
            EventKind::LateArrival(_) | EventKind::StaleResult { .. }
        )
    }

    /// Something went wrong here (styled as an error).
    pub fn is_error(&self) -> bool {
        match self {
            EventKind::Final { outcome } => !matches!(
                outcome,
                Outcome::Completed | Outcome::Joined(_) | Outcome::Cancelled
            ),
            EventKind::ChildTimedOut { .. }
            | EventKind::Abandoned { .. }
            | EventKind::LateArrival(_) => true,
            EventKind::Breaker(change) => change.to == "open",
            _ => false,
        }
    }

    /// A warning: a retry, a fallback, a queue wait, an observed call.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            EventKind::RetryScheduled { .. }
                | EventKind::Fallback { .. }
                | EventKind::Observed { .. }
                | EventKind::HalfOpenProbe
                | EventKind::TookOver { .. }
        ) || matches!(self, EventKind::Breaker(change) if change.to == "half-open")
    }

    /// Every free text the event carries (queries, reasons, summaries),
    /// mutably: `--redact` rewrites them. A `Created` label is not among
    /// them: it is shared with its request (immutable), so it is replaced
    /// whole.
    pub fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            EventKind::Ingested { summary } => vec![summary],
            EventKind::RetryScheduled { reason, .. } | EventKind::Fallback { reason, .. } => {
                vec![reason]
            }
            EventKind::Note { text } | EventKind::Chaos { text } => vec![text],
            EventKind::Final {
                outcome: Outcome::Failed(reason),
            } => vec![reason],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Created { .. } => f.write_str("created"),
            EventKind::Queued {
                reason: QueueReason::Slots { busy, limit },
            } => write!(f, "queued: {busy} of {limit} slot(s) busy"),
            EventKind::Queued {
                reason: QueueReason::RateLimit { per_minute },
            } => write!(f, "queued: rate limit {per_minute}/min"),
            EventKind::HalfOpenProbe => f.write_str("half-open probe"),
            EventKind::Dispatched { attempt } => write!(f, "dispatched (attempt {attempt})"),
            EventKind::Working => f.write_str("dispatched"),
            EventKind::FirstToken => f.write_str("first token"),
            EventKind::PassagesRetrieved { count } => write!(f, "{count} passage(s) retrieved"),
            EventKind::Embedded { dimensions } => write!(f, "embedded ({dimensions} dimensions)"),
            EventKind::ChunkVectors { count } => write!(f, "{count} chunk vector(s)"),
            EventKind::Usage {
                input_tokens,
                output_tokens,
            } => {
                let n = |v: &Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
                write!(
                    f,
                    "tokens: {} in, {} out",
                    n(input_tokens),
                    n(output_tokens)
                )
            }
            EventKind::Ingested { summary } => f.write_str(summary),
            EventKind::RetryScheduled {
                retry,
                delay_ms,
                reason,
            } => write!(
                f,
                "retry {retry} in {}: {reason}",
                format_duration(Duration::from_millis(*delay_ms))
            ),
            EventKind::Joined { leader } => {
                write!(
                    f,
                    "joined {}: identical retrieval in flight",
                    leader.short()
                )
            }
            EventKind::TookOver { leader } => {
                write!(f, "leader {} cancelled: taking over", leader.short())
            }
            EventKind::Fallback {
                to: FallbackTo::KeywordOnly,
                reason,
            } => write!(f, "keyword retrieval only ({reason})"),
            EventKind::Fallback {
                to: FallbackTo::NoLore,
                reason,
            } => write!(f, "fallback: no lore ({reason})"),
            EventKind::ChildTimedOut { what } => write!(f, "generation timed out: {what}"),
            EventKind::Observed { grace_ms } => write!(
                f,
                "call observed past the deadline (grace {})",
                spoken_duration(Duration::from_millis(*grace_ms))
            ),
            EventKind::LateArrival(late) => {
                let LateArrival {
                    what,
                    after,
                    late_by_ms,
                } = &**late;
                let by = late_by_ms.map(|ms| format_duration(Duration::from_millis(ms)));
                match (after, by) {
                    (LateAfter::Deadline, Some(by)) => {
                        write!(f, "late arrival: {what} {by} after the deadline")
                    }
                    (LateAfter::End { phase }, Some(by)) => write!(
                        f,
                        "late drop: {what} arrived {by} after the request ended ({phase})"
                    ),
                    _ => write!(f, "late drop: {what} for a request that ended long ago"),
                }
            }
            EventKind::StaleResult { what } => {
                write!(f, "late drop: {what} from an earlier attempt")
            }
            EventKind::Abandoned { after_ms } => write!(
                f,
                "abandoned: no answer {} after the deadline",
                format_duration(Duration::from_millis(*after_ms))
            ),
            EventKind::Breaker(change) => {
                let BreakerChange { from, to, why } = &**change;
                write!(f, "breaker {from} -> {to} ({why})")
            }
            EventKind::Chaos { text } => f.write_str(text),
            EventKind::Final { outcome } => match outcome {
                Outcome::Failed(reason) => write!(f, "failed: {reason}"),
                Outcome::Joined(leader) => write!(f, "joined {}", leader.short()),
                other => f.write_str(other.label()),
            },
            EventKind::Note { text } => f.write_str(text),
        }
    }
}

/// One lifecycle event, as shown in the event feed, exported with `--json`,
/// written to traces and turned into spans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LifecycleEvent {
    #[serde(skip)]
    pub at: Instant,
    /// Milliseconds since the engine started.
    pub t_ms: u64,
    /// `None` for backend events (breaker transitions, chaos).
    pub id: Option<RequestId>,
    pub parent: Option<RequestId>,
    /// `None` for backend events and late results older than the history ring.
    pub kind: Option<Kind>,
    /// Shared with the backend table (no copy per event).
    #[serde(with = "super::request::shared_str")]
    pub backend: Shared,
    pub conversation: Option<ConversationId>,
    /// What happened.
    pub event: EventKind,
}

impl LifecycleEvent {
    /// The one-line text the inspector shows.
    pub fn text(&self) -> String {
        self.event.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boxed variants keep the serde form they had as struct variants:
    /// their fields next to the tag.
    #[test]
    fn boxed_variants_serialise_as_before_and_read_back() {
        let late = EventKind::late_arrival("token", LateAfter::Deadline, Some(120));
        let json = serde_json::to_value(&late).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event": "late_arrival",
                "what": "token",
                "after": {"after": "deadline"},
                "late_by_ms": 120
            })
        );
        assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), late);
        let breaker = EventKind::breaker("closed", "open", "5 failures");
        let json = serde_json::to_value(&breaker).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event": "breaker", "from": "closed", "to": "open", "why": "5 failures"
            })
        );
        assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), breaker);
        assert!(breaker.is_error());
        assert_eq!(
            late.to_string(),
            "late arrival: token 120ms after the deadline"
        );
    }

    /// A timeline entry stays small: the rare variants are boxed.
    #[test]
    fn an_event_is_no_larger_than_its_common_variants_need() {
        assert!(std::mem::size_of::<EventKind>() <= 48);
    }
}
