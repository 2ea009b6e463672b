//! The pure core: `Engine::handle(input, now) -> Vec<Effect>`. It owns the
//! request registry, deadlines, the scenario and chat pipelines, the open
//! conversations (each with its own queue) and per-backend metrics. It
//! performs no IO, never awaits and never reads a clock: `now` comes in with
//! every input, so every rule is testable exactly with a fake clock. What
//! must be persisted leaves as effects (`Save*`), which the caller hands to
//! the store.
//!
//! Invariants: every request reaches exactly one final state (the registry
//! enforces it); a result is applied only while its request is live, and is
//! otherwise a counted late drop; a parent ends only after all its children
//! have; expiry of a running request always comes with an `Abort` effect,
//! or, for a backend whose late policy is observe (and under its cap), an
//! `Observe` effect: the call is then watched, never applied, until it
//! answers (a late arrival) or its grace ends (an `Abort`, abandoned).
//! Conversations are independent: a command names its conversation, and one
//! conversation's failures, queue and history never touch another's. Nothing
//! is emitted for a conversation after it is closed. Persistence stays
//! cheap: a streaming reply is saved at most every [`REPLY_SAVE_EVERY`],
//! finished requests' summaries at most every [`SUMMARY_FLUSH_EVERY`] (and
//! when the engine goes idle, or in batches of [`SUMMARY_BATCH_MAX`] under
//! load), never once per token or per request.
//!
//! Memory stays bounded whatever the load: finished requests are kept in
//! the registry's history ring (`history_cap`), scenarios in a
//! [`scenarios::ScenarioLog`] (every running one and the newest finished
//! ones up to [`scenarios::SCENARIOS_KEPT`]; older ones are in the session
//! database), summaries waiting to be saved at most [`SUMMARY_BATCH_MAX`]
//! (plus what one input ends). Backend names and request labels are shared
//! (`Arc<str>`), not copied into every request and event.

pub mod breaker;
pub mod command;
pub mod event;
mod flow;
pub mod limits;
pub mod metrics;
pub mod registry;
pub mod request;
pub mod retry;
pub mod scenarios;
pub mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::domain::{
    BackendError, ChaosMode, ChatTurn, GenerationTask, Passage, RetrieveQuery, Role, TaskMode,
    seed_for_prompt,
};
use breaker::Force;
use limits::{Backend, BackendPolicy};
use registry::Registry;
use request::{DeadlinePolicy, Kind, Phase, RequestId, RequestSummary};
use workspace::{
    ChatMessage, Conversation, ConversationId, MessageKey, MessageStatus, QueuedMessage,
    ReplyStatus, ScenarioEntry, ScenarioStatus, UnsentMessage,
};

/// A streaming reply is saved at most this often (engine time).
pub const REPLY_SAVE_EVERY: Duration = Duration::from_millis(250);
/// Finished requests' summaries are written in batches at most this often
/// while the engine is busy (and at once when it goes idle, or when
/// [`SUMMARY_BATCH_MAX`] are waiting).
pub const SUMMARY_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A batch of summaries goes out as soon as this many are waiting: at a
/// high rate a second's worth would be a hundred thousand summaries (tens
/// of megabytes written and read back from main memory, and held until
/// saved), where a batch of this size stays in cache.
pub const SUMMARY_BATCH_MAX: usize = 1_024;

/// Settings the engine's rules depend on (written whole into a trace's
/// header, so a trace can re-drive an engine with the same rules).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineConfig {
    pub retriever: String,
    pub generator: String,
    pub retrieval_timeout: Duration,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
    pub top_k: usize,
    /// Finished requests kept for the inspector.
    pub history_cap: usize,
    /// Earlier messages sent along with a chat question.
    pub chat_history_turns: usize,
    pub rag: bool,
    /// The embeddings backend that embeds queries before retrieval (semantic
    /// and hybrid retrieval), if any.
    pub embedder: Option<String>,
    pub embed_timeout: Duration,
    /// Seed for scenarios asked without one (else it derives from the prompt).
    pub scenario_seed: Option<u64>,
    /// Defaults for retrievers and for generators.
    pub retrieval_policy: BackendPolicy,
    pub chat_policy: BackendPolicy,
    /// Per-backend settings that override the defaults, by backend name.
    pub policies: BTreeMap<String, BackendPolicy>,
}

/// A finished request from an earlier run, as a reopened session's
/// inspector shows it (see [`Engine::restore_requests`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredRequest {
    pub id: RequestId,
    pub parent: Option<RequestId>,
    pub conversation: Option<ConversationId>,
    pub kind: Kind,
    pub backend: String,
    pub label: String,
    pub outcome: request::Outcome,
    pub attempts: u32,
    /// Wall-clock milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub dispatched_ms: Option<u64>,
    pub ended_ms: u64,
    /// (milliseconds after creation, what happened).
    pub timeline: Vec<(u64, event::EventKind)>,
}

/// The backend name of knowledge-base ingests in the lifecycle pane.
pub const KB_BACKEND: &str = "kb";

/// The backend name of pipeline parents (scenarios, chat turns): they make
/// no call of their own.
pub const PIPELINE_BACKEND: &str = "pipeline";

impl EngineConfig {
    /// The policy of backend `name`.
    pub fn policy_for(&self, name: &str) -> BackendPolicy {
        match self.policies.get(name) {
            Some(policy) => *policy,
            None if name == KB_BACKEND => BackendPolicy::ingest(),
            None if name == self.retriever => self.retrieval_policy,
            None if self.embedder.as_deref() == Some(name) => BackendPolicy::embeddings(),
            None => self.chat_policy,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            retriever: "local".into(),
            generator: "offline".into(),
            retrieval_timeout: Duration::from_secs(10),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            top_k: 5,
            history_cap: 10_000,
            chat_history_turns: 10,
            rag: true,
            scenario_seed: None,
            embedder: None,
            embed_timeout: Duration::from_secs(30),
            retrieval_policy: BackendPolicy::retrieval(),
            chat_policy: BackendPolicy::chat(),
            policies: BTreeMap::new(),
        }
    }
}

/// A call the runtime makes on a backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Retrieve(RetrieveQuery),
    /// Embed these texts (one vector each, in order).
    Embed(Vec<String>),
    Generate(GenerationTask),
    /// Add these paths (as typed) to the knowledge base in use.
    Ingest(Vec<String>),
}

/// What the runtime must do. Effects are data: the engine decides, the
/// runtime carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start `call` on `backend` as a task tagged with `id`.
    Dispatch {
        id: RequestId,
        backend: String,
        call: Call,
    },
    /// Stop the task running `id` (its connection is dropped with it).
    Abort { id: RequestId },
    /// `id` expired but its call is observed: keep its task running,
    /// detached. Its answer comes back as usual and is recorded as a late
    /// arrival; the engine sends [`Effect::Abort`] for it when the grace
    /// ends at `until` (or at once for a stream's first late token).
    Observe { id: RequestId, until: Instant },
    /// Write a file without overwriting one; the result comes back as
    /// [`Input::Exported`].
    Export { path_hint: String, contents: String },
    /// A batch of knowledge-base chunk vectors arrived (or failed for
    /// good): hand it to whoever keeps them.
    ChunkVectors {
        batch: u64,
        result: Result<Vec<Vec<f32>>, String>,
    },
    /// Inject faults into calls to `backend` (`None`: stop).
    Chaos {
        backend: String,
        mode: Option<ChaosMode>,
    },
    /// Persist an assistant reply (insert or replace by `conversation` and
    /// `message`). Emitted when the reply starts (status `Running`, empty
    /// text), while it streams at most every [`REPLY_SAVE_EVERY`], and once
    /// when it ends, whatever the end. The question it answers is message
    /// `message.0 - 1` of the conversation; this reply's first save is when
    /// that question left the queue and was sent.
    SaveReply {
        conversation: ConversationId,
        message: MessageKey,
        text: String,
        status: ReplyStatus,
        /// The passages the reply may cite, as a snapshot.
        passages: Vec<Passage>,
        backend: Option<String>,
        /// The turn request that produces it.
        request: Option<RequestId>,
        no_lore: Option<String>,
        /// The tag of the question this reply answers (see
        /// [`Command::Ask`]): on the first save, that message was sent.
        question: Option<u64>,
    },
    /// Queued messages the user dropped before they were sent (their tags).
    DropQueued {
        conversation: ConversationId,
        tags: Vec<u64>,
    },
    /// Persist these finished requests' lifecycles, in the order they
    /// ended: one batch at most every [`SUMMARY_FLUSH_EVERY`] while the
    /// engine is busy, and whatever is left when it goes idle.
    SaveRequests(Vec<RequestSummary>),
    /// Persist a finished scenario (done, failed or cancelled).
    SaveScenario {
        conversation: ConversationId,
        /// Its position among the conversation's scenarios.
        index: usize,
        request: RequestId,
        prompt: String,
        seed: u64,
        title: String,
        markdown: String,
        /// The passages it may cite (its sources), as a snapshot.
        passages: Vec<Passage>,
        backend: String,
        no_lore: Option<String>,
        status: ScenarioStatus,
    },
}

/// What the user asks the engine for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", content = "args", rename_all = "snake_case")]
pub enum Command {
    /// Ask in a conversation. The caller has stored the question already:
    /// this is "it is stored, go" (it starts now, or queues behind the
    /// conversation's running turn).
    Ask {
        conversation: ConversationId,
        text: String,
        /// The caller's tag for this message (the TUI: its row id in the
        /// session database, committed before the message is sent); it
        /// comes back in the reply's [`Effect::SaveReply`] or in
        /// [`Effect::DropQueued`].
        tag: Option<u64>,
    },
    /// A scenario, belonging to the conversation that was current.
    Scenario {
        conversation: ConversationId,
        prompt: String,
        seed: Option<u64>,
    },
    Regenerate {
        scenario: usize,
    },
    Export {
        scenario: usize,
    },
    /// Cancel a request (and its children) by id or short id.
    Cancel {
        id: String,
    },
    /// Cancel the running turn of a conversation.
    CancelRunning {
        conversation: ConversationId,
    },
    ClearQueue {
        conversation: ConversationId,
    },
    /// Drop one queued message by its number.
    CancelQueued {
        conversation: ConversationId,
        number: u64,
    },
    /// Queue a conversation's unsent messages again, in order.
    ResendUnsent {
        conversation: ConversationId,
    },
    SetRag(bool),
    /// Add files, folders or URLs to the knowledge base in use.
    KbAdd {
        paths: Vec<String>,
    },
    /// Embed a batch of knowledge-base chunks on the embeddings backend, as
    /// a request of its own (the vectors come back as
    /// [`Effect::ChunkVectors`]).
    EmbedChunks {
        batch: u64,
        texts: Vec<String>,
    },
    /// Fault injection on a backend; `backend: None` with `mode: None` stops
    /// it everywhere.
    Chaos {
        backend: Option<String>,
        mode: Option<ChaosMode>,
    },
    ForceBreaker {
        backend: String,
        force: Force,
    },
}

/// Everything that can happen to the engine (recorded in traces, tagged
/// `"input"`, fields under `"data"`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "input", content = "data", rename_all = "snake_case")]
pub enum Input {
    Command(Command),
    Retrieved {
        id: RequestId,
        backend: String,
        result: Result<Vec<Passage>, BackendError>,
    },
    Token {
        id: RequestId,
        backend: String,
        text: String,
    },
    Embedded {
        id: RequestId,
        backend: String,
        result: Result<Vec<Vec<f32>>, BackendError>,
    },
    /// The token counts a generation's server reported.
    Usage {
        id: RequestId,
        backend: String,
        usage: crate::backends::Usage,
    },
    /// A generation stream ended, cleanly or with an error.
    Finished {
        id: RequestId,
        backend: String,
        result: Result<(), BackendError>,
    },
    Exported {
        result: Result<String, String>,
    },
    /// An ingest's progress (files done / total, chunks written).
    IngestProgress {
        id: RequestId,
        files_done: usize,
        files_total: usize,
        chunks: usize,
    },
    /// An ingest ended: its summary, or why it failed.
    Ingested {
        id: RequestId,
        backend: String,
        result: Result<String, String>,
    },
    /// Time passed: expire what is due.
    Tick,
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
    /// Counts up with every notice set: the view times each one from when
    /// it first saw its number (see `ui::NoticeClock`).
    pub seq: u64,
    /// While what it says is still true (see [`Engine::notice_holds`]).
    pub holds: Holds,
}

/// How long a notice stays true, beyond its few seconds on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Until it times out.
    Always,
    /// "queued (depth N)": while the conversation's queue is N deep (it
    /// goes when the queue drains or moves on).
    QueueDepth {
        conversation: ConversationId,
        depth: usize,
    },
}

/// Mutable views of a pipeline's target (see `Engine::target_mut`).
struct TargetMut<'a> {
    text: &'a mut String,
    passages: &'a mut Vec<Passage>,
    no_lore: &'a mut Option<String>,
}

/// What a parent request's pipeline is producing.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A scenario's stable index in [`Engine::scenarios`] (held while it
    /// runs).
    Scenario(usize),
    Turn {
        conversation: ConversationId,
        message: usize,
    },
}

#[derive(Debug)]
struct Job {
    target: Target,
    mode: TaskMode,
    passages: Vec<Passage>,
    no_lore: Option<String>,
    /// The query's embedding, once the embed step answered.
    vector: Option<Vec<f32>>,
    /// When the reply was last saved (turns only).
    saved_at: Option<Instant>,
}

/// Sizes of the engine's internal collections (see [`Engine::footprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub live: usize,
    pub history: usize,
    pub events: usize,
    pub jobs: usize,
    pub calls: usize,
    pub dedup: usize,
    pub followers: usize,
    pub waiting: usize,
    /// Finished requests' summaries not yet handed out.
    pub summaries: usize,
}

/// A call observed past its request's deadline.
#[derive(Debug, Clone)]
struct Observed {
    backend: String,
    deadline: Instant,
    until: Instant,
}

/// What makes two retrievals identical: the backend, the query with its
/// words lowercased and joined by single spaces, and `top_k`. Kept as a
/// hash of those (computed without allocating for a query already in that
/// form), so neither submitting nor finishing a retrieval builds a key; a
/// match is confirmed against the leader's own query
/// ([`same_retrieval`]), so a collision only misses a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DedupKey(u64);

impl DedupKey {
    fn new(backend: &str, query: &RetrieveQuery) -> Self {
        use std::hash::{Hash, Hasher};
        // Fixed keys: the same query hashes the same in every run.
        let mut h = std::hash::DefaultHasher::new();
        backend.hash(&mut h);
        normalized_query(&query.query).hash(&mut h);
        query.top_k.hash(&mut h);
        DedupKey(h.finish())
    }
}

/// Whether two retrievals on one backend ask the same thing.
fn same_retrieval(a: &RetrieveQuery, b: &RetrieveQuery) -> bool {
    a.top_k == b.top_k && normalized_query(&a.query) == normalized_query(&b.query)
}

/// A query's words, lowercased, joined by single spaces; borrowed when the
/// query is already so (ASCII, no capitals, single spaces, no space at
/// either end).
fn normalized_query(query: &str) -> std::borrow::Cow<'_, str> {
    let bytes = query.as_bytes();
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    let clean = bytes.iter().enumerate().all(|(i, &b)| {
        b.is_ascii()
            && !b.is_ascii_uppercase()
            && (!space(b) || (b == b' ' && i > 0 && i + 1 < bytes.len() && !space(bytes[i - 1])))
    });
    if clean {
        std::borrow::Cow::Borrowed(query)
    } else {
        std::borrow::Cow::Owned(
            query
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase(),
        )
    }
}

#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    registry: Registry,
    rng: SmallRng,
    seed: u64,
    origin: Instant,
    wall_origin_ms: u64,
    /// Pipelines by parent id; removed when the parent ends.
    jobs: request::IdMap<Job>,
    /// Knowledge-base chunk batches being embedded: request -> (batch, texts).
    chunk_batches: request::IdMap<(u64, usize)>,
    /// The call of every live backend request (re-sent on retry).
    calls: request::IdMap<Call>,
    /// In-flight retrievals by what they ask, for de-duplication.
    dedup: HashMap<DedupKey, RequestId, request::IdBuildHasher>,
    /// Requests joined onto a leader, by leader.
    followers: request::IdMap<Vec<RequestId>>,
    backends: BTreeMap<String, Backend>,
    /// [`PIPELINE_BACKEND`], shared by every pipeline parent.
    pipeline_name: request::Shared,
    chaos: BTreeMap<String, ChaosMode>,
    conversations: BTreeMap<ConversationId, Conversation>,
    /// Running scenarios and the newest finished ones (bounded: see
    /// [`scenarios::ScenarioLog`]).
    scenarios: scenarios::ScenarioLog,
    notice: Option<Notice>,
    /// The number the last notice set was given.
    notice_seq: u64,
    total_late_drops: u64,
    /// Expired requests whose calls are observed past their deadline, until
    /// they answer or their grace ends. Never live, never de-dup leaders.
    observed: request::IdMap<Observed>,
    /// Live requests waiting out a retry's backoff, by when it ends: exactly
    /// the live requests in `Phase::Retrying { until }`.
    retrying: std::collections::BTreeSet<(Instant, u64, RequestId)>,
    /// Finished requests' summaries waiting for the next batch.
    summaries: Vec<RequestSummary>,
    /// When the oldest of `summaries` was added.
    summaries_since: Option<Instant>,
    /// Passages put before every generation's retrieved ones (see
    /// [`Engine::set_context`]).
    context: Vec<Passage>,
}

impl Engine {
    /// `origin` and `wall_origin` are the same moment on the monotonic and
    /// the wall clock (ids embed wall time); `seed` makes ids and fresh
    /// scenario seeds reproducible.
    pub fn new(cfg: EngineConfig, origin: Instant, wall_origin: SystemTime, seed: u64) -> Self {
        let wall_origin_ms = wall_origin
            .duration_since(UNIX_EPOCH)
            .map(request::millis)
            .unwrap_or(0);
        let mut backends = BTreeMap::new();
        for name in [
            Some(&cfg.retriever),
            Some(&cfg.generator),
            cfg.embedder.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            backends.insert(name.clone(), Backend::new(name, cfg.policy_for(name)));
        }
        Self {
            registry: Registry::new(origin, cfg.history_cap),
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            seed,
            origin,
            wall_origin_ms,
            jobs: request::IdMap::default(),
            chunk_batches: request::IdMap::default(),
            calls: request::IdMap::default(),
            dedup: HashMap::default(),
            followers: request::IdMap::default(),
            backends,
            pipeline_name: request::Shared::from(PIPELINE_BACKEND),
            chaos: BTreeMap::new(),
            conversations: BTreeMap::new(),
            scenarios: scenarios::ScenarioLog::default(),
            notice: None,
            notice_seq: 0,
            total_late_drops: 0,
            observed: request::IdMap::default(),
            retrying: std::collections::BTreeSet::new(),
            summaries: Vec::new(),
            summaries_since: None,
            context: Vec::new(),
        }
    }

    /// Passages given by the caller rather than retrieved (headless: the
    /// text piped on standard input). They go first in every generation
    /// that starts from now on, before the retrieved passages, whether or
    /// not retrieval ran or found anything, and are cited like any passage
    /// (the first is `[1]`).
    pub fn set_context(&mut self, passages: Vec<Passage>) {
        self.context = passages;
    }

    // ----- conversations ---------------------------------------------------

    /// Open a conversation: empty, or restored from storage with its
    /// `messages` (oldest first) and the `unsent` messages that were still
    /// queued when loreweave stopped (shown, never started until
    /// [`Command::ResendUnsent`]). A restored message still marked running
    /// has no request behind it any more: it becomes failed ("interrupted").
    /// Returns false, changing nothing, when `id` is already open.
    pub fn open_conversation(
        &mut self,
        id: ConversationId,
        name: impl Into<String>,
        mut messages: Vec<ChatMessage>,
        unsent: Vec<UnsentMessage>,
    ) -> bool {
        if self.conversations.contains_key(&id) {
            return false;
        }
        for message in &mut messages {
            if message.status == MessageStatus::Running {
                message.status = MessageStatus::Failed("interrupted".into());
            }
        }
        let mut conversation = Conversation::new(name);
        conversation.messages = messages;
        conversation.unsent = unsent;
        self.conversations.insert(id, conversation);
        true
    }

    /// Put a conversation's stored scenarios back (oldest first), right
    /// after opening it; new scenarios are numbered after them. One still
    /// marked generating becomes failed ("interrupted"). Their `conversation`
    /// is set to `id`.
    pub fn restore_requests(&mut self, requests: Vec<RestoredRequest>) {
        for r in requests {
            // Wall-clock times become instants on this run's clock; the
            // durations between them are kept exactly.
            let before = Duration::from_millis(self.wall_origin_ms.saturating_sub(r.created_ms));
            let created = self.origin.checked_sub(before).unwrap_or(self.origin);
            let at = |ms: u64| created + Duration::from_millis(ms.saturating_sub(r.created_ms));
            let request = request::Request {
                id: r.id,
                seq: 0,
                kind: r.kind,
                backend: r.backend.into(),
                parent: r.parent,
                children: Vec::new(),
                conversation: r.conversation,
                label: r.label.into(),
                created,
                dispatched: r.dispatched_ms.map(at),
                ended: Some(at(r.ended_ms)),
                policy: DeadlinePolicy::Unbounded,
                deadline: None,
                phase: Phase::Done(r.outcome),
                attempt: r.attempts,
                late_drops: 0,
                timeline: r
                    .timeline
                    .into_iter()
                    .map(|(offset_ms, event)| request::TimelineEntry { offset_ms, event })
                    .collect(),
                progress: None,
                restored: true,
            };
            self.registry.restore(request);
        }
        // Children are listed under their parents, as when they ran.
        let ids: Vec<(RequestId, RequestId)> = self
            .registry
            .all()
            .iter()
            .filter_map(|r| r.parent.map(|p| (p, r.id)))
            .collect();
        for (parent, child) in ids {
            self.registry.add_child(parent, child);
        }
    }

    pub fn restore_scenarios(&mut self, id: ConversationId, entries: Vec<ScenarioEntry>) {
        let Some(conv) = self.conversations.get_mut(&id) else {
            return;
        };
        for mut entry in entries {
            entry.conversation = id;
            if entry.status == ScenarioStatus::Running {
                entry.status = ScenarioStatus::Failed("interrupted".into());
            }
            conv.next_scenario = conv.next_scenario.max(entry.index + 1);
            self.scenarios.push(entry);
        }
    }

    /// Close a conversation: its queue and unsent messages are dropped, its
    /// running turn and scenarios are cancelled (their tasks aborted), and
    /// from then on nothing is emitted for it: no reply, scenario or
    /// request summary not yet saved is saved (closing is for a
    /// conversation being deleted). Its scenarios stay in
    /// [`Engine::scenarios`]. The effects returned are the aborts, and
    /// whatever the freed slots start for other conversations.
    pub fn close_conversation(&mut self, id: ConversationId, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        // Gone first: whatever ends for it below (cancelled here, or expired
        // as time advances) finds no conversation to save into.
        if self.conversations.remove(&id).is_none() {
            self.set_notice(format!("no conversation {id} is open"), true);
            return fx;
        }
        self.summaries.retain(|s| s.conversation != Some(id));
        if self.summaries.is_empty() {
            self.summaries_since = None;
        }
        self.advance(now, &mut fx);
        let roots = self.registry.live_roots_of(id);
        // Cancelling is quiet here: the caller says what it closed.
        let notice = self.notice.take();
        for root in roots {
            self.cancel_tree(root, now, &mut fx);
        }
        self.notice = notice;
        self.advance(now, &mut fx);
        self.flush_summaries(now, &mut fx);
        fx
    }

    /// Rename an open conversation; false when it is not open.
    pub fn rename_conversation(&mut self, id: ConversationId, name: impl Into<String>) -> bool {
        match self.conversations.get_mut(&id) {
            Some(conv) => {
                conv.name = name.into();
                true
            }
            None => false,
        }
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }

    /// The open conversations, by id.
    pub fn conversations(&self) -> impl Iterator<Item = (ConversationId, &Conversation)> {
        self.conversations.iter().map(|(id, c)| (*id, c))
    }

    // ----- read-only views -------------------------------------------------

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The seed ids and fresh scenario seeds come from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Keep every lifecycle event for [`Engine::take_events`] (a trace or an
    /// exporter listens), or stop.
    pub fn set_event_tap(&mut self, on: bool) {
        self.registry.set_tap(on);
    }

    /// The lifecycle events since the last call, oldest first (none unless
    /// [`Engine::set_event_tap`] is on).
    pub fn take_events(&mut self) -> Vec<event::LifecycleEvent> {
        self.registry.take_tapped()
    }

    /// The wall-clock time of `at` in milliseconds since the Unix epoch (the
    /// engine knows both clocks at its start).
    pub fn wall_ms(&self, at: Instant) -> u64 {
        self.wall_origin_ms
            .saturating_add(request::millis(at.saturating_duration_since(self.origin)))
    }

    /// Every running scenario and the newest finished ones, by stable
    /// index (older finished ones are in the session database only).
    pub fn scenarios(&self) -> &scenarios::ScenarioLog {
        &self.scenarios
    }

    pub fn backends(&self) -> &BTreeMap<String, Backend> {
        &self.backends
    }

    /// Fault injection now active, by backend.
    pub fn chaos(&self) -> &BTreeMap<String, ChaosMode> {
        &self.chaos
    }

    /// Sizes of every internal collection, for checking that they stay
    /// bounded.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            live: self.registry.live_count(),
            history: self.registry.history_len(),
            events: self.registry.events_len(),
            jobs: self.jobs.len(),
            calls: self.calls.len(),
            dedup: self.dedup.len(),
            followers: self.followers.len(),
            waiting: self.backends.values().map(Backend::fifo_len).sum(),
            summaries: self.summaries.len(),
        }
    }

    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    pub fn total_late_drops(&self) -> u64 {
        self.total_late_drops
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// When the engine next needs a [`Input::Tick`], if ever: a deadline, a
    /// retry's backoff ending, a breaker's open period ending, a rate token
    /// for a waiting request, or a batch of request summaries falling due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retries = self.retrying.first().map(|(until, _, _)| *until);
        let backends = self.backends.values().flat_map(|b| {
            b.breaker
                .next_change()
                .into_iter()
                .chain(b.next_token_time())
        });
        let flush = self
            .summaries_since
            .map(|since| since + SUMMARY_FLUSH_EVERY);
        let graces = self.observed.values().map(|o| o.until);
        self.registry
            .next_deadline()
            .into_iter()
            .chain(retries)
            .chain(graces)
            .chain(backends)
            .chain(flush)
            .min()
    }

    /// Calls observed past their deadline right now (not counted as busy:
    /// nothing waits for them).
    pub fn observed_count(&self) -> usize {
        self.observed.len()
    }

    /// Give up every observed call now (at exit): each is aborted and
    /// counted as abandoned.
    pub fn abandon_observed(&mut self, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        let ids: Vec<RequestId> = self.observed.keys().copied().collect();
        for id in ids {
            self.abandon(id, now, &mut fx);
        }
        fx
    }

    /// Whether anything is in flight (the UI redraws elapsed times then).
    /// Observed calls past their deadline do not count.
    pub fn is_busy(&self) -> bool {
        self.registry.live_count() > 0
    }

    /// Put a message in the status line (for errors found outside the engine,
    /// such as a bad command line).
    pub fn set_notice(&mut self, text: impl Into<String>, is_error: bool) {
        self.set_notice_holding(text, is_error, Holds::Always);
    }

    /// A notice that goes as soon as `holds` is no longer true.
    pub fn set_notice_holding(&mut self, text: impl Into<String>, is_error: bool, holds: Holds) {
        self.notice_seq += 1;
        let seq = self.notice_seq;
        self.notice = Some(Notice {
            text: text.into(),
            is_error,
            seq,
            holds,
        });
    }

    /// Whether what the notice says is still true (a notice that is
    /// always true still times out in the view).
    pub fn notice_holds(&self, notice: &Notice) -> bool {
        match notice.holds {
            Holds::Always => true,
            Holds::QueueDepth {
                conversation,
                depth,
            } => self
                .conversations
                .get(&conversation)
                .is_some_and(|c| c.queue.len() == depth),
        }
    }

    // ----- the one entry point ---------------------------------------------

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        // Time first: a result that arrives at or after its deadline finds
        // its request already expired, whatever order the runtime saw them.
        self.advance(now, &mut fx);
        match input {
            Input::Command(command) => self.on_command(command, now, &mut fx),
            Input::Retrieved {
                id,
                backend,
                result,
            } => self.on_retrieved(id, &backend, result, now, &mut fx),
            Input::Token { id, backend, text } => self.on_token(id, &backend, text, now, &mut fx),
            Input::Usage { id, usage, .. } => {
                // Counted on the request if it is still running; a late
                // count changes nothing and is not worth a late drop.
                if self.is_in_flight(id) {
                    self.registry.record(
                        id,
                        now,
                        event::EventKind::Usage {
                            input_tokens: usage.input_tokens,
                            output_tokens: usage.output_tokens,
                        },
                    );
                }
            }
            Input::Embedded {
                id,
                backend,
                result,
            } => self.on_embedded(id, &backend, result, now, &mut fx),
            Input::Finished {
                id,
                backend,
                result,
            } => self.on_finished(id, &backend, result, now, &mut fx),
            Input::Exported { result } => match result {
                Ok(path) => self.set_notice(format!("exported to {path}"), false),
                Err(error) => self.set_notice(format!("export failed: {error}"), true),
            },
            Input::IngestProgress {
                id,
                files_done,
                files_total,
                chunks,
            } => self.on_ingest_progress(
                id,
                format!("{files_done}/{files_total} files · {chunks} chunks"),
            ),
            Input::Ingested {
                id,
                backend,
                result,
            } => self.on_ingested(id, &backend, result, now, &mut fx),
            Input::Tick => {}
        }
        self.advance(now, &mut fx);
        self.flush_summaries(now, &mut fx);
        fx
    }

    /// Everything not saved yet, for an exit (a quit or a signal): the text
    /// so far of every reply still streaming (saved at most every
    /// [`REPLY_SAVE_EVERY`] while it streams) and the request summaries
    /// waiting for their batch. Nothing is cancelled.
    pub fn pending_saves(&mut self) -> Vec<Effect> {
        let streaming: Vec<(ConversationId, usize)> = self
            .conversations
            .iter()
            .flat_map(|(id, conv)| {
                conv.messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| {
                        m.role == Role::Assistant && m.status == MessageStatus::Running
                    })
                    .map(move |(index, _)| (*id, index))
            })
            .collect();
        let mut fx: Vec<Effect> = streaming
            .into_iter()
            .filter_map(|(conversation, message)| self.save_reply(conversation, message))
            .collect();
        if !self.summaries.is_empty() {
            self.summaries_since = None;
            fx.push(Effect::SaveRequests(std::mem::take(&mut self.summaries)));
        }
        fx
    }

    /// Hand out the waiting request summaries as one batch when the oldest
    /// has waited [`SUMMARY_FLUSH_EVERY`], when nothing is live any more,
    /// or when [`SUMMARY_BATCH_MAX`] are waiting.
    fn flush_summaries(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let Some(since) = self.summaries_since else {
            return;
        };
        if self.registry.live_count() == 0
            || now >= since + SUMMARY_FLUSH_EVERY
            || self.summaries.len() >= SUMMARY_BATCH_MAX
        {
            self.summaries_since = None;
            fx.push(Effect::SaveRequests(std::mem::take(&mut self.summaries)));
        }
    }

    /// Keep a finished request's summary for the next batch, unless its
    /// conversation has been closed.
    fn keep_summary(&mut self, summary: RequestSummary, now: Instant) {
        if summary
            .conversation
            .is_some_and(|c| !self.conversations.contains_key(&c))
        {
            return;
        }
        self.summaries_since.get_or_insert(now);
        self.summaries.push(summary);
    }

    /// The effect that saves reply `message` of `conversation` as it is now.
    fn save_reply(&self, conversation: ConversationId, message: usize) -> Option<Effect> {
        let conv = self.conversations.get(&conversation)?;
        let m = conv.messages.get(message)?;
        let question = message
            .checked_sub(1)
            .and_then(|q| conv.messages.get(q))
            .and_then(|q| q.tag);
        Some(Effect::SaveReply {
            conversation,
            message: MessageKey(message),
            text: m.text.clone(),
            status: m.status.clone(),
            passages: m.passages.clone(),
            backend: m.backend.clone(),
            request: m.request,
            no_lore: m.no_lore.clone(),
            question,
        })
    }

    // ----- commands --------------------------------------------------------

    fn on_command(&mut self, command: Command, now: Instant, fx: &mut Vec<Effect>) {
        match command {
            Command::Ask {
                conversation,
                text,
                tag,
            } => self.ask(conversation, text, tag, now, fx),
            Command::Scenario {
                conversation,
                prompt,
                seed,
            } => {
                if self.known(conversation) {
                    let seed = seed
                        .or(self.cfg.scenario_seed)
                        .unwrap_or_else(|| seed_for_prompt(&prompt));
                    self.start_scenario(conversation, prompt, seed, now, fx);
                }
            }
            Command::Regenerate { scenario } => match self.scenarios.get(scenario) {
                Some(entry) => {
                    let (conversation, prompt) = (entry.conversation, entry.prompt.clone());
                    if self.known(conversation) {
                        let seed = self.rng.random::<u64>();
                        self.start_scenario(conversation, prompt, seed, now, fx);
                    }
                }
                None if scenario < self.scenarios.first() => self.set_notice(
                    format!("scenario {} is no longer held here", scenario + 1),
                    true,
                ),
                None => self.set_notice("no scenario to regenerate yet", true),
            },
            Command::Export { scenario } => match self.scenarios.get(scenario) {
                Some(entry) if entry.status == ScenarioStatus::Done => fx.push(Effect::Export {
                    path_hint: format!("{}-{}", slug(&entry.title()), entry.seed),
                    contents: entry.markdown.clone(),
                }),
                Some(_) => self.set_notice("that scenario is not finished yet", true),
                None if scenario < self.scenarios.first() => self.set_notice(
                    format!("scenario {} is no longer held here", scenario + 1),
                    true,
                ),
                None => self.set_notice("no scenario to export yet", true),
            },
            Command::Cancel { id } => {
                let found = self
                    .registry
                    .live_requests()
                    .filter(|r| r.id.matches(&id))
                    .map(|r| r.id)
                    .collect::<Vec<_>>();
                match found.as_slice() {
                    [one] => self.cancel_tree(*one, now, fx),
                    [] => self.set_notice(format!("no running request {id}"), true),
                    _ => self.set_notice(format!("{id} names more than one request"), true),
                }
            }
            Command::CancelRunning { conversation } => {
                if !self.known(conversation) {
                    return;
                }
                match self
                    .conversations
                    .get(&conversation)
                    .and_then(|c| c.running)
                {
                    Some(id) => self.cancel_tree(id, now, fx),
                    None => self.set_notice("nothing is running in this conversation", false),
                }
            }
            Command::ClearQueue { conversation } => {
                if !self.known(conversation) {
                    return;
                }
                if let Some(conv) = self.conversations.get_mut(&conversation) {
                    let n = conv.queue.len();
                    let tags: Vec<u64> = conv.queue.drain(..).filter_map(|q| q.tag).collect();
                    if !tags.is_empty() {
                        fx.push(Effect::DropQueued { conversation, tags });
                    }
                    self.set_notice(format!("dropped {n} queued message(s)"), false);
                }
            }
            Command::ResendUnsent { conversation } => {
                if !self.known(conversation) {
                    return;
                }
                let Some(conv) = self.conversations.get_mut(&conversation) else {
                    return;
                };
                let unsent = std::mem::take(&mut conv.unsent);
                if unsent.is_empty() {
                    self.set_notice("no unsent messages", false);
                    return;
                }
                let n = unsent.len();
                for message in unsent {
                    self.ask(conversation, message.text, message.tag, now, fx);
                }
                self.set_notice(format!("resent {n} message(s)"), false);
            }
            Command::KbAdd { paths } => {
                if paths.is_empty() {
                    self.set_notice("usage: /kb add PATH...", true);
                    return;
                }
                let label = format!("add {}", paths.join(" "));
                let id = self.new_request(
                    Kind::Ingest,
                    KB_BACKEND,
                    None,
                    &label,
                    DeadlinePolicy::Unbounded,
                    now,
                );
                self.submit(id, Call::Ingest(paths), now, fx);
            }
            Command::EmbedChunks { batch, texts } => {
                let Some(embedder) = self.cfg.embedder.clone() else {
                    fx.push(Effect::ChunkVectors {
                        batch,
                        result: Err("no embeddings backend is configured".into()),
                    });
                    return;
                };
                let label = format!("{} knowledge-base chunk(s)", texts.len());
                let policy = DeadlinePolicy::Total(self.cfg.embed_timeout);
                let id = self.new_request(Kind::Embed, &embedder, None, &label, policy, now);
                self.chunk_batches.insert(id, (batch, texts.len()));
                self.submit(id, Call::Embed(texts), now, fx);
            }
            Command::SetRag(on) => {
                self.cfg.rag = on;
                self.set_notice(
                    if on {
                        "RAG on"
                    } else {
                        "RAG off: answers use no lore"
                    },
                    false,
                );
            }
            Command::CancelQueued {
                conversation,
                number,
            } => {
                if !self.known(conversation) {
                    return;
                }
                let removed = self.conversations.get_mut(&conversation).and_then(|conv| {
                    let at = conv.queue.iter().position(|q| q.number == number)?;
                    conv.queue.remove(at)
                });
                if let Some(dropped) = removed {
                    if let Some(tag) = dropped.tag {
                        fx.push(Effect::DropQueued {
                            conversation,
                            tags: vec![tag],
                        });
                    }
                    self.set_notice(format!("dropped queued message #{number}"), false);
                } else {
                    self.set_notice(format!("no queued message #{number}"), true);
                }
            }
            Command::Chaos { backend, mode } => self.set_chaos(backend, mode, now, fx),
            Command::ForceBreaker { backend, force } => {
                let Some(b) = self.backends.get_mut(&backend) else {
                    let known = self.backend_names();
                    self.set_notice(format!("no backend `{backend}` (known: {known})"), true);
                    return;
                };
                let transition = b.breaker.set_force(force);
                let label = b.breaker.label();
                match transition {
                    Some(t) => {
                        let text = t.to_string();
                        self.registry.backend_event(
                            &backend,
                            now,
                            event::EventKind::breaker(t.from.to_string(), t.to.to_string(), t.why),
                        );
                        self.set_notice(format!("{backend}: {text}"), false);
                    }
                    None => self.set_notice(format!("{backend}: breaker already {label}"), false),
                }
                // A breaker forced closed lets waiting requests through.
                self.pump(&backend, now, fx);
            }
        }
    }

    /// Whether `conversation` is open; if not, says so in the status line.
    fn known(&mut self, conversation: ConversationId) -> bool {
        let open = self.conversations.contains_key(&conversation);
        if !open {
            self.set_notice(format!("no conversation {conversation} is open"), true);
        }
        open
    }

    fn backend_names(&self) -> String {
        self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn set_chaos(
        &mut self,
        backend: Option<String>,
        mode: Option<ChaosMode>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let targets: Vec<String> = match &backend {
            Some(name) if self.backends.contains_key(name) => vec![name.clone()],
            Some(name) => {
                let known = self.backend_names();
                self.set_notice(format!("no backend `{name}` (known: {known})"), true);
                return;
            }
            // Only "off" applies to every backend at once.
            None if mode.is_none() => self.chaos.keys().cloned().collect(),
            None => {
                self.set_notice("say which backend: /chaos <backend> ...", true);
                return;
            }
        };
        for name in targets {
            match mode {
                Some(mode) => {
                    self.chaos.insert(name.clone(), mode);
                    self.registry.backend_event(
                        &name,
                        now,
                        event::EventKind::Chaos {
                            text: format!("chaos on: {mode}"),
                        },
                    );
                }
                None => {
                    self.chaos.remove(&name);
                    self.registry.backend_event(
                        &name,
                        now,
                        event::EventKind::Chaos {
                            text: "chaos off".into(),
                        },
                    );
                }
            }
            fx.push(Effect::Chaos {
                backend: name,
                mode,
            });
        }
        let summary = if self.chaos.is_empty() {
            "chaos off".to_string()
        } else {
            let active: Vec<String> = self.chaos.iter().map(|(b, m)| format!("{b} {m}")).collect();
            format!("chaos: {}", active.join(", "))
        };
        self.set_notice(summary, !self.chaos.is_empty());
    }

    fn ask(
        &mut self,
        conversation: ConversationId,
        text: String,
        tag: Option<u64>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.known(conversation) {
            return;
        }
        let Some(conv) = self.conversations.get_mut(&conversation) else {
            return;
        };
        if conv.running.is_some() {
            let number = conv.next_queue_number;
            conv.next_queue_number += 1;
            conv.queue.push_back(QueuedMessage { number, text, tag });
            let depth = conv.queue.len();
            self.set_notice_holding(
                format!("queued (depth {depth}): a reply is still running"),
                false,
                Holds::QueueDepth {
                    conversation,
                    depth,
                },
            );
            return;
        }
        self.start_turn(conversation, text, tag, now, fx);
    }

    fn start_turn(
        &mut self,
        conversation: ConversationId,
        question: String,
        tag: Option<u64>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let generator = self.cfg.generator.clone();
        let Some(conv) = self.conversations.get_mut(&conversation) else {
            return;
        };
        let history = conv
            .messages
            .iter()
            .filter(|m| m.status == MessageStatus::Done)
            .map(|m| ChatTurn {
                role: m.role,
                text: m.text.clone(),
            })
            .collect::<Vec<_>>();
        let skip = history
            .len()
            .saturating_sub(self.cfg.chat_history_turns * 2);
        let history = history.into_iter().skip(skip).collect();
        conv.messages.push(ChatMessage {
            role: Role::User,
            text: question.clone(),
            status: MessageStatus::Done,
            request: None,
            backend: None,
            passages: Vec::new(),
            no_lore: None,
            tag,
        });
        let message = conv.messages.len();
        let parent = self.new_pipeline(Kind::Turn, conversation, &question, now);
        let Some(conv) = self.conversations.get_mut(&conversation) else {
            return;
        };
        conv.messages.push(ChatMessage {
            role: Role::Assistant,
            text: String::new(),
            status: MessageStatus::Running,
            request: Some(parent),
            backend: Some(generator),
            passages: Vec::new(),
            no_lore: None,
            tag: None,
        });
        conv.running = Some(parent);
        let job = Job {
            target: Target::Turn {
                conversation,
                message,
            },
            mode: TaskMode::Chat { question, history },
            passages: Vec::new(),
            no_lore: None,
            vector: None,
            saved_at: Some(now),
        };
        fx.extend(self.save_reply(conversation, message));
        self.start_job(parent, job, now, fx);
    }

    fn start_scenario(
        &mut self,
        conversation: ConversationId,
        prompt: String,
        seed: u64,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(conv) = self.conversations.get_mut(&conversation) else {
            return;
        };
        let index = conv.next_scenario;
        conv.next_scenario += 1;
        let label = format!("{prompt} (seed {seed})");
        let parent = self.new_pipeline(Kind::Scenario, conversation, &label, now);
        let at = self.scenarios.push(ScenarioEntry {
            conversation,
            index,
            prompt: prompt.clone(),
            seed,
            request: parent,
            backend: self.cfg.generator.clone(),
            markdown: String::new(),
            status: ScenarioStatus::Running,
            passages: Vec::new(),
            no_lore: None,
        });
        let job = Job {
            target: Target::Scenario(at),
            mode: TaskMode::Scenario { prompt, seed },
            passages: Vec::new(),
            no_lore: None,
            vector: None,
            saved_at: None,
        };
        self.start_job(parent, job, now, fx);
    }

    /// Retrieval first when RAG is on (after embedding the query, when an
    /// embeddings backend is set), else straight to generation.
    fn start_job(&mut self, parent: RequestId, mut job: Job, now: Instant, fx: &mut Vec<Effect>) {
        self.set_phase(parent, Phase::Dispatched, now);
        if !self.cfg.rag {
            job.no_lore = Some("RAG is off".into());
            self.jobs.insert(parent, job);
            self.start_generation(parent, now, fx);
            return;
        }
        let query = job_query(&job);
        self.jobs.insert(parent, job);
        match self.cfg.embedder.clone() {
            Some(embedder) => {
                let policy = DeadlinePolicy::Total(self.cfg.embed_timeout);
                let id =
                    self.new_request(Kind::Embed, &embedder, Some(parent), &query, policy, now);
                self.submit(id, Call::Embed(vec![query]), now, fx);
            }
            None => self.start_retrieval(parent, now, fx),
        }
    }

    fn start_retrieval(&mut self, parent: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get(&parent) else {
            return;
        };
        let query = job_query(job);
        let vector = job.vector.clone();
        let backend = self.cfg.retriever.clone();
        let policy = DeadlinePolicy::Total(self.cfg.retrieval_timeout);
        let id = self.new_request(Kind::Retrieve, &backend, Some(parent), &query, policy, now);
        let call = Call::Retrieve(RetrieveQuery {
            query,
            top_k: self.cfg.top_k,
            vector,
        });
        self.submit(id, call, now, fx);
    }

    fn start_generation(&mut self, parent: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get_mut(&parent) else {
            return;
        };
        let kind = match &job.mode {
            TaskMode::Chat { .. } => Kind::Chat,
            TaskMode::Scenario { .. } => Kind::Generate,
        };
        let mut passages = self.context.clone();
        // Moved, not copied: a job starts its generation once, and nothing
        // reads its retrieved passages after.
        passages.append(&mut job.passages);
        let task = GenerationTask {
            mode: job.mode.clone(),
            passages,
            no_lore_reason: job.no_lore.clone(),
        };
        let target = job.target;
        if let Some(t) = self.target_mut(target) {
            *t.passages = task.passages.clone();
            *t.no_lore = task.no_lore_reason.clone();
        }
        let backend = self.cfg.generator.clone();
        let policy = DeadlinePolicy::Streaming {
            first_token: self.cfg.first_token_timeout,
            idle: self.cfg.idle_timeout,
        };
        let label = match &task.mode {
            TaskMode::Chat { question, .. } => question.as_str(),
            TaskMode::Scenario { prompt, .. } => prompt.as_str(),
        };
        let id = self.new_request(kind, &backend, Some(parent), label, policy, now);
        self.submit(id, Call::Generate(task), now, fx);
    }

    /// The reply or scenario a pipeline writes into.
    fn target_mut(&mut self, target: Target) -> Option<TargetMut<'_>> {
        match target {
            Target::Scenario(index) => self.scenarios.get_mut(index).map(|e| TargetMut {
                text: &mut e.markdown,
                passages: &mut e.passages,
                no_lore: &mut e.no_lore,
            }),
            Target::Turn {
                conversation,
                message,
            } => self
                .conversations
                .get_mut(&conversation)
                .and_then(|c| c.messages.get_mut(message))
                .map(|m| TargetMut {
                    text: &mut m.text,
                    passages: &mut m.passages,
                    no_lore: &mut m.no_lore,
                }),
        }
    }
}

/// What a job retrieves for: the question or the prompt.
fn job_query(job: &Job) -> String {
    match &job.mode {
        TaskMode::Chat { question, .. } => question.clone(),
        TaskMode::Scenario { prompt, .. } => prompt.clone(),
    }
}

/// "10 s", "200 ms", "1.5 s": how the fallback notes say a duration.
pub fn spoken_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// A file-name-safe slug of a title.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "scenario".into()
    } else {
        out.chars().take(60).collect()
    }
}

#[cfg(test)]
mod context_tests;
#[cfg(test)]
mod conversation_tests;
#[cfg(test)]
mod exit_tests;
#[cfg(test)]
mod late_tests;
#[cfg(test)]
mod resilience_tests;
#[cfg(test)]
mod tests;
