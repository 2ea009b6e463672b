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
//! The one exception to append-only: a conversation restored from the end
//! of a stored session gets its older messages put in front once
//! ([`super::Engine::prepend_messages`]), while no turn runs, so no index
//! the engine holds moves (indices from before are `older.len()` lower).

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
    /// Put `older` (oldest first) in front of the messages and `unsent` in
    /// front of the unsent ones; a message still marked running becomes
    /// failed ("interrupted"), as in a restored conversation. Refused while
    /// a turn runs: its reply's index would move.
    fn prepend(
        &mut self,
        mut older: Vec<ChatMessage>,
        mut unsent: Vec<UnsentMessage>,
    ) -> Result<usize, Prepend> {
        if self.running.is_some() {
            return Err(Prepend::TurnRunning(older, unsent));
        }
        for message in &mut older {
            if message.status == MessageStatus::Running {
                message.status = MessageStatus::Failed("interrupted".into());
            }
        }
        let count = older.len();
        older.append(&mut self.messages);
        self.messages = older;
        unsent.append(&mut self.unsent);
        self.unsent = unsent;
        Ok(count)
    }

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

/// Why [`super::Engine::prepend_messages`] put nothing in front.
#[derive(Debug)]
pub enum Prepend {
    /// No conversation with that id is open.
    NotOpen,
    /// A turn is running (its reply's index would move): try again once it
    /// has ended. The messages are handed back.
    TurnRunning(Vec<ChatMessage>, Vec<UnsentMessage>),
}

impl super::Engine {
    /// Put a restored conversation's older messages in front of it (oldest
    /// first), with the unsent ones among them in front of its unsent
    /// ones: the rest of a session shown from its end. Returns how many
    /// messages were put in front (every index in the conversation moved up
    /// by that many).
    pub fn prepend_messages(
        &mut self,
        id: ConversationId,
        older: Vec<ChatMessage>,
        unsent: Vec<UnsentMessage>,
    ) -> Result<usize, Prepend> {
        match self.conversations.get_mut(&id) {
            Some(conversation) => conversation.prepend(older, unsent),
            None => Err(Prepend::NotOpen),
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

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::engine::{Command, Engine, EngineConfig, Input};

    const A: ConversationId = ConversationId(1);

    fn message(role: Role, text: &str, status: MessageStatus, tag: u64) -> ChatMessage {
        ChatMessage {
            tag: Some(tag),
            ..crate::engine::conversation_tests::message(role, text, status)
        }
    }

    fn unsent(text: &str) -> UnsentMessage {
        UnsentMessage {
            text: text.into(),
            tag: None,
        }
    }

    #[test]
    fn older_messages_go_in_front_once_and_never_under_a_running_turn() {
        let t0 = Instant::now();
        let mut engine = Engine::new(EngineConfig::default(), t0, SystemTime::UNIX_EPOCH, 1);
        let tail = vec![
            message(Role::User, "q2", MessageStatus::Done, 3),
            message(Role::Assistant, "a2", MessageStatus::Done, 4),
        ];
        assert!(engine.open_conversation(A, "a", tail, vec![unsent("late")]));
        let older = vec![
            message(Role::User, "q1", MessageStatus::Done, 1),
            message(Role::Assistant, "a1", MessageStatus::Running, 2),
        ];
        assert!(matches!(
            engine.prepend_messages(ConversationId(9), older.clone(), Vec::new()),
            Err(Prepend::NotOpen)
        ));
        let count = engine
            .prepend_messages(A, older.clone(), vec![unsent("early")])
            .expect("prepended");
        assert_eq!(count, 2);
        let conv = engine.conversation(A).expect("open");
        let texts: Vec<&str> = conv.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["q1", "a1", "q2", "a2"]);
        // A reply cut short stays so, as in any restored conversation.
        assert_eq!(
            conv.messages[1].status,
            MessageStatus::Failed("interrupted".into())
        );
        let unsent: Vec<&str> = conv.unsent.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(unsent, ["early", "late"]);

        // A turn running: refused, the messages handed back untouched.
        engine.handle(
            Input::Command(Command::Ask {
                conversation: A,
                text: "q3".into(),
                tag: Some(5),
            }),
            t0,
        );
        assert!(engine.conversation(A).expect("open").running.is_some());
        let before = engine.conversation(A).expect("open").messages.len();
        match engine.prepend_messages(A, older, Vec::new()) {
            Err(Prepend::TurnRunning(back, none)) => {
                assert_eq!(back.len(), 2);
                assert_eq!(back[1].status, MessageStatus::Running);
                assert!(none.is_empty());
            }
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(engine.conversation(A).expect("open").messages.len(), before);
    }
}
