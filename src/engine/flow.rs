//! How a backend request moves: submission (de-duplication), admission
//! (breaker, concurrency slot, rate token, else the FIFO), dispatch, results,
//! retries, expiry, and its one final state; and how a child's end moves its
//! parent's pipeline on.
//!
//! Invariants kept here: a request holds a slot exactly while it is
//! `Dispatched` or `Streaming`; it is in its backend's FIFO exactly while it
//! is `Queued` for a slot or a token; `finish` is the only way out and
//! releases both; a result is applied only to a live request. The slot
//! count, the FIFO and the observed-call cap are the backend's own
//! ([`super::limits::Backend`]): this file asks it, never reaches in.

use std::time::{Duration, Instant};

use rand::Rng;
use ulid::Ulid;

use super::breaker::{Admission, Transition};
use super::event::{EventKind, FallbackTo, LateAfter};
use super::limits::Gate;
use super::request::{DeadlinePolicy, Kind, Outcome, Phase, Request, RequestId, Shared, millis};
use super::retry::Decision;
use super::workspace::{ConversationId, MessageStatus, ScenarioStatus};
use super::{Call, DedupKey, Effect, Engine, Target, same_retrieval, spoken_duration};
use crate::domain::{BackendError, ErrorClass, Passage};

impl Engine {
    // ----- creation and admission -------------------------------------------

    pub(super) fn new_request(
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
            .saturating_add(millis(now.saturating_duration_since(self.origin)));
        let random = self.rng.random::<u128>() & ((1u128 << 80) - 1);
        let id = RequestId(Ulid::from_parts(wall_ms, random));
        let seq = self.registry.next_seq();
        // The deadline runs from submission: time spent queued for a slot or
        // waiting between retries counts, so nothing waits forever.
        let conversation = parent
            .and_then(|p| self.registry.live(p))
            .and_then(|p| p.conversation);
        let deadline = match policy {
            DeadlinePolicy::Total(total) => Some(now + total),
            DeadlinePolicy::Streaming { first_token, .. } => Some(now + first_token),
            DeadlinePolicy::Children | DeadlinePolicy::Unbounded => None,
        };
        // Parents are not calls: no backend entry, one shared name.
        let is_parent = kind == Kind::Scenario || kind == Kind::Turn;
        if !is_parent && !self.backends.contains_key(backend) {
            let policy = self.cfg.policy_for(backend);
            self.backends.insert(
                backend.to_string(),
                super::limits::Backend::new(backend, policy),
            );
        }
        let backend = match self.backends.get(backend) {
            Some(b) if !is_parent => b.name().clone(),
            _ if backend == super::PIPELINE_BACKEND => self.pipeline_name.clone(),
            _ => Shared::from(backend),
        };
        let label: Shared = match label.char_indices().nth(200) {
            Some((end, _)) => Shared::from(&label[..end]),
            None => Shared::from(label),
        };
        let mut request = Request {
            id,
            seq,
            kind,
            backend,
            parent,
            children: Vec::new(),
            conversation,
            label: label.clone(),
            created: now,
            dispatched: None,
            ended: None,
            policy,
            deadline,
            phase: Phase::Queued,
            attempt: 0,
            late_drops: 0,
            timeline: Vec::new(),
            progress: None,
            restored: false,
        };
        request.note(now, EventKind::Created { label });
        tracing::info!(id = %id, kind = kind.label(), backend = %request.backend, parent = ?parent.map(|p| p.to_string()), "request created");
        self.registry.insert(request);
        id
    }

    /// A turn or scenario: the parent of a pipeline, working for
    /// `conversation` (its children inherit it).
    pub(super) fn new_pipeline(
        &mut self,
        kind: Kind,
        conversation: ConversationId,
        label: &str,
        now: Instant,
    ) -> RequestId {
        let id = self.new_request(
            kind,
            super::PIPELINE_BACKEND,
            None,
            label,
            DeadlinePolicy::Children,
            now,
        );
        self.registry.set_conversation(id, conversation);
        id
    }

    /// Start a backend request: join an identical in-flight retrieval, or
    /// go through admission.
    pub(super) fn submit(&mut self, id: RequestId, call: Call, now: Instant, fx: &mut Vec<Effect>) {
        let Some(backend) = self.registry.live(id).map(|r| r.backend.clone()) else {
            return;
        };
        if let Call::Retrieve(query) = &call {
            let key = DedupKey::new(&backend, query);
            let leader = self.dedup.get(&key).copied().filter(|&leader| {
                self.registry
                    .live(leader)
                    .is_some_and(|l| l.backend == backend)
                    && matches!(self.calls.get(&leader),
                        Some(Call::Retrieve(asked)) if same_retrieval(asked, query))
            });
            match leader {
                Some(leader) => {
                    self.followers.entry(leader).or_default().push(id);
                    self.calls.insert(id, call);
                    self.registry.record(id, now, EventKind::Joined { leader });
                    return;
                }
                _ => {
                    self.dedup.insert(key, id);
                }
            }
        }
        self.calls.insert(id, call);
        self.admit(id, false, now, fx);
    }

    /// Breaker, then slot and rate token; else wait in FIFO order.
    /// `from_queue` is set when `pump` hands over the FIFO's head.
    fn admit(&mut self, id: RequestId, from_queue: bool, now: Instant, fx: &mut Vec<Effect>) {
        let Some(request) = self.registry.live(id) else {
            return;
        };
        let backend = request.backend.clone();
        // Past its deadline: expiry ends it in this same step; never start it.
        let expired = request.deadline.is_some_and(|d| d <= now);
        let Some(b) = self.backends.get_mut(&*backend) else {
            return;
        };
        if expired {
            if from_queue {
                b.enqueue(id, true);
            }
            return;
        }
        let transition = b.breaker.tick(now);
        let rejecting = b.breaker.is_rejecting();
        self.publish(&backend, transition, now);
        if rejecting {
            self.short_circuit(id, now, fx);
            return;
        }
        let Some(b) = self.backends.get_mut(&*backend) else {
            return;
        };
        if let Gate::Wait(reason) = b.gate(from_queue, now) {
            let why = EventKind::Queued { reason };
            b.enqueue(id, from_queue);
            if let Some(r) = self.registry.live_mut(id) {
                r.phase = Phase::Queued;
            }
            if !from_queue {
                self.registry.record(id, now, why);
            }
            return;
        }
        let (admission, transition) = b.breaker.admit(id, now);
        self.publish(&backend, transition, now);
        match admission {
            Admission::Reject => self.short_circuit(id, now, fx),
            Admission::Probe => {
                self.registry.record(id, now, EventKind::HalfOpenProbe);
                self.dispatch(id, now, fx);
            }
            Admission::Allow => self.dispatch(id, now, fx),
        }
    }

    /// Hand free slots (and rate tokens) to the head of the FIFO.
    pub(super) fn pump(&mut self, backend: &str, now: Instant, fx: &mut Vec<Effect>) {
        loop {
            let Some(b) = self.backends.get_mut(backend) else {
                return;
            };
            let Some(head) = b.head() else {
                return;
            };
            if !self.registry.is_live(head) {
                // `finish` withdraws what ends; this only guards the FIFO.
                let registry = &self.registry;
                b.drop_dead(|id| registry.is_live(id));
                continue;
            }
            if !b.head_may_start(now) {
                return;
            }
            b.dequeue();
            self.admit(head, true, now, fx);
            // admit put it back: no progress is possible now.
            if self
                .backends
                .get_mut(backend)
                .is_some_and(|b| b.head() == Some(head))
            {
                return;
            }
        }
    }

    fn dispatch(&mut self, id: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(call) = self.calls.get(&id).cloned() else {
            return;
        };
        let Some(request) = self.registry.live_mut(id) else {
            return;
        };
        request.attempt += 1;
        request.phase = Phase::Dispatched;
        request.dispatched.get_or_insert(now);
        let backend = request.backend.clone();
        let attempt = request.attempt;
        self.registry
            .record(id, now, EventKind::Dispatched { attempt });
        if let Some(b) = self.backends.get_mut(&*backend) {
            b.acquire();
        }
        fx.push(Effect::Dispatch {
            id,
            backend: String::from(&*backend),
            call,
        });
    }

    pub(super) fn set_phase(&mut self, id: RequestId, phase: Phase, now: Instant) {
        if let Some(request) = self.registry.live_mut(id) {
            request.dispatched.get_or_insert(now);
            request.phase = phase;
            self.registry.record(id, now, EventKind::Working);
        }
    }

    fn publish(&mut self, backend: &str, transition: Option<Transition>, now: Instant) {
        if let Some(t) = transition {
            self.registry.backend_event(
                backend,
                now,
                EventKind::breaker(t.from.to_string(), t.to.to_string(), t.why),
            );
        }
    }

    // ----- results ------------------------------------------------------------

    pub(super) fn on_retrieved(
        &mut self,
        id: RequestId,
        backend: &str,
        result: Result<Vec<Passage>, BackendError>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.is_in_flight(id) {
            self.late_result(id, backend, "retrieval result", now, fx);
            return;
        }
        match result {
            Ok(passages) => {
                self.attempt_succeeded(id, now);
                self.registry.record(
                    id,
                    now,
                    EventKind::PassagesRetrieved {
                        count: passages.len(),
                    },
                );
                self.finish(id, Outcome::Completed, now, fx);
                let lore = if passages.is_empty() {
                    Err("no lore matched".to_string())
                } else {
                    Ok(passages)
                };
                self.retrieval_ended(id, lore, now, fx);
            }
            Err(error) => self.attempt_failed(id, error, now, fx),
        }
    }

    /// An ingest reported progress: shown in its row and detail.
    pub(super) fn on_ingest_progress(&mut self, id: RequestId, progress: String) {
        if let Some(request) = self.registry.live_mut(id) {
            request.progress = Some(progress.into_boxed_str());
        }
    }

    /// An ingest ended. A failure is the ingest's own (bad path, locked
    /// knowledge base): no retry, no breaker.
    pub(super) fn on_ingested(
        &mut self,
        id: RequestId,
        backend: &str,
        result: Result<String, String>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.is_in_flight(id) {
            self.late_result(id, backend, "ingest result", now, fx);
            return;
        }
        match result {
            Ok(summary) => {
                self.registry.record(
                    id,
                    now,
                    EventKind::Ingested {
                        summary: summary.clone(),
                    },
                );
                self.finish(id, Outcome::Completed, now, fx);
                self.set_notice(summary, false);
            }
            Err(error) => {
                self.finish(id, Outcome::Failed(error.clone()), now, fx);
                self.set_notice(format!("kb add failed: {error}"), true);
            }
        }
    }

    pub(super) fn on_embedded(
        &mut self,
        id: RequestId,
        backend: &str,
        result: Result<Vec<Vec<f32>>, BackendError>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.is_in_flight(id) {
            self.late_result(id, backend, "embedding", now, fx);
            return;
        }
        if let Some(&(batch, count)) = self.chunk_batches.get(&id) {
            match result {
                Ok(vectors) if vectors.len() == count => {
                    self.attempt_succeeded(id, now);
                    self.registry
                        .record(id, now, EventKind::ChunkVectors { count });
                    self.chunk_batches.remove(&id);
                    self.finish(id, Outcome::Completed, now, fx);
                    fx.push(Effect::ChunkVectors {
                        batch,
                        result: Ok(vectors),
                    });
                }
                Ok(vectors) => {
                    let error = BackendError::permanent(format!(
                        "{} vectors for {count} texts",
                        vectors.len()
                    ));
                    self.attempt_failed(id, error, now, fx);
                }
                Err(error) => self.attempt_failed(id, error, now, fx),
            }
            return;
        }
        match result {
            Ok(mut vectors) if vectors.len() == 1 => {
                self.attempt_succeeded(id, now);
                let vector = vectors.pop().unwrap_or_default();
                self.registry.record(
                    id,
                    now,
                    EventKind::Embedded {
                        dimensions: vector.len(),
                    },
                );
                self.finish(id, Outcome::Completed, now, fx);
                self.embed_ended(id, Ok(vector), now, fx);
            }
            Ok(vectors) => {
                let error =
                    BackendError::permanent(format!("{} vectors for 1 text", vectors.len()));
                self.attempt_failed(id, error, now, fx);
            }
            Err(error) => self.attempt_failed(id, error, now, fx),
        }
    }

    /// The query's embedding step ended: retrieval goes on, by meaning and
    /// words when there is a vector, by words alone when there is not.
    fn embed_ended(
        &mut self,
        id: RequestId,
        vector: Result<Vec<f32>, String>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(parent) = self.registry.get(id).and_then(|r| r.parent) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&parent) else {
            return;
        };
        match vector {
            Ok(vector) => job.vector = Some(vector),
            Err(reason) => {
                job.vector = None;
                self.registry.record(
                    parent,
                    now,
                    EventKind::Fallback {
                        to: FallbackTo::KeywordOnly,
                        reason,
                    },
                );
            }
        }
        self.start_retrieval(parent, now, fx);
    }

    pub(super) fn on_token(
        &mut self,
        id: RequestId,
        backend: &str,
        text: String,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        // Streaming now, its first token recorded, its deadline moved on:
        // one registry lookup per token.
        let Some(parent) = self.registry.token(id, now) else {
            self.late_result(id, backend, "token", now, fx);
            return;
        };
        let Some(parent) = parent else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&parent) else {
            return;
        };
        let target = job.target;
        // A streaming reply is saved when a token comes at least
        // REPLY_SAVE_EVERY after its last save: never once per token.
        let save = matches!(target, Target::Turn { .. })
            && job
                .saved_at
                .is_none_or(|at| now >= at + super::REPLY_SAVE_EVERY);
        if save {
            job.saved_at = Some(now);
        }
        if let Some(t) = self.target_mut(target) {
            t.text.push_str(&text);
        }
        if save
            && let Target::Turn {
                conversation,
                message,
            } = target
        {
            fx.extend(self.save_reply(conversation, message));
        }
    }

    pub(super) fn on_finished(
        &mut self,
        id: RequestId,
        backend: &str,
        result: Result<(), BackendError>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.is_in_flight(id) {
            self.late_result(id, backend, "end of stream", now, fx);
            return;
        }
        match result {
            Ok(()) => {
                self.attempt_succeeded(id, now);
                let parent = self.registry.live(id).and_then(|r| r.parent);
                self.finish(id, Outcome::Completed, now, fx);
                if let Some(parent) = parent {
                    self.settle_parent(parent, now, fx);
                }
            }
            Err(error) => self.attempt_failed(id, error, now, fx),
        }
    }

    /// A result is wanted only from a request that has a call out: live and
    /// dispatched or streaming (a retrying request's old attempt is over).
    pub(super) fn is_in_flight(&self, id: RequestId) -> bool {
        self.registry
            .live(id)
            .is_some_and(|r| matches!(r.phase, Phase::Dispatched | Phase::Streaming))
    }

    fn attempt_succeeded(&mut self, id: RequestId, now: Instant) {
        let Some(backend) = self.registry.live(id).map(|r| r.backend.clone()) else {
            return;
        };
        if let Some(b) = self.backends.get_mut(&*backend) {
            let t = b.breaker.on_success(id);
            self.publish(&backend, t, now);
        }
    }

    /// One attempt failed: tell the breaker, then retry or give up.
    fn attempt_failed(
        &mut self,
        id: RequestId,
        error: BackendError,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(request) = self.registry.live(id) else {
            return;
        };
        let backend = request.backend.clone();
        let streamed = request.phase == Phase::Streaming;
        let retries_done = request.attempt.saturating_sub(1);
        let deadline = request.deadline.filter(|_| !streamed);
        let message = crate::sanitize::one_line(&error.message);
        let Some(b) = self.backends.get_mut(&*backend) else {
            return;
        };
        // Transient errors say the backend is unwell; a permanent one (a 4xx)
        // is an answer, so the backend is up.
        let t = match error.class {
            ErrorClass::Transient => b.breaker.on_failure(id, now, &message),
            ErrorClass::Permanent => b.breaker.on_success(id),
        };
        let policy = b.policy.retry;
        self.publish(&backend, t, now);
        let decision = if streamed {
            // Tokens already reached the user: a retry would repeat them.
            Decision::GiveUp(format!("{message} (after partial output)"))
        } else {
            let error = BackendError {
                message: message.clone(),
                ..error
            };
            policy.decide(&error, retries_done, now, deadline, &mut self.rng)
        };
        match decision {
            Decision::RetryIn(delay) => {
                self.release_slot(id);
                let until = now + delay;
                if let Some(r) = self.registry.live_mut(id) {
                    r.phase = Phase::Retrying { until };
                    self.retrying.insert((until, r.seq, id));
                }
                if let Some(b) = self.backends.get_mut(&*backend) {
                    b.metrics.retries += 1;
                }
                let next = retries_done + 2;
                self.registry.record(
                    id,
                    now,
                    EventKind::RetryScheduled {
                        retry: next - 1,
                        delay_ms: millis(delay),
                        reason: message.clone(),
                    },
                );
                self.pump(&backend, now, fx);
            }
            Decision::GiveUp(reason) => {
                let kind = self.registry.live(id).map(|r| r.kind);
                let parent = self.registry.live(id).and_then(|r| r.parent);
                self.finish(id, Outcome::Failed(reason.clone()), now, fx);
                match kind {
                    Some(Kind::Retrieve) => self.retrieval_ended(
                        id,
                        Err(format!("retrieval failed: {reason}")),
                        now,
                        fx,
                    ),
                    Some(Kind::Embed) => {
                        self.embed_ended(id, Err(format!("embedding failed: {reason}")), now, fx)
                    }
                    _ => {
                        if let Some(parent) = parent {
                            self.settle_parent(parent, now, fx);
                        }
                    }
                }
            }
        }
    }

    fn short_circuit(&mut self, id: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(request) = self.registry.live(id) else {
            return;
        };
        let kind = request.kind;
        let parent = request.parent;
        let backend = request.backend.clone();
        self.finish(id, Outcome::ShortCircuited, now, fx);
        if kind == Kind::Retrieve {
            self.retrieval_ended(
                id,
                Err(format!("retrieval skipped: breaker open on {backend}")),
                now,
                fx,
            );
        } else if kind == Kind::Embed {
            self.embed_ended(id, Err(format!("breaker open on {backend}")), now, fx);
        } else if let Some(parent) = parent {
            self.settle_parent(parent, now, fx);
        }
    }

    // ----- time -----------------------------------------------------------------

    /// Everything time makes due: breakers leaving Open, deadlines, retries
    /// whose backoff is over, rate tokens for waiting requests.
    pub(super) fn advance(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        // Nothing is allocated here unless something changes, and the
        // backends are walked once when nothing is due: this runs twice per
        // input.
        let breaker_due =
            |b: &super::limits::Backend| b.breaker.next_change().is_some_and(|at| at <= now);
        let (breakers, waiting) = self
            .backends
            .values()
            .fold((false, false), |(due, waiting), b| {
                (due || breaker_due(b), waiting || b.waiting_len() > 0)
            });
        if breakers {
            let transitions: Vec<(String, Transition)> = self
                .backends
                .iter_mut()
                .filter_map(|(name, b)| b.breaker.tick(now).map(|t| (name.clone(), t)))
                .collect();
            for (name, t) in transitions {
                self.publish(&name, Some(t), now);
            }
        }
        let mut changed = self.expire(now, fx);
        if !self.observed.is_empty() {
            let mut graces: Vec<(Instant, RequestId)> = self
                .observed
                .iter()
                .filter(|(_, o)| o.until <= now)
                .map(|(id, o)| (o.until, *id))
                .collect();
            graces.sort();
            changed |= !graces.is_empty();
            for (_, id) in graces {
                self.abandon(id, now, fx);
            }
        }
        let mut due: Vec<(u64, RequestId)> = Vec::new();
        while let Some(&(until, seq, id)) = self.retrying.first()
            && until <= now
        {
            self.retrying.pop_first();
            due.push((seq, id));
        }
        due.sort();
        changed |= !due.is_empty();
        for (_, id) in due {
            self.admit(id, false, now, fx);
        }
        // A backend with nobody waiting has nothing to hand out. When
        // nothing above fired, `waiting` (read before) still holds.
        if !waiting && (!changed || self.backends.values().all(|b| b.waiting_len() == 0)) {
            return;
        }
        let waiting: Vec<String> = self
            .backends
            .iter()
            .filter(|(_, b)| b.waiting_len() > 0)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &waiting {
            self.pump(name, now, fx);
        }
    }

    /// End every request past its deadline; whether any was.
    fn expire(&mut self, now: Instant, fx: &mut Vec<Effect>) -> bool {
        let expired = self.registry.expired(now);
        let any = !expired.is_empty();
        for id in expired {
            let Some(request) = self.registry.live(id) else {
                continue;
            };
            let kind = request.kind;
            let parent = request.parent;
            let backend = request.backend.clone();
            let streaming = request.phase == Phase::Streaming;
            let had_call = matches!(request.phase, Phase::Dispatched | Phase::Streaming);
            let waited = match request.policy {
                DeadlinePolicy::Total(total) => total,
                DeadlinePolicy::Streaming { first_token, idle } => {
                    if streaming {
                        idle
                    } else {
                        first_token
                    }
                }
                DeadlinePolicy::Children | DeadlinePolicy::Unbounded => Duration::ZERO,
            };
            if had_call && let Some(b) = self.backends.get_mut(&*backend) {
                let t = b.breaker.on_failure(id, now, "timed out");
                self.publish(&backend, t, now);
            }
            self.finish(id, Outcome::TimedOut, now, fx);
            match kind {
                Kind::Retrieve => {
                    let reason = format!("retrieval timed out after {}", spoken_duration(waited));
                    self.retrieval_ended(id, Err(reason), now, fx);
                }
                Kind::Embed => {
                    let reason = format!("embedding timed out after {}", spoken_duration(waited));
                    self.embed_ended(id, Err(reason), now, fx);
                }
                Kind::Chat | Kind::Generate => {
                    let what = if streaming {
                        format!("no token for {}", spoken_duration(waited))
                    } else {
                        format!("no first token within {}", spoken_duration(waited))
                    };
                    if let Some(parent) = parent {
                        self.registry
                            .record(parent, now, EventKind::ChildTimedOut { what });
                        self.settle_parent(parent, now, fx);
                    }
                }
                Kind::Scenario | Kind::Turn | Kind::Ingest => {}
            }
        }
        any
    }

    // ----- endings ----------------------------------------------------------------

    fn release_slot(&mut self, id: RequestId) {
        let Some(request) = self.registry.live(id) else {
            return;
        };
        if matches!(request.phase, Phase::Dispatched | Phase::Streaming)
            && let Some(b) = self.backends.get_mut(&*request.backend)
        {
            b.release();
        }
    }

    /// End a live request: its slot or queue place, breaker probe, metrics,
    /// de-duplication entry, and an abort of a task still running. Frees
    /// room for the next waiting request.
    pub(super) fn finish(
        &mut self,
        id: RequestId,
        outcome: Outcome,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(request) = self.registry.live(id) else {
            return;
        };
        let phase = request.phase.clone();
        let seq = request.seq;
        let backend = request.backend.clone();
        let kind = request.kind;
        let deadline = request.deadline.unwrap_or(now);
        // A chunk batch that ends any other way than with its vectors
        // (failed for good, timed out, cancelled, short-circuited) is
        // reported so its keeper stops waiting.
        if let Some((batch, _)) = self.chunk_batches.remove(&id) {
            fx.push(Effect::ChunkVectors {
                batch,
                result: Err(match &outcome {
                    Outcome::Failed(reason) => format!("embedding failed: {reason}"),
                    other => format!("embedding {}", other.label()),
                }),
            });
        }
        let running = matches!(phase, Phase::Dispatched | Phase::Streaming);
        if let Phase::Retrying { until } = phase {
            self.retrying.remove(&(until, seq, id));
        }
        self.release_slot(id);
        let abort = running && matches!(outcome, Outcome::TimedOut | Outcome::Cancelled);
        let cancelled = outcome == Outcome::Cancelled;
        let Some(done) = self.registry.finish(id, outcome, now) else {
            return;
        };
        let summary = done.summary(self.origin, self.wall_origin_ms);
        let latency = done
            .ended
            .unwrap_or(now)
            .saturating_duration_since(done.dispatched.unwrap_or(done.created));
        let outcome = done.outcome().cloned().unwrap_or(Outcome::Cancelled);
        if let Some(summary) = summary {
            self.keep_summary(summary, now);
        }
        if kind == Kind::Scenario || kind == Kind::Turn {
            return;
        }
        if let Some(b) = self.backends.get_mut(&*backend) {
            if phase == Phase::Queued {
                b.withdraw(id);
            }
            if cancelled {
                b.breaker.on_abandon(id);
            }
            b.metrics.record_outcome(&outcome, latency);
        }
        if abort {
            fx.push(self.abort_or_observe(id, &backend, &outcome, deadline, now));
        }
        if let Some(Call::Retrieve(query)) = self.calls.remove(&id) {
            let key = DedupKey::new(&backend, &query);
            if self.dedup.get(&key) == Some(&id) {
                self.dedup.remove(&key);
            }
        }
        self.pump(&backend, now, fx);
    }

    /// A running call's request ended early: abort the call, unless it
    /// timed out on a backend that observes late calls and is under its
    /// `late_observe_max`; then it runs on, detached, until its grace ends.
    fn abort_or_observe(
        &mut self,
        id: RequestId,
        backend: &str,
        outcome: &Outcome,
        deadline: Instant,
        now: Instant,
    ) -> Effect {
        let Some(b) = self.backends.get_mut(backend) else {
            return Effect::Abort { id };
        };
        let policy = b.policy;
        if *outcome != Outcome::TimedOut || !b.try_observe() {
            return Effect::Abort { id };
        }
        let until = now + policy.late_grace;
        self.observed.insert(
            id,
            super::Observed {
                backend: backend.to_string(),
                deadline,
                until,
            },
        );
        self.registry.note_ended(
            id,
            backend,
            now,
            EventKind::Observed {
                grace_ms: millis(policy.late_grace),
            },
            false,
        );
        Effect::Observe { id, until }
    }

    /// A result for a request that is not in flight: an observed call's
    /// late arrival (recorded, counted, never applied; a stream is aborted
    /// at its first late token), or else a late drop.
    fn late_result(
        &mut self,
        id: RequestId,
        backend: &str,
        what: &str,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(observed) = self.observed.remove(&id) else {
            self.late_drop(id, backend, what, now);
            return;
        };
        let late_by = now.saturating_duration_since(observed.deadline);
        if let Some(b) = self.backends.get_mut(&observed.backend) {
            b.observation_ended(Some(late_by));
        }
        self.total_late_drops += 1;
        self.registry.note_ended(
            id,
            &observed.backend,
            now,
            EventKind::late_arrival(what.to_string(), LateAfter::Deadline, Some(millis(late_by))),
            true,
        );
        if what == "token" {
            fx.push(Effect::Abort { id });
        }
    }

    /// An observed call's grace ended (or loreweave is leaving): abort it,
    /// count it as abandoned.
    pub(super) fn abandon(&mut self, id: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let Some(observed) = self.observed.remove(&id) else {
            return;
        };
        if let Some(b) = self.backends.get_mut(&observed.backend) {
            b.observation_ended(None);
        }
        self.registry.note_ended(
            id,
            &observed.backend,
            now,
            EventKind::Abandoned {
                after_ms: millis(now.saturating_duration_since(observed.deadline)),
            },
            false,
        );
        fx.push(Effect::Abort { id });
    }

    pub(super) fn late_drop(&mut self, id: RequestId, backend: &str, what: &str, now: Instant) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.metrics.late_drops += 1;
        }
        self.total_late_drops += 1;
        self.registry.late_drop(id, backend, what, now);
    }

    /// A retrieval ended: its followers get the same lore (or the same
    /// failure), then its parent's pipeline moves on to generation.
    pub(super) fn retrieval_ended(
        &mut self,
        id: RequestId,
        lore: Result<Vec<Passage>, String>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        self.hand_over_followers(id, &lore, now, fx);
        let Some(parent) = self.registry.get(id).and_then(|r| r.parent) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&parent) else {
            return;
        };
        match lore {
            Ok(passages) => {
                job.passages = passages;
                job.no_lore = None;
            }
            Err(reason) => {
                job.passages.clear();
                if reason != "no lore matched" {
                    self.registry.record(
                        parent,
                        now,
                        EventKind::Fallback {
                            to: FallbackTo::NoLore,
                            reason: reason.clone(),
                        },
                    );
                }
                if let Some(job) = self.jobs.get_mut(&parent) {
                    job.no_lore = Some(reason);
                }
            }
        }
        self.start_generation(parent, now, fx);
    }

    /// Followers of an ended leader end as `joined` with its result; if the
    /// leader was cancelled, the first live follower takes over the call.
    fn hand_over_followers(
        &mut self,
        leader: RequestId,
        lore: &Result<Vec<Passage>, String>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(followers) = self.followers.remove(&leader) else {
            return;
        };
        let mut live: Vec<RequestId> = followers
            .into_iter()
            .filter(|f| self.registry.is_live(*f))
            .collect();
        if live.is_empty() {
            return;
        }
        let cancelled =
            self.registry.get(leader).and_then(|r| r.outcome()) == Some(&Outcome::Cancelled);
        if cancelled {
            let heir = live.remove(0);
            self.registry
                .record(heir, now, EventKind::TookOver { leader });
            if let Some(Call::Retrieve(query)) = self.calls.get(&heir).cloned() {
                let backend = self
                    .registry
                    .live(heir)
                    .map(|r| r.backend.clone())
                    .unwrap_or_default();
                self.dedup.insert(DedupKey::new(&backend, &query), heir);
            }
            if !live.is_empty() {
                self.followers.insert(heir, live);
            }
            self.admit(heir, false, now, fx);
            return;
        }
        for follower in live {
            self.finish(follower, Outcome::Joined(leader), now, fx);
            let lore = match lore {
                Ok(passages) => Ok(passages.clone()),
                Err(reason) => Err(reason.clone()),
            };
            self.retrieval_ended(follower, lore, now, fx);
        }
    }

    /// End a parent once every child has ended; its outcome follows the
    /// generation child's.
    pub(super) fn settle_parent(&mut self, parent: RequestId, now: Instant, fx: &mut Vec<Effect>) {
        let registry = &self.registry;
        let Some(request) = registry.live(parent) else {
            return;
        };
        if request.children.iter().any(|c| registry.is_live(*c)) {
            return;
        }
        let generation = request
            .children
            .iter()
            .filter_map(|c| registry.get(*c))
            .find(|c| matches!(c.kind, Kind::Chat | Kind::Generate));
        let outcome = match generation.and_then(|g| g.outcome()) {
            Some(Outcome::Completed) | Some(Outcome::Joined(_)) => Outcome::Completed,
            Some(Outcome::TimedOut) => Outcome::TimedOut,
            Some(Outcome::Cancelled) | None => Outcome::Cancelled,
            Some(Outcome::Failed(reason)) => {
                Outcome::Failed(format!("generation failed: {reason}"))
            }
            Some(Outcome::ShortCircuited) => {
                let backend = generation.map(|g| g.backend.clone()).unwrap_or_default();
                Outcome::Failed(format!("generation skipped: breaker open on {backend}"))
            }
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
                        other => ScenarioStatus::Failed(other.label().into()),
                    };
                    let title = entry.title();
                    let notice = match &entry.status {
                        ScenarioStatus::Done => Some((format!("scenario ready: {title}"), false)),
                        ScenarioStatus::Failed(reason) => {
                            Some((format!("scenario failed: {reason}"), true))
                        }
                        _ => None,
                    };
                    let save = self
                        .conversations
                        .contains_key(&entry.conversation)
                        .then(|| Effect::SaveScenario {
                            conversation: entry.conversation,
                            index: entry.index,
                            request: entry.request,
                            prompt: entry.prompt.clone(),
                            seed: entry.seed,
                            title,
                            markdown: entry.markdown.clone(),
                            passages: entry.passages.clone(),
                            backend: entry.backend.clone(),
                            no_lore: entry.no_lore.clone(),
                            status: entry.status.clone(),
                        });
                    fx.extend(save);
                    if let Some((text, is_error)) = notice {
                        self.set_notice(text, is_error);
                    }
                }
                // Finished: it may now make way for newer ones (it is saved).
                self.scenarios.trim();
            }
            Target::Turn {
                conversation,
                message,
            } => {
                // A closed conversation gets nothing: no save, no next turn.
                if let Some(conv) = self.conversations.get_mut(&conversation) {
                    if let Some(msg) = conv.messages.get_mut(message) {
                        msg.status = match &outcome {
                            Outcome::Completed => MessageStatus::Done,
                            Outcome::Cancelled => MessageStatus::Cancelled,
                            Outcome::TimedOut => {
                                MessageStatus::Failed("generation timed out".into())
                            }
                            Outcome::Failed(reason) => MessageStatus::Failed(reason.clone()),
                            other => MessageStatus::Failed(other.label().into()),
                        };
                    }
                    if conv.running == Some(parent) {
                        conv.running = None;
                    }
                    let ended = self.save_reply(conversation, message);
                    fx.extend(ended);
                    let Some(conv) = self.conversations.get_mut(&conversation) else {
                        return;
                    };
                    // A failure never stops the queue: the next message starts.
                    if conv.running.is_none()
                        && let Some(next) = conv.queue.pop_front()
                    {
                        self.start_turn(conversation, next.text, next.tag, now, fx);
                    }
                }
            }
        }
    }

    /// Cancel a request and everything under it; a parent's pipeline stops.
    pub(super) fn cancel_tree(&mut self, id: RequestId, now: Instant, fx: &mut Vec<Effect>) {
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
                let kind = self.registry.live(child).map(|r| r.kind);
                self.finish(child, Outcome::Cancelled, now, fx);
                if kind == Some(Kind::Retrieve) {
                    // Others joined on this call keep going without it.
                    self.hand_over_followers(child, &Err("cancelled".into()), now, fx);
                }
            }
        }
        if self.jobs.contains_key(&root) {
            self.settle_parent(root, now, fx);
        } else if self.registry.is_live(root) {
            let kind = self.registry.live(root).map(|r| r.kind);
            self.finish(root, Outcome::Cancelled, now, fx);
            if kind == Some(Kind::Retrieve) {
                self.hand_over_followers(root, &Err("cancelled".into()), now, fx);
            }
        }
        self.set_notice(format!("cancelled {}", root.short()), false);
    }
}
