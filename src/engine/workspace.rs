//! What the user has made in this session: conversations (with their FIFO of
//! queued messages) and scenarios. The engine writes these; the views read
//! them. A conversation's `messages` only ever hold finished or running
//! exchanges in order, so queued messages never interleave with a running
//! reply: they wait in `queue` until their turn starts.

use std::collections::VecDeque;

use crate::domain::{Passage, Role};

use super::request::RequestId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// Retrieval or generation is running; `text` may hold a partial reply.
    Running,
    Done,
    /// The reply stopped early; the partial text is kept.
    Failed(String),
    Cancelled,
}

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
}

/// A message typed while another reply was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Per-conversation number, for cancelling it by position.
    pub number: u64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub title: String,
    pub messages: Vec<ChatMessage>,
    pub queue: VecDeque<QueuedMessage>,
    /// The turn request now running, if any.
    pub running: Option<RequestId>,
    pub(crate) next_queue_number: u64,
}

impl Conversation {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            messages: Vec::new(),
            queue: VecDeque::new(),
            running: None,
            next_queue_number: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioStatus {
    Generating,
    Done,
    Failed(String),
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct ScenarioEntry {
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
