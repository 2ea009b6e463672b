//! The pure core: `Engine::handle(input, now) -> Vec<Effect>`. It owns the
//! request registry, deadlines, the scenario and chat pipelines, conversation
//! queues and per-backend metrics. It performs no IO, never awaits and never
//! reads a clock: `now` comes in with every input, so every rule is testable
//! exactly with a fake clock.
//!
//! Invariants: every request reaches exactly one final state (the registry
//! enforces it); a result is applied only while its request is live, and is
//! otherwise a counted late drop; a parent ends only after all its children
//! have; expiry of a running request always comes with an `Abort` effect.

pub mod command;
pub mod metrics;
pub mod registry;
pub mod request;
pub mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ulid::Ulid;

use crate::domain::{
    BackendError, ChatTurn, GenerationTask, Passage, RetrieveQuery, Role, TaskMode, seed_for_prompt,
};
use metrics::BackendMetrics;
use registry::Registry;
use request::{DeadlinePolicy, Kind, Outcome, Phase, Request, RequestId};
use workspace::{
    ChatMessage, Conversation, MessageStatus, QueuedMessage, ScenarioEntry, ScenarioStatus,
};

/// Settings the engine's rules depend on.
#[derive(Debug, Clone)]
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
        }
    }
}

/// A call the runtime makes on a backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Retrieve(RetrieveQuery),
    Generate(GenerationTask),
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
    /// Write a file without overwriting one; the result comes back as
    /// [`Input::Exported`].
    Export { path_hint: String, contents: String },
}

/// What the user asks the engine for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ask {
        conversation: usize,
        text: String,
    },
    Scenario {
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
        conversation: usize,
    },
    ClearQueue {
        conversation: usize,
    },
    SetRag(bool),
}

/// Everything that can happen to the engine.
#[derive(Debug, Clone, PartialEq)]
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
    /// A generation stream ended, cleanly or with an error.
    Finished {
        id: RequestId,
        backend: String,
        result: Result<(), BackendError>,
    },
    Exported {
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
}

/// What a parent request's pipeline is producing.
#[derive(Debug, Clone, Copy)]
enum Target {
    Scenario(usize),
    Turn { conversation: usize, message: usize },
}

#[derive(Debug)]
struct Job {
    target: Target,
    mode: TaskMode,
    passages: Vec<Passage>,
    no_lore: Option<String>,
}

#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    registry: Registry,
    rng: SmallRng,
    origin: Instant,
    wall_origin_ms: u64,
    /// Pipelines by parent id; removed when the parent ends.
    jobs: HashMap<RequestId, Job>,
    /// For every live child, its parent (for routing results).
    backends: BTreeMap<String, BackendMetrics>,
    conversations: Vec<Conversation>,
    scenarios: Vec<ScenarioEntry>,
    notice: Option<Notice>,
    total_late_drops: u64,
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
        backends.insert(cfg.retriever.clone(), BackendMetrics::default());
        backends.insert(cfg.generator.clone(), BackendMetrics::default());
        Self {
            registry: Registry::new(origin, cfg.history_cap),
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            origin,
            wall_origin_ms,
            jobs: HashMap::new(),
            backends,
            conversations: vec![Conversation::new("default")],
            scenarios: Vec::new(),
            notice: None,
            total_late_drops: 0,
        }
    }

    // ----- read-only views -------------------------------------------------

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    pub fn scenarios(&self) -> &[ScenarioEntry] {
        &self.scenarios
    }

    pub fn backends(&self) -> &BTreeMap<String, BackendMetrics> {
        &self.backends
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

    /// When the engine next needs a [`Input::Tick`], if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.registry.next_deadline()
    }

    /// Whether anything is in flight (the UI redraws elapsed times then).
    pub fn is_busy(&self) -> bool {
        self.registry.live_count() > 0
    }

    /// Put a message in the status line (for errors found outside the engine,
    /// such as a bad command line).
    pub fn set_notice(&mut self, text: impl Into<String>, is_error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error,
        });
    }

    // ----- the one entry point ---------------------------------------------

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Command(command) => self.on_command(command, now, &mut fx),
            Input::Retrieved {
                id,
                backend,
                result,
            } => self.on_retrieved(id, &backend, result, now, &mut fx),
            Input::Token { id, backend, text } => self.on_token(id, &backend, text, now),
            Input::Finished {
                id,
                backend,
                result,
            } => self.on_finished(id, &backend, result, now, &mut fx),
            Input::Exported { result } => match result {
                Ok(path) => self.set_notice(format!("exported to {path}"), false),
                Err(error) => self.set_notice(format!("export failed: {error}"), true),
            },
            Input::Tick => {}
        }
        // Expire whatever is due, whatever the input was: a late Tick must
        // not let a stale result through first.
        self.expire(now, &mut fx);
        fx
    }

    // ----- commands --------------------------------------------------------

    fn on_command(&mut self, command: Command, now: Instant, fx: &mut Vec<Effect>) {
        match command {
            Command::Ask { conversation, text } => self.ask(conversation, text, now, fx),
            Command::Scenario { prompt, seed } => {
                let seed = seed.unwrap_or_else(|| seed_for_prompt(&prompt));
                self.start_scenario(prompt, seed, now, fx);
            }
            Command::Regenerate { scenario } => match self.scenarios.get(scenario) {
                Some(entry) => {
                    let prompt = entry.prompt.clone();
                    let seed = self.rng.random::<u64>();
                    self.start_scenario(prompt, seed, now, fx);
                }
                None => self.set_notice("no scenario to regenerate yet", true),
            },
            Command::Export { scenario } => match self.scenarios.get(scenario) {
                Some(entry) if entry.status == ScenarioStatus::Done => fx.push(Effect::Export {
                    path_hint: format!("{}-{}", slug(&entry.title()), entry.seed),
                    contents: entry.markdown.clone(),
                }),
                Some(_) => self.set_notice("that scenario is not finished yet", true),
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
                match self.conversations.get(conversation).and_then(|c| c.running) {
                    Some(id) => self.cancel_tree(id, now, fx),
                    None => self.set_notice("nothing is running in this conversation", false),
                }
            }
            Command::ClearQueue { conversation } => {
                if let Some(conv) = self.conversations.get_mut(conversation) {
                    let n = conv.queue.len();
                    conv.queue.clear();
                    self.set_notice(format!("dropped {n} queued message(s)"), false);
                }
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
        }
    }

    fn ask(&mut self, conversation: usize, text: String, now: Instant, fx: &mut Vec<Effect>) {
        let Some(conv) = self.conversations.get_mut(conversation) else {
            self.set_notice("no such conversation", true);
            return;
        };
        if conv.running.is_some() {
            let number = conv.next_queue_number;
            conv.next_queue_number += 1;
            conv.queue.push_back(QueuedMessage { number, text });
            let depth = conv.queue.len();
            self.set_notice(
                format!("queued (depth {depth}): a reply is still running"),
                false,
            );
            return;
        }
        self.start_turn(conversation, text, now, fx);
    }

    fn start_turn(
        &mut self,
        conversation: usize,
        question: String,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let generator = self.cfg.generator.clone();
        let Some(conv) = self.conversations.get_mut(conversation) else {
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
        });
        let message = conv.messages.len();
        let parent = self.new_request(
            Kind::Turn,
            "pipeline",
            None,
            &question,
            DeadlinePolicy::Children,
            now,
        );
        let conv = &mut self.conversations[conversation];
        conv.messages.push(ChatMessage {
            role: Role::Assistant,
            text: String::new(),
            status: MessageStatus::Running,
            request: Some(parent),
            backend: Some(generator),
            passages: Vec::new(),
            no_lore: None,
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
        };
        self.start_job(parent, job, now, fx);
    }

    fn start_scenario(&mut self, prompt: String, seed: u64, now: Instant, fx: &mut Vec<Effect>) {
        let label = format!("{prompt} (seed {seed})");
        let parent = self.new_request(
            Kind::Scenario,
            "pipeline",
            None,
            &label,
            DeadlinePolicy::Children,
            now,
        );
        self.scenarios.push(ScenarioEntry {
            prompt: prompt.clone(),
            seed,
            request: parent,
            backend: self.cfg.generator.clone(),
            markdown: String::new(),
            status: ScenarioStatus::Generating,
            passages: Vec::new(),
            no_lore: None,
        });
        let job = Job {
            target: Target::Scenario(self.scenarios.len() - 1),
            mode: TaskMode::Scenario { prompt, seed },
            passages: Vec::new(),
            no_lore: None,
        };
        self.start_job(parent, job, now, fx);
    }

    /// Retrieval first when RAG is on, else straight to generation.
    fn start_job(&mut self, parent: RequestId, mut job: Job, now: Instant, fx: &mut Vec<Effect>) {
        self.set_phase(parent, Phase::Dispatched, now);
        if self.cfg.rag {
            let query = match &job.mode {
                TaskMode::Chat { question, .. } => question.clone(),
                TaskMode::Scenario { prompt, .. } => prompt.clone(),
            };
            self.jobs.insert(parent, job);
            let backend = self.cfg.retriever.clone();
            let policy = DeadlinePolicy::Total(self.cfg.retrieval_timeout);
            let id = self.new_request(Kind::Retrieve, &backend, Some(parent), &query, policy, now);
            let call = Call::Retrieve(RetrieveQuery {
                query,
                top_k: self.cfg.top_k,
            });
            self.dispatch(id, call, now, fx);
        } else {
            job.no_lore = Some("RAG is off".into());
            self.jobs.insert(parent, job);
            self.start_generation(parent, now, fx);
        }
    }

    fn start_generation(&mut self, parent: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get(&parent) else {
            return;
        };
        let (kind, label) = match &job.mode {
            TaskMode::Chat { question, .. } => (Kind::Chat, question.clone()),
            TaskMode::Scenario { prompt, .. } => (Kind::Generate, prompt.clone()),
        };
        let task = GenerationTask {
            mode: job.mode.clone(),
            passages: job.passages.clone(),
            no_lore_reason: job.no_lore.clone(),
        };
        let target = job.target;
        self.with_target(target, |passages, no_lore| {
            *passages = task.passages.clone();
            *no_lore = task.no_lore_reason.clone();
        });
        let backend = self.cfg.generator.clone();
        let policy = DeadlinePolicy::Streaming {
            first_token: self.cfg.first_token_timeout,
            idle: self.cfg.idle_timeout,
        };
        let id = self.new_request(kind, &backend, Some(parent), &label, policy, now);
        self.dispatch(id, Call::Generate(task), now, fx);
    }

    // ----- results ---------------------------------------------------------

    fn on_retrieved(
        &mut self,
        id: RequestId,
        backend: &str,
        result: Result<Vec<Passage>, BackendError>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.registry.is_live(id) {
            self.late_drop(id, backend, "retrieval result", now);
            return;
        }
        let parent = self.registry.live(id).and_then(|r| r.parent);
        match result {
            Ok(passages) => {
                self.registry
                    .record(id, now, format!("{} passage(s) retrieved", passages.len()));
                self.finish(id, Outcome::Completed, now, fx);
                if let Some(job) = parent.and_then(|p| self.jobs.get_mut(&p)) {
                    if passages.is_empty() {
                        job.no_lore = Some("no lore matched".into());
                    }
                    job.passages = passages;
                }
            }
            Err(error) => {
                let reason = format!("retrieval failed: {}", error.message);
                self.finish(id, Outcome::Failed(error.message), now, fx);
                self.fallback(parent, reason, now);
            }
        }
        if let Some(parent) = parent {
            self.start_generation(parent, now, fx);
        }
    }

    fn on_token(&mut self, id: RequestId, backend: &str, text: String, now: Instant) {
        let Some(request) = self.registry.live_mut(id) else {
            self.late_drop(id, backend, "token", now);
            return;
        };
        let parent = request.parent;
        if request.phase != Phase::Streaming {
            request.phase = Phase::Streaming;
            self.registry.record(id, now, "first token");
        }
        if let Some(request) = self.registry.live_mut(id)
            && let DeadlinePolicy::Streaming { idle, .. } = request.policy
        {
            request.deadline = Some(now + idle);
        }
        let Some(target) = parent.and_then(|p| self.jobs.get(&p)).map(|j| j.target) else {
            return;
        };
        match target {
            Target::Scenario(index) => {
                if let Some(entry) = self.scenarios.get_mut(index) {
                    entry.markdown.push_str(&text);
                }
            }
            Target::Turn {
                conversation,
                message,
            } => {
                if let Some(msg) = self
                    .conversations
                    .get_mut(conversation)
                    .and_then(|c| c.messages.get_mut(message))
                {
                    msg.text.push_str(&text);
                }
            }
        }
    }

    fn on_finished(
        &mut self,
        id: RequestId,
        backend: &str,
        result: Result<(), BackendError>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.registry.is_live(id) {
            self.late_drop(id, backend, "end of stream", now);
            return;
        }
        let parent = self.registry.live(id).and_then(|r| r.parent);
        let outcome = match result {
            Ok(()) => Outcome::Completed,
            Err(error) => Outcome::Failed(error.message),
        };
        self.finish(id, outcome, now, fx);
        if let Some(parent) = parent {
            self.settle_parent(parent, now, fx);
        }
    }

    // ----- time ------------------------------------------------------------

    fn expire(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        for id in self.registry.expired(now) {
            let Some(request) = self.registry.live(id) else {
                continue;
            };
            let kind = request.kind;
            let parent = request.parent;
            let waited = match request.policy {
                DeadlinePolicy::Total(total) => total,
                DeadlinePolicy::Streaming { first_token, idle } => {
                    if request.phase == Phase::Streaming {
                        idle
                    } else {
                        first_token
                    }
                }
                DeadlinePolicy::Children => Duration::ZERO,
            };
            let streaming = request.phase == Phase::Streaming;
            self.finish(id, Outcome::TimedOut, now, fx);
            match kind {
                Kind::Retrieve | Kind::Embed => {
                    let reason = format!("retrieval timed out after {}", spoken_duration(waited));
                    self.fallback(parent, reason, now);
                    if let Some(parent) = parent {
                        self.start_generation(parent, now, fx);
                    }
                }
                Kind::Chat | Kind::Generate => {
                    let what = if streaming {
                        format!("no token for {}", spoken_duration(waited))
                    } else {
                        format!("no first token within {}", spoken_duration(waited))
                    };
                    if let Some(parent) = parent {
                        self.registry
                            .record(parent, now, format!("generation timed out: {what}"));
                        self.settle_parent(parent, now, fx);
                    }
                }
                Kind::Scenario | Kind::Turn => {}
            }
        }
    }

    // ----- helpers ---------------------------------------------------------

    fn new_request(
        &mut self,
        kind: Kind,
        backend: &str,
        parent: Option<RequestId>,
        label: &str,
        policy: DeadlinePolicy,
        now: Instant,
    ) -> RequestId {
        let wall_ms = self
            .wall_origin_ms
            .saturating_add(request::millis(now.saturating_duration_since(self.origin)));
        let random = self.rng.random::<u128>() & ((1u128 << 80) - 1);
        let id = RequestId(Ulid::from_parts(wall_ms, random));
        let seq = self.registry.next_seq();
        let mut request = Request {
            id,
            seq,
            kind,
            backend: backend.to_string(),
            parent,
            children: Vec::new(),
            label: label.chars().take(200).collect(),
            created: now,
            dispatched: None,
            ended: None,
            policy,
            deadline: None,
            phase: Phase::Queued,
            attempt: 0,
            late_drops: 0,
            timeline: Vec::new(),
        };
        request.note(now, "created");
        tracing::info!(id = %id, kind = kind.label(), backend, parent = ?parent.map(|p| p.to_string()), "request created");
        self.registry.insert(request);
        id
    }

    /// Hand a request to the runtime and arm its deadline.
    fn dispatch(&mut self, id: RequestId, call: Call, now: Instant, fx: &mut Vec<Effect>) {
        let Some(request) = self.registry.live_mut(id) else {
            return;
        };
        request.attempt += 1;
        request.phase = Phase::Dispatched;
        request.dispatched = Some(now);
        request.deadline = match request.policy {
            DeadlinePolicy::Total(total) => Some(now + total),
            DeadlinePolicy::Streaming { first_token, .. } => Some(now + first_token),
            DeadlinePolicy::Children => None,
        };
        let backend = request.backend.clone();
        let attempt = request.attempt;
        self.registry
            .record(id, now, format!("dispatched (attempt {attempt})"));
        self.backends.entry(backend.clone()).or_default().in_flight += 1;
        fx.push(Effect::Dispatch { id, backend, call });
    }

    fn set_phase(&mut self, id: RequestId, phase: Phase, now: Instant) {
        if let Some(request) = self.registry.live_mut(id) {
            let label = phase.label();
            if request.dispatched.is_none() {
                request.dispatched = Some(now);
            }
            request.phase = phase;
            self.registry.record(id, now, label);
        }
    }

    /// End a live request: metrics, slot, abort of a still-running task.
    fn finish(&mut self, id: RequestId, outcome: Outcome, now: Instant, fx: &mut Vec<Effect>) {
        let abort = matches!(outcome, Outcome::TimedOut | Outcome::Cancelled);
        let Some(request) = self.registry.finish(id, outcome, now) else {
            return;
        };
        if request.kind == Kind::Scenario || request.kind == Kind::Turn {
            return;
        }
        let backend = request.backend.clone();
        let was_dispatched = request.dispatched.is_some();
        let latency = request
            .ended
            .unwrap_or(now)
            .saturating_duration_since(request.dispatched.unwrap_or(request.created));
        let outcome = request.outcome().cloned().unwrap_or(Outcome::Cancelled);
        let metrics = self.backends.entry(backend).or_default();
        if was_dispatched {
            metrics.in_flight = metrics.in_flight.saturating_sub(1);
        }
        metrics.record_outcome(&outcome, latency);
        if abort && was_dispatched {
            fx.push(Effect::Abort { id });
        }
    }

    fn late_drop(&mut self, id: RequestId, backend: &str, what: &str, now: Instant) {
        self.backends
            .entry(backend.to_string())
            .or_default()
            .late_drops += 1;
        self.total_late_drops += 1;
        self.registry.late_drop(id, backend, what, now);
    }

    /// Retrieval gave nothing usable: generation goes on without lore.
    fn fallback(&mut self, parent: Option<RequestId>, reason: String, now: Instant) {
        let Some(parent) = parent else {
            return;
        };
        self.registry
            .record(parent, now, format!("fallback: no lore ({reason})"));
        if let Some(job) = self.jobs.get_mut(&parent) {
            job.passages.clear();
            job.no_lore = Some(reason);
        }
    }

    /// End a parent once every child has ended; its outcome follows the
    /// generation child's.
    fn settle_parent(&mut self, parent: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(request) = self.registry.live(parent) else {
            return;
        };
        let children = request.children.clone();
        if children.iter().any(|c| self.registry.is_live(*c)) {
            return;
        }
        let generation = children
            .iter()
            .filter_map(|c| self.registry.get(*c))
            .find(|c| matches!(c.kind, Kind::Chat | Kind::Generate));
        let outcome = match generation.and_then(|g| g.outcome()) {
            Some(Outcome::Completed) => Outcome::Completed,
            Some(Outcome::TimedOut) => Outcome::TimedOut,
            Some(Outcome::Cancelled) | None => Outcome::Cancelled,
            Some(Outcome::Failed(reason)) => {
                Outcome::Failed(format!("generation failed: {reason}"))
            }
            Some(Outcome::ShortCircuited) => Outcome::Failed("generator breaker open".into()),
            Some(Outcome::Joined(_)) => Outcome::Completed,
        };
        self.finish(parent, outcome.clone(), now, fx);
        let Some(job) = self.jobs.remove(&parent) else {
            return;
        };
        match job.target {
            Target::Scenario(index) => {
                if let Some(entry) = self.scenarios.get_mut(index) {
                    entry.status = match &outcome {
                        Outcome::Completed => ScenarioStatus::Done,
                        Outcome::Cancelled => ScenarioStatus::Cancelled,
                        Outcome::TimedOut => ScenarioStatus::Failed("generation timed out".into()),
                        Outcome::Failed(reason) => ScenarioStatus::Failed(reason.clone()),
                        _ => ScenarioStatus::Failed(outcome.label().into()),
                    };
                    let notice = match &entry.status {
                        ScenarioStatus::Done => {
                            Some((format!("scenario ready: {}", entry.title()), false))
                        }
                        ScenarioStatus::Failed(reason) => {
                            Some((format!("scenario failed: {reason}"), true))
                        }
                        _ => None,
                    };
                    if let Some((text, is_error)) = notice {
                        self.set_notice(text, is_error);
                    }
                }
            }
            Target::Turn {
                conversation,
                message,
            } => {
                if let Some(conv) = self.conversations.get_mut(conversation) {
                    if let Some(msg) = conv.messages.get_mut(message) {
                        msg.status = match &outcome {
                            Outcome::Completed => MessageStatus::Done,
                            Outcome::Cancelled => MessageStatus::Cancelled,
                            Outcome::TimedOut => {
                                MessageStatus::Failed("generation timed out".into())
                            }
                            Outcome::Failed(reason) => MessageStatus::Failed(reason.clone()),
                            _ => MessageStatus::Failed(outcome.label().into()),
                        };
                    }
                    if conv.running == Some(parent) {
                        conv.running = None;
                    }
                    // A failure never stops the queue: the next message starts.
                    if conv.running.is_none()
                        && let Some(next) = conv.queue.pop_front()
                    {
                        self.start_turn(conversation, next.text, now, fx);
                    }
                }
            }
        }
    }

    /// Cancel a request and everything under it; a parent's pipeline stops.
    fn cancel_tree(&mut self, id: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let root = match self.registry.live(id).and_then(|r| r.parent) {
            Some(parent) if self.jobs.contains_key(&parent) => parent,
            _ => id,
        };
        let children = self
            .registry
            .live(root)
            .map(|r| r.children.clone())
            .unwrap_or_default();
        for child in children {
            if self.registry.is_live(child) {
                self.finish(child, Outcome::Cancelled, now, fx);
            }
        }
        if self.jobs.contains_key(&root) {
            self.settle_parent(root, now, fx);
        } else if self.registry.is_live(root) {
            self.finish(root, Outcome::Cancelled, now, fx);
        }
        self.set_notice(format!("cancelled {}", root.short()), false);
    }

    fn with_target(
        &mut self,
        target: Target,
        f: impl FnOnce(&mut Vec<Passage>, &mut Option<String>),
    ) {
        match target {
            Target::Scenario(index) => {
                if let Some(entry) = self.scenarios.get_mut(index) {
                    f(&mut entry.passages, &mut entry.no_lore);
                }
            }
            Target::Turn {
                conversation,
                message,
            } => {
                if let Some(msg) = self
                    .conversations
                    .get_mut(conversation)
                    .and_then(|c| c.messages.get_mut(message))
                {
                    f(&mut msg.passages, &mut msg.no_lore);
                }
            }
        }
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
mod tests;
