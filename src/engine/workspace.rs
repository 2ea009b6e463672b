//! What the user has made: conversations (each with its own FIFO of queued
//! messages, its running turn and its unsent messages) and scenarios. The
//! engine writes these; the views read them.
//!
//! Invariants: a conversation's `messages` only ever hold finished or
//! running exchanges, in order, and are append-only (never removed or
//! reordered), so a message's index is a stable key ([`MessageKey`]).
//! Queued messages never interleave with a running reply: they wait in
//! `queue` until their turn starts. `unsent` messages (queued when
//! loreweave last stopped) are never started until the user resends them.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{Passage, Role};

use super::request::RequestId;

/// Which conversation. The caller picks the number (the TUI uses the
/// session's database id); the engine only compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(pub u64);

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An assistant message within its conversation: its index in the
/// conversation's `messages` (0-based). The question it answers is at
/// `index - 1`. Stable, because messages are append-only; a conversation
/// restored with N messages numbers the next one N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageKey(pub usize);

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a reply or a scenario stands (one enum for both: they live the
/// same life).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// Retrieval or generation is running; `text` may hold a partial reply.
    Running,
    Done,
    /// The reply stopped early; the partial text is kept.
    Failed(String),
    Cancelled,
}

/// A reply's status as persisted: the same four states as a message's.
pub type ReplyStatus = MessageStatus;

#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub role: Role,
    pub text: String,
    pub status: MessageStatus,
    /// The turn request that produced (or is producing) this reply.
    pub request: Option<RequestId>,
    /// Backend that wrote the reply ("offline", "openai", ...).
    pub backend: Option<String>,
    /// Passages the reply may cite, in citation order.
    pub passages: Vec<Passage>,
    /// Why the reply has no lore, when it has none.
    pub no_lore: Option<String>,
    /// The caller's tag of a user message (the session database's row id),
    /// handed back in [`super::Effect::SaveReply`] when its turn starts.
    pub tag: Option<u64>,
}

/// A message the user typed that was not sent before loreweave stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsentMessage {
    pub text: String,
    /// The caller's tag (see [`ChatMessage::tag`]).
    pub tag: Option<u64>,
}

/// A message typed while another reply was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Per-conversation number, for cancelling it by position.
    pub number: u64,
    pub text: String,
    /// The caller's tag (see [`ChatMessage::tag`]).
    pub tag: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub name: String,
    pub messages: Vec<ChatMessage>,
    pub queue: VecDeque<QueuedMessage>,
    /// Messages that were still queued when loreweave last stopped, oldest
    /// first: shown, but not started until the user resends them.
    pub unsent: Vec<UnsentMessage>,
    /// The turn request now running, if any.
    pub running: Option<RequestId>,
    pub(crate) next_queue_number: u64,
    /// The index the next scenario asked in this conversation gets.
    pub(crate) next_scenario: usize,
}

impl Conversation {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            messages: Vec::new(),
            queue: VecDeque::new(),
            unsent: Vec::new(),
            running: None,
            next_queue_number: 1,
            next_scenario: 0,
        }
    }
}

/// A scenario's status: the same four states as a message's.
pub type ScenarioStatus = MessageStatus;

#[derive(Debug, Clone)]
pub struct ScenarioEntry {
    /// The conversation that was current when it was asked.
    pub conversation: ConversationId,
    /// Its position among its conversation's scenarios (0 = the first
    /// asked): the key it is saved under.
    pub index: usize,
    pub prompt: String,
    pub seed: u64,
    /// The scenario request (parent of its retrieval and generation).
    pub request: RequestId,
    pub backend: String,
    /// The markdown so far (complete once `status` is `Done`).
    pub markdown: String,
    pub status: ScenarioStatus,
    pub passages: Vec<Passage>,
    pub no_lore: Option<String>,
}

impl ScenarioEntry {
    /// The `# ` title of the markdown, or the prompt while none has arrived.
    pub fn title(&self) -> String {
        self.markdown
            .lines()
            .find_map(|line| line.strip_prefix("# "))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.prompt.clone())
    }
}
