//! Carries the engine's persistence effects (`SaveReply`, `SaveRequests`,
//! `SaveScenario`, `DropQueued`) to the session database thread, and turns
//! a stored session back into what the engine restores.
//!
//! A conversation's id is its session's row id, so no map is needed between
//! the two. Jobs are queued on the store thread in the order the engine
//! emitted them (the thread runs them one by one), so a reply's first save
//! (which appends its row) always runs before its later updates.
//!
//! Invariants: nothing here blocks the caller (every job is queued and its
//! result only inspected on the store thread); a failure is reported on the
//! `problems` channel for the user, never dropped silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::domain::Role;
use crate::engine::Effect;
use crate::engine::request::RequestSummary;
use crate::engine::workspace::{
    ChatMessage, ConversationId, MessageKey, MessageStatus as EngineStatus, ScenarioEntry,
    ScenarioStatus, UnsentMessage,
};
use crate::store::{
    Db, MessageId, MessageRow, MessageStatus, MessageUpdate, NewMessage, RequestRow, ScenarioRow,
    SessionData, SessionId, StoreError, StoreThread,
};

/// The session row id a conversation stands for.
pub fn session_of(conversation: ConversationId) -> SessionId {
    conversation.0 as SessionId
}

/// The conversation that shows a session.
pub fn conversation_of(session: SessionId) -> ConversationId {
    ConversationId(session.max(0) as u64)
}

type Replies = Arc<Mutex<HashMap<(ConversationId, MessageKey), MessageId>>>;

/// Sends persistence effects to the store thread.
#[derive(Clone)]
pub struct Persister {
    store: Arc<StoreThread>,
    replies: Replies,
    problems: mpsc::UnboundedSender<String>,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister").finish_non_exhaustive()
    }
}

fn store_status(status: &EngineStatus) -> (MessageStatus, Option<String>) {
    match status {
        EngineStatus::Running => (MessageStatus::Running, None),
        EngineStatus::Done => (MessageStatus::Done, None),
        EngineStatus::Failed(why) if why == INTERRUPTED => (MessageStatus::Incomplete, None),
        EngineStatus::Failed(why) => (MessageStatus::Failed, Some(why.clone())),
        EngineStatus::Cancelled => (MessageStatus::Cancelled, None),
    }
}

/// How a reply cut short by a crash or a kill shows in the engine.
pub const INTERRUPTED: &str = "incomplete: interrupted";

impl Persister {
    pub fn new(store: Arc<StoreThread>, problems: mpsc::UnboundedSender<String>) -> Self {
        Self {
            store,
            replies: Arc::new(Mutex::new(HashMap::new())),
            problems,
        }
    }

    pub fn store(&self) -> &Arc<StoreThread> {
        &self.store
    }

    /// Queue a job; report its failure (never block on it).
    fn queue(
        &self,
        what: &'static str,
        job: impl FnOnce(&mut Db) -> Result<(), StoreError> + Send + 'static,
    ) {
        let result = self.store.call_try(job);
        let problems = self.problems.clone();
        // The job is queued now; only its outcome is awaited, off the loop.
        tokio::spawn(async move {
            if let Err(error) = result.await {
                tracing::error!(target: "store", %error, what, "saving failed");
                let _ = problems.send(format!("could not save {what}: {error}"));
            }
        });
    }

    /// Carry out a persistence effect; any other effect is handed back.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn execute(&self, effect: Effect) -> Option<Effect> {
        match effect {
            Effect::SaveReply {
                conversation,
                message,
                text,
                status,
                passages,
                backend,
                request,
                no_lore,
                question,
            } => {
                let replies = self.replies.clone();
                self.queue("a reply", move |db| {
                    let key = (conversation, message);
                    let known = replies.lock().ok().and_then(|r| r.get(&key).copied());
                    let (status, failure) = store_status(&status);
                    let detail = failure.or(no_lore);
                    match known {
                        Some(id) => db.update_message(
                            id,
                            MessageUpdate {
                                text: Some(text),
                                status: Some(status),
                                detail,
                                passages: Some(passages),
                                backend,
                                request_id: request.map(|r| r.to_string()),
                                timings: None,
                            },
                        ),
                        None => {
                            // The reply's first save: its question has just
                            // left the queue and been sent.
                            if let Some(tag) = question {
                                db.update_message(
                                    tag as MessageId,
                                    MessageUpdate {
                                        status: Some(MessageStatus::Sent),
                                        ..Default::default()
                                    },
                                )?;
                            }
                            let row = db.append_message(
                                session_of(conversation),
                                NewMessage {
                                    role: Role::Assistant,
                                    text,
                                    status,
                                    detail,
                                    backend,
                                    passages,
                                    request_id: request.map(|r| r.to_string()),
                                    timings: None,
                                },
                            )?;
                            if let Ok(mut replies) = replies.lock() {
                                replies.insert(key, row.id);
                            }
                            Ok(())
                        }
                    }
                });
                None
            }
            Effect::DropQueued { tags, .. } => {
                self.queue("a dropped message", move |db| {
                    for tag in tags {
                        db.update_message(
                            tag as MessageId,
                            MessageUpdate {
                                status: Some(MessageStatus::Cancelled),
                                ..Default::default()
                            },
                        )?;
                    }
                    Ok(())
                });
                None
            }
            Effect::SaveRequests(summaries) => {
                let mut by_session: HashMap<SessionId, Vec<RequestRow>> = HashMap::new();
                for summary in summaries {
                    // Knowledge-base work belongs to no conversation.
                    if let Some(conversation) = summary.conversation {
                        by_session
                            .entry(session_of(conversation))
                            .or_default()
                            .push(request_row(summary));
                    }
                }
                if !by_session.is_empty() {
                    self.queue("the request history", move |db| {
                        for (session, rows) in by_session {
                            match db.save_requests(session, rows) {
                                // A session deleted meanwhile: nothing to keep.
                                Err(StoreError::NotFound { .. }) => {}
                                other => {
                                    other?;
                                }
                            }
                        }
                        Ok(())
                    });
                }
                None
            }
            Effect::SaveScenario {
                conversation,
                index,
                prompt,
                seed,
                title,
                markdown,
                passages,
                status,
                ..
            } => {
                let row = ScenarioRow {
                    seq: index as i64 + 1,
                    prompt: Some(prompt),
                    seed: Some(seed),
                    title: Some(title),
                    markdown: Some(markdown),
                    sources: serde_json::to_value(&passages).ok(),
                    status: Some(scenario_status(&status).to_owned()),
                    created_ms: crate::store::now_ms(),
                };
                self.queue("a scenario", move |db| {
                    db.save_scenario(session_of(conversation), row)
                });
                None
            }
            other => Some(other),
        }
    }

    /// Forget the reply rows of a conversation (it was closed).
    pub fn forget(&self, conversation: ConversationId) {
        if let Ok(mut replies) = self.replies.lock() {
            replies.retain(|(c, _), _| *c != conversation);
        }
    }
}

fn scenario_status(status: &ScenarioStatus) -> &'static str {
    match status {
        ScenarioStatus::Done => "done",
        ScenarioStatus::Failed(_) => "failed",
        ScenarioStatus::Cancelled => "cancelled",
        ScenarioStatus::Running => "running",
    }
}

fn request_row(s: RequestSummary) -> RequestRow {
    RequestRow {
        id: s.id.to_string(),
        parent: s.parent.map(|p| p.to_string()),
        kind: Some(s.kind.label().to_owned()),
        backend: Some(s.backend.to_string()),
        outcome: Some(s.outcome.label().to_owned()),
        detail: s.outcome.detail(),
        attempts: s.attempts,
        created_ms: s.created_ms as i64,
        ended_ms: Some(s.ended_ms as i64),
        events: serde_json::to_value(&s).ok(),
    }
}

/// What the engine restores from a stored session: its messages (a reply
/// cut short shows as interrupted), the messages still unsent, and its
/// scenarios.
pub struct Restored {
    pub messages: Vec<ChatMessage>,
    pub unsent: Vec<UnsentMessage>,
    pub scenarios: Vec<ScenarioEntry>,
}

/// Open a stored session's conversation in `engine`: its messages, its
/// scenarios and, with `unsent`, the messages left unsent (a headless
/// command leaves those to whoever queued them). Returns its id.
pub fn open_in(
    engine: &mut crate::engine::Engine,
    data: SessionData,
    unsent: bool,
) -> ConversationId {
    let conversation = conversation_of(data.session.id);
    open_as(engine, data, conversation, unsent);
    conversation
}

/// [`open_in`] under another conversation id (the TUI's placeholder shows
/// a copy of a session before its database opens).
pub fn open_as(
    engine: &mut crate::engine::Engine,
    data: SessionData,
    conversation: ConversationId,
    unsent: bool,
) {
    let name = data.session.name.clone();
    let mut restored = restore(data);
    for scenario in &mut restored.scenarios {
        scenario.conversation = conversation;
    }
    let unsent = if unsent { restored.unsent } else { Vec::new() };
    engine.open_conversation(conversation, name, restored.messages, unsent);
    engine.restore_scenarios(conversation, restored.scenarios);
}

/// Stored messages as the engine restores them: the conversation's
/// messages, and the user messages left unsent.
pub fn restore_messages(rows: Vec<MessageRow>) -> (Vec<ChatMessage>, Vec<UnsentMessage>) {
    let mut messages = Vec::new();
    let mut unsent = Vec::new();
    for m in rows {
        match (m.role, m.status) {
            (Role::User, MessageStatus::Unsent) => unsent.push(UnsentMessage {
                text: m.text,
                tag: Some(m.id as u64),
            }),
            // Dropped from the queue before it was sent: not part of the
            // conversation.
            (Role::User, MessageStatus::Cancelled) => {}
            _ => messages.push(chat_message(m)),
        }
    }
    (messages, unsent)
}

/// The tag (row id) of the first of `rows` that is part of the
/// conversation as [`restore_messages`] restores it.
pub fn first_tag(rows: &[MessageRow]) -> Option<u64> {
    rows.iter()
        .find(|m| {
            !matches!(
                (m.role, m.status),
                (Role::User, MessageStatus::Unsent | MessageStatus::Cancelled)
            )
        })
        .map(|m| m.id as u64)
}

/// The rest of a session opened from its end, as the engine takes it: the
/// older messages (put in front with `Engine::prepend_messages`), the
/// unsent ones among them, and the requests (`Engine::restore_requests`).
#[derive(Debug)]
pub struct RestoredRest {
    pub conversation: ConversationId,
    pub messages: Vec<ChatMessage>,
    pub unsent: Vec<UnsentMessage>,
    pub requests: Vec<crate::engine::RestoredRequest>,
}

/// Turn the rest of a paged load into what the engine restores (off the
/// loop: on the store thread).
pub fn restore_rest(rest: crate::store::SessionRest) -> RestoredRest {
    let (messages, unsent) = restore_messages(rest.messages);
    RestoredRest {
        conversation: conversation_of(rest.session),
        messages,
        unsent,
        requests: restored_request_rows(rest.session, &rest.requests),
    }
}

/// A stored session as the engine restores it.
pub fn restore(data: SessionData) -> Restored {
    let conversation = conversation_of(data.session.id);
    let (messages, unsent) = restore_messages(data.messages);
    let scenarios = data
        .scenarios
        .into_iter()
        .map(|s| ScenarioEntry {
            conversation,
            index: (s.seq - 1).max(0) as usize,
            prompt: s.prompt.unwrap_or_default(),
            seed: s.seed.unwrap_or(0),
            request: crate::engine::request::RequestId::nil(),
            backend: String::new(),
            markdown: s.markdown.unwrap_or_default(),
            status: match s.status.as_deref() {
                Some("done") => ScenarioStatus::Done,
                Some("cancelled") => ScenarioStatus::Cancelled,
                Some("failed") => ScenarioStatus::Failed("failed".into()),
                _ => ScenarioStatus::Failed(INTERRUPTED.into()),
            },
            passages: s
                .sources
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            no_lore: None,
        })
        .collect();
    Restored {
        messages,
        unsent,
        scenarios,
    }
}

fn chat_message(m: MessageRow) -> ChatMessage {
    let status = match m.status {
        MessageStatus::Done | MessageStatus::Sent => EngineStatus::Done,
        MessageStatus::Running | MessageStatus::Incomplete => {
            EngineStatus::Failed(INTERRUPTED.into())
        }
        MessageStatus::Cancelled => EngineStatus::Cancelled,
        MessageStatus::Failed => {
            EngineStatus::Failed(m.detail.clone().unwrap_or_else(|| "failed".into()))
        }
        MessageStatus::Unsent => EngineStatus::Done,
    };
    let no_lore = match m.status {
        MessageStatus::Done => m.detail.clone(),
        _ => None,
    };
    ChatMessage {
        role: m.role,
        text: m.text,
        status,
        request: None,
        backend: m.backend,
        passages: m.passages,
        no_lore,
        tag: Some(m.id as u64),
    }
}

fn request_id(text: &str) -> Option<crate::engine::request::RequestId> {
    ulid::Ulid::from_string(text)
        .ok()
        .map(crate::engine::request::RequestId)
}

/// A reopened session's stored request summaries, as the inspector shows
/// them again. Rows that cannot be read back (an unknown kind or outcome)
/// are left out.
pub fn restored_requests(data: &SessionData) -> Vec<crate::engine::RestoredRequest> {
    restored_request_rows(data.session.id, &data.requests)
}

/// [`restored_requests`] of a session's request rows.
pub fn restored_request_rows(
    session: SessionId,
    rows: &[RequestRow],
) -> Vec<crate::engine::RestoredRequest> {
    use crate::engine::request::{Kind, Outcome};
    let conversation = conversation_of(session);
    rows.iter()
        .filter_map(|row| {
            let id = request_id(&row.id)?;
            let kind = Kind::from_label(row.kind.as_deref()?)?;
            let detail = row.detail.clone().unwrap_or_default();
            let outcome = match row.outcome.as_deref()? {
                "completed" => Outcome::Completed,
                "failed" => Outcome::Failed(detail),
                "timed out" => Outcome::TimedOut,
                "cancelled" => Outcome::Cancelled,
                "short-circuited" => Outcome::ShortCircuited,
                "joined" => Outcome::Joined(request_id(&detail)?),
                _ => return None,
            };
            let events = row.events.as_ref();
            let label = events
                .and_then(|e| e["label"].as_str())
                .unwrap_or_default()
                .to_owned();
            let dispatched_ms = events.and_then(|e| e["dispatched_ms"].as_u64());
            let timeline = events
                .and_then(|e| e["timeline"].as_array())
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|t| {
                            let offset = t["offset_ms"].as_u64()?;
                            // Typed since format 2; text before.
                            let event =
                                serde_json::from_value(t["event"].clone())
                                    .ok()
                                    .or_else(|| {
                                        Some(crate::engine::event::EventKind::Note {
                                            text: t["what"].as_str()?.to_owned(),
                                        })
                                    })?;
                            Some((offset, event))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(crate::engine::RestoredRequest {
                id,
                parent: row.parent.as_deref().and_then(request_id),
                conversation: Some(conversation),
                kind,
                backend: row.backend.clone().unwrap_or_default(),
                label,
                outcome,
                attempts: row.attempts,
                created_ms: row.created_ms.max(0) as u64,
                dispatched_ms,
                ended_ms: row.ended_ms.unwrap_or(row.created_ms).max(0) as u64,
                timeline,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::EventKind;
    use crate::engine::request::{Kind, Outcome, RequestId, TimelineEntry};
    use crate::engine::{Engine, EngineConfig};
    use crate::store::Db;
    use std::time::{Duration, Instant, SystemTime};

    fn summary(
        id: RequestId,
        parent: Option<RequestId>,
        kind: Kind,
        outcome: Outcome,
    ) -> RequestSummary {
        RequestSummary {
            id,
            parent,
            conversation: Some(ConversationId(1)),
            kind,
            backend: "local".into(),
            label: "who guards the waystone?".into(),
            outcome,
            attempts: 2,
            created_ms: 1_800_000_000_000,
            dispatched_ms: Some(1_800_000_000_010),
            ended_ms: 1_800_000_000_250,
            timeline: vec![
                TimelineEntry {
                    offset_ms: 0,
                    event: EventKind::Created {
                        label: "who guards the waystone?".into(),
                    },
                },
                TimelineEntry {
                    offset_ms: 250,
                    event: EventKind::Note {
                        text: "retrying after 503".into(),
                    },
                },
            ],
        }
    }

    #[test]
    fn a_reopened_sessions_inspector_shows_its_stored_requests() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut db = Db::open(tmp.path().join("s.db")).expect("open").db;
        let session = db.create_session("s").expect("create");
        assert_eq!(session.id, 1);
        let parent = RequestId(ulid::Ulid::from_parts(1_800_000_000_000, 1));
        let child = RequestId(ulid::Ulid::from_parts(1_800_000_000_001, 2));
        let rows = vec![
            request_row(summary(parent, None, Kind::Turn, Outcome::Completed)),
            request_row(summary(
                child,
                Some(parent),
                Kind::Retrieve,
                Outcome::Failed("503".into()),
            )),
        ];
        db.save_requests(session.id, rows).expect("save");
        let data = db.load_session(session.id).expect("load");

        let restored = restored_requests(&data);
        assert_eq!(restored.len(), 2);
        let now = Instant::now();
        let mut engine = Engine::new(EngineConfig::default(), now, SystemTime::now(), 1);
        engine.restore_requests(restored);
        let registry = engine.registry();
        let p = registry.get(parent).expect("parent restored");
        assert_eq!(p.kind, Kind::Turn);
        assert_eq!(p.children, vec![child]);
        let c = registry.get(child).expect("child restored");
        assert_eq!(c.outcome(), Some(&Outcome::Failed("503".into())));
        assert_eq!(c.attempt, 2);
        assert_eq!(&*c.label, "who guards the waystone?");
        assert_eq!(c.elapsed(now), Duration::from_millis(250));
        let timeline: Vec<String> = c.timeline.iter().map(|t| t.text()).collect();
        assert_eq!(timeline, ["created", "retrying after 503"]);
        assert_eq!(registry.live_count(), 0);
    }
}
