//! Plain data the session database reads and writes: rows as the rest of the
//! program sees them, with no SQL in them. JSON columns are typed here
//! (`passages` as [`Passage`]s; timings, events, sources and settings as
//! [`serde_json::Value`], because their shape belongs to the engine, which the
//! store must not import).
//!
//! Invariants: a [`MessageStatus`] round-trips through its column text
//! ([`MessageStatus::as_str`] / [`MessageStatus::parse`]); ids are SQLite
//! rowids and never reused for another row of the same table while the row
//! exists.

use serde::{Deserialize, Serialize};

use crate::domain::{Passage, Role};

/// Row id of a session.
pub type SessionId = i64;
/// Row id of a message.
pub type MessageId = i64;

/// One conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub id: SessionId,
    pub name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The knowledge base the session used last, if any.
    pub kb: Option<String>,
    /// The model the session used last, if any.
    pub model: Option<String>,
    /// Model settings (JSON, shape owned by the caller).
    pub settings: Option<serde_json::Value>,
}

/// What the session picker and `sessions list` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: SessionId,
    pub name: String,
    /// Number of messages (user and assistant).
    pub messages: u64,
    pub updated_ms: i64,
    pub kb: Option<String>,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// A user message handed to the engine.
    Sent,
    /// A user message committed but not (or no longer) sent: queued when the
    /// program stopped, or waiting for the user to send it again.
    Unsent,
    /// An assistant reply still streaming.
    Running,
    /// An assistant reply that finished.
    Done,
    /// An assistant reply cut short by a crash or a kill.
    Incomplete,
    /// Cancelled by the user.
    Cancelled,
    /// Failed (the reason is in `detail`).
    Failed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 7] = [
        MessageStatus::Sent,
        MessageStatus::Unsent,
        MessageStatus::Running,
        MessageStatus::Done,
        MessageStatus::Incomplete,
        MessageStatus::Cancelled,
        MessageStatus::Failed,
    ];

    /// The text stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Unsent => "unsent",
            MessageStatus::Running => "running",
            MessageStatus::Done => "done",
            MessageStatus::Incomplete => "incomplete",
            MessageStatus::Cancelled => "cancelled",
            MessageStatus::Failed => "failed",
        }
    }

    /// The status a column text names, if any.
    pub fn parse(s: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: MessageId,
    pub session_id: SessionId,
    /// Position in the conversation, from 1, unique within the session.
    pub seq: i64,
    pub role: Role,
    pub text: String,
    pub status: MessageStatus,
    /// Failure reason, or why there was no lore.
    pub detail: Option<String>,
    pub backend: Option<String>,
    /// The passages the message cites, as they were when it was written.
    pub passages: Vec<Passage>,
    /// Correlation id of the request that produced it.
    pub request_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub timings: Option<serde_json::Value>,
}

/// A message to append; the store assigns its id, seq and times.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub role: Role,
    pub text: String,
    pub status: MessageStatus,
    pub detail: Option<String>,
    pub backend: Option<String>,
    pub passages: Vec<Passage>,
    pub request_id: Option<String>,
    pub timings: Option<serde_json::Value>,
}

impl NewMessage {
    /// A message with the given role, text and status and nothing else.
    pub fn new(role: Role, text: impl Into<String>, status: MessageStatus) -> Self {
        NewMessage {
            role,
            text: text.into(),
            status,
            detail: None,
            backend: None,
            passages: Vec::new(),
            request_id: None,
            timings: None,
        }
    }

    /// A user message as typed, with the given status (`Sent` or `Unsent`).
    pub fn user(text: impl Into<String>, status: MessageStatus) -> Self {
        NewMessage::new(Role::User, text, status)
    }

    /// An assistant reply that starts streaming (`Running`, empty text).
    pub fn assistant_running(request_id: Option<String>) -> Self {
        NewMessage {
            request_id,
            ..NewMessage::new(Role::Assistant, String::new(), MessageStatus::Running)
        }
    }
}

/// Changes to a stored message: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageUpdate {
    pub text: Option<String>,
    pub status: Option<MessageStatus>,
    pub detail: Option<String>,
    pub passages: Option<Vec<Passage>>,
    pub backend: Option<String>,
    pub request_id: Option<String>,
    pub timings: Option<serde_json::Value>,
}

/// One generated scenario of a session, saved (inserted or replaced) by its
/// `seq` within the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRow {
    pub seq: i64,
    pub prompt: Option<String>,
    pub seed: Option<u64>,
    pub title: Option<String>,
    pub markdown: Option<String>,
    pub sources: Option<serde_json::Value>,
    pub status: Option<String>,
    pub created_ms: i64,
}

/// A finished request's lifecycle summary, as the inspector shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    /// Correlation id (a ULID), unique within the session.
    pub id: String,
    pub parent: Option<String>,
    pub kind: Option<String>,
    pub backend: Option<String>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub attempts: u32,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
    pub events: Option<serde_json::Value>,
}

/// Everything a reopened session shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionData {
    pub session: SessionRow,
    /// In `seq` order.
    pub messages: Vec<MessageRow>,
    /// In `seq` order.
    pub scenarios: Vec<ScenarioRow>,
    /// The newest requests (at most the store's bound), oldest first.
    pub requests: Vec<RequestRow>,
}

/// The newest messages of a session, read first when it reopens (see
/// [`crate::store::Db::load_session_paged`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionTail {
    /// The session, its newest messages (at most the page asked for, in
    /// `seq` order) and all its scenarios; `requests` is empty (they come
    /// with [`SessionRest`]).
    pub data: SessionData,
    /// Whether older messages remain (they come with [`SessionRest`]).
    pub more: bool,
}

impl SessionTail {
    /// The `seq` the older messages are below, when there are any.
    pub fn older_than(&self) -> Option<i64> {
        self.data
            .messages
            .first()
            .map(|m| m.seq)
            .filter(|_| self.more)
    }
}

/// The rest of a session read from its end: what [`SessionTail`] left out.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRest {
    pub session: SessionId,
    /// The messages before the tail's, in `seq` order (empty when the tail
    /// held them all).
    pub messages: Vec<MessageRow>,
    /// The newest requests (at most the store's bound), oldest first.
    pub requests: Vec<RequestRow>,
}

/// What `delete_session` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    pub id: SessionId,
    pub name: String,
    /// The write-ahead log could not be truncated (another connection was
    /// reading): the deleted text may stay in it until the next start.
    pub truncation_pending: bool,
}

impl DeleteReport {
    /// A sentence for the user.
    pub fn message(&self) -> String {
        if self.truncation_pending {
            format!(
                "Deleted session {:?}. Another loreweave is reading the session database, so its \
                 text cannot be wiped from the write-ahead log yet; that happens at the next start.",
                self.name
            )
        } else {
            format!("Deleted session {:?}.", self.name)
        }
    }
}

/// What `mark_interrupted` found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterruptReport {
    /// Messages that were `running` and are now `incomplete`.
    pub incomplete: Vec<MessageId>,
    /// User messages that are `unsent` (left as they are, to be sent again).
    pub unsent: Vec<MessageId>,
}

impl InterruptReport {
    /// Nothing was interrupted.
    pub fn is_empty(&self) -> bool {
        self.incomplete.is_empty() && self.unsent.is_empty()
    }
}
