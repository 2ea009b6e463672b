//! What a request is: its correlation id, kind, backend, parent, deadline,
//! phase and timeline. A request's phase only moves forward and reaches
//! exactly one final [`Outcome`]; the registry enforces that.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::event::EventKind;

use super::workspace::ConversationId;

/// A request's correlation id: a ULID, shown by its last six characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub Ulid);

impl RequestId {
    /// The id of no request (restored work that has no live request).
    pub fn nil() -> Self {
        RequestId(Ulid::nil())
    }

    /// The short form shown in the lifecycle pane (last six characters,
    /// lowercase: the random part, so ids made in the same millisecond differ).
    pub fn short(&self) -> String {
        let full = self.0.to_string();
        full[full.len() - 6..].to_lowercase()
    }

    /// Whether `text` names this id: the full ULID or its short form, any case.
    pub fn matches(&self, text: &str) -> bool {
        let text = text.trim();
        !text.is_empty()
            && (self.0.to_string().eq_ignore_ascii_case(text)
                || self.short().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ulid::from_string(&text)
            .map(RequestId)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A cheap hasher for [`RequestId`] keys. The engine makes its ids (80
/// random bits from its own generator), so nothing outside can choose keys
/// that collide: SipHash's flooding resistance buys nothing here, and it
/// was the largest single cost per input. A ULID hashes as one `u128`;
/// both halves are folded and mixed (multiply, then the high bits into the
/// low ones, which pick the bucket).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(x: u64) -> u64 {
    let x = x.wrapping_mul(MIX);
    x ^ (x >> 29)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix(self.0.rotate_left(23) ^ u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0.rotate_left(23) ^ n);
    }

    fn write_u128(&mut self, n: u128) {
        let (low, high) = (n as u64, (n >> 64) as u64);
        self.0 = mix(self.0.rotate_left(23) ^ low ^ high.rotate_left(32));
    }
}

/// Builds [`IdHasher`]s.
pub type IdBuildHasher = BuildHasherDefault<IdHasher>;
/// A map keyed by request id, hashed with [`IdHasher`].
pub type IdMap<V> = HashMap<RequestId, V, IdBuildHasher>;
/// A set of request ids, hashed with [`IdHasher`].
pub type IdSet = HashSet<RequestId, IdBuildHasher>;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A scenario: owns a retrieval and a generation.
    Scenario,
    /// A chat turn: owns a retrieval and a chat generation.
    Turn,
    Retrieve,
    Embed,
    Chat,
    Generate,
    /// Documents added to a knowledge base (`/kb add`).
    Ingest,
}

impl Kind {
    /// The kind a [`Kind::label`] names.
    pub fn from_label(label: &str) -> Option<Kind> {
        [
            Kind::Scenario,
            Kind::Turn,
            Kind::Retrieve,
            Kind::Embed,
            Kind::Chat,
            Kind::Generate,
            Kind::Ingest,
        ]
        .into_iter()
        .find(|k| k.label() == label)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Scenario => "scenario",
            Kind::Turn => "turn",
            Kind::Retrieve => "retrieve",
            Kind::Embed => "embed",
            Kind::Chat => "chat",
            Kind::Generate => "generate",
            Kind::Ingest => "ingest",
        }
    }
}

/// How a request ended. Exactly one per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed(String),
    TimedOut,
    Cancelled,
    /// Ended at once because its backend's breaker was open.
    ShortCircuited,
    /// De-duplicated onto another in-flight request.
    Joined(RequestId),
}

impl Outcome {
    /// What the outcome carries besides its label: a failure's reason, the
    /// leader a joined request took its result from.
    pub fn detail(&self) -> Option<String> {
        match self {
            Outcome::Failed(reason) => Some(reason.clone()),
            Outcome::Joined(leader) => Some(leader.to_string()),
            _ => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Cancelled => "cancelled",
            Outcome::ShortCircuited => "short-circuited",
            Outcome::Joined(_) => "joined",
        }
    }
}

/// Where a request is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a concurrency slot (or, for a parent, for its children).
    Queued,
    /// Handed to the runtime; no answer yet.
    Dispatched,
    /// Waiting for a retry's backoff to pass.
    Retrying {
        until: Instant,
    },
    /// Tokens are arriving.
    Streaming,
    Done(Outcome),
}

impl Phase {
    pub fn label(&self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Dispatched => "dispatched",
            Phase::Retrying { .. } => "retrying",
            Phase::Streaming => "streaming",
            Phase::Done(outcome) => outcome.label(),
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, Phase::Done(_))
    }
}

/// How long a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlinePolicy {
    /// One total budget from dispatch (retrieval, embeddings).
    Total(Duration),
    /// Streaming generation: a budget for the first token, then one between
    /// tokens.
    Streaming {
        first_token: Duration,
        idle: Duration,
    },
    /// Parents: no deadline of their own; they end when their children do,
    /// and every child has one.
    Children,
    /// No deadline: work that ends when it is done or cancelled (ingest).
    Unbounded,
}

/// One thing that happened to a request, for its timeline and the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// Milliseconds since the request was created (the moment itself is
    /// not kept: nothing read it, and every retained request paid 16 bytes
    /// per entry for it).
    pub offset_ms: u64,
    pub event: EventKind,
}

impl TimelineEntry {
    /// The line the inspector shows.
    pub fn text(&self) -> String {
        self.event.to_string()
    }
}

/// Saved as `{"offset_ms", "event": {...}, "what": "text"}`: the typed event
/// for loreweave, the text for anyone reading the database by hand (and for
/// versions that saved text only).
impl Serialize for TimelineEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("TimelineEntry", 3)?;
        s.serialize_field("offset_ms", &self.offset_ms)?;
        s.serialize_field("event", &self.event)?;
        s.serialize_field("what", &self.event.to_string())?;
        s.end()
    }
}

/// Text shared rather than copied: a backend's name (one allocation per
/// backend, shared by every request and event on it) or a request's label
/// (shared by the request, its `Created` event and its saved summary).
/// Serialised as a plain string.
pub type Shared = Arc<str>;

/// Serde for a [`Shared`] field as a plain string (serde's own `Arc`
/// support is behind its `rc` feature, which would rebuild every crate
/// that uses serde).
pub mod shared_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }
}

/// A request as the registry holds it.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: RequestId,
    /// Creation order, for stable display.
    pub seq: u64,
    pub kind: Kind,
    /// Shared with the backend table and every event on this request.
    pub backend: Shared,
    pub parent: Option<RequestId>,
    pub children: Vec<RequestId>,
    /// The conversation it works for (a turn's or a scenario's, inherited by
    /// their children); `None` for knowledge-base work.
    pub conversation: Option<ConversationId>,
    /// A short human description: the query or the prompt (shared with
    /// its `Created` event).
    pub label: Shared,
    pub created: Instant,
    pub dispatched: Option<Instant>,
    pub ended: Option<Instant>,
    pub policy: DeadlinePolicy,
    /// When the request expires, if it is live and has a deadline now.
    pub deadline: Option<Instant>,
    pub phase: Phase,
    pub attempt: u32,
    /// Results that arrived after this request ended and were dropped.
    pub late_drops: u32,
    pub timeline: Vec<TimelineEntry>,
    /// Where long work stands ("12/40 files · 57 chunks"), while it runs.
    pub progress: Option<Box<str>>,
    /// Restored from a stored session's lifecycle summary (an earlier run):
    /// its timeline is what was saved, not what this run saw.
    pub restored: bool,
}

impl Request {
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Done(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Time since creation, frozen at the end.
    pub fn elapsed(&self, now: Instant) -> Duration {
        self.ended
            .unwrap_or(now)
            .saturating_duration_since(self.created)
    }

    /// The budget to show next to the elapsed time ("10s", "ft 60s").
    pub fn budget_label(&self) -> String {
        match self.policy {
            DeadlinePolicy::Total(total) => format_duration(total),
            DeadlinePolicy::Streaming { first_token, idle } => match self.phase {
                Phase::Streaming => format!("idle {}", format_duration(idle)),
                _ => format!("ft {}", format_duration(first_token)),
            },
            DeadlinePolicy::Children | DeadlinePolicy::Unbounded => "-".to_string(),
        }
    }

    pub(crate) fn note(&mut self, at: Instant, event: EventKind) {
        let offset_ms = millis(at.saturating_duration_since(self.created));
        self.timeline.push(TimelineEntry { offset_ms, event });
    }
}

/// A finished request's lifecycle, as saved for a reopened session's
/// inspector. Times are wall-clock milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSummary {
    pub id: RequestId,
    pub parent: Option<RequestId>,
    pub conversation: Option<ConversationId>,
    pub kind: Kind,
    #[serde(with = "shared_str")]
    pub backend: Shared,
    #[serde(with = "shared_str")]
    pub label: Shared,
    /// How it ended (`outcome.label()`, `outcome.detail()`).
    pub outcome: Outcome,
    pub attempts: u32,
    pub created_ms: u64,
    pub dispatched_ms: Option<u64>,
    pub ended_ms: u64,
    /// Offsets from `created_ms`.
    pub timeline: Vec<TimelineEntry>,
}

impl Request {
    /// The summary of a finished request; `None` while it is live.
    /// `origin` and `wall_origin_ms` are the same moment on the monotonic
    /// and the wall clock.
    pub fn summary(&self, origin: Instant, wall_origin_ms: u64) -> Option<RequestSummary> {
        let outcome = self.outcome()?.clone();
        let wall = |at: Instant| {
            wall_origin_ms.saturating_add(millis(at.saturating_duration_since(origin)))
        };
        Some(RequestSummary {
            id: self.id,
            parent: self.parent,
            conversation: self.conversation,
            kind: self.kind,
            backend: self.backend.clone(),
            label: self.label.clone(),
            outcome,
            attempts: self.attempt,
            created_ms: wall(self.created),
            dispatched_ms: self.dispatched.map(wall),
            ended_ms: wall(self.ended.unwrap_or(self.created)),
            timeline: self.timeline.clone(),
        })
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// "850ms", "1.2s", "10s", "2m05s".
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 10_000 {
        let tenths = ms / 100;
        if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else if ms < 120_000 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1_250)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn short_id_matches_its_request_only() {
        let a = RequestId(Ulid::from_parts(1, 42));
        let b = RequestId(Ulid::from_parts(1, 43));
        assert_eq!(a.short().len(), 6);
        assert!(a.matches(&a.short()));
        assert!(a.matches(&a.short().to_uppercase()));
        assert!(a.matches(&a.to_string()));
        assert!(!b.matches(&a.short()));
        assert!(!a.matches(""));
    }
}
