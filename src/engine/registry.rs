//! The request registry: the only authority on whether a result is still
//! wanted. Live requests sit in a map; a request that reaches its final state
//! moves to a bounded history ring (for the inspector) and can never change
//! again. A result for an id that is not live is a late drop, counted on the
//! request when it is still in the ring, and never applied.
//!
//! Invariants: `live` holds only non-final requests; every request leaves
//! `live` exactly once, through [`Registry::finish`]; `history` and `events`
//! never exceed their capacities.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde::Serialize;

use super::request::{Kind, Outcome, Phase, Request, RequestId, millis};

/// One lifecycle event, as shown in the event feed and exported with `--json`.
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
    pub backend: String,
    /// What happened: "dispatched", "completed", "late drop: ...".
    pub event: String,
}

#[derive(Debug)]
pub struct Registry {
    live: HashMap<RequestId, Request>,
    history: VecDeque<Request>,
    history_cap: usize,
    events: VecDeque<LifecycleEvent>,
    events_cap: usize,
    next_seq: u64,
    origin: Instant,
}

impl Registry {
    pub fn new(origin: Instant, history_cap: usize) -> Self {
        Self {
            live: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            events: VecDeque::new(),
            events_cap: 2_000,
            next_seq: 0,
            origin,
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn insert(&mut self, request: Request) {
        if let Some(parent) = request.parent
            && let Some(parent) = self.live.get_mut(&parent)
        {
            parent.children.push(request.id);
        }
        self.live.insert(request.id, request);
    }

    pub fn is_live(&self, id: RequestId) -> bool {
        self.live.contains_key(&id)
    }

    pub fn live(&self, id: RequestId) -> Option<&Request> {
        self.live.get(&id)
    }

    pub fn live_mut(&mut self, id: RequestId) -> Option<&mut Request> {
        self.live.get_mut(&id)
    }

    /// A request, live or in the history ring.
    pub fn get(&self, id: RequestId) -> Option<&Request> {
        self.live
            .get(&id)
            .or_else(|| self.history.iter().rev().find(|r| r.id == id))
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    pub fn events_len(&self) -> usize {
        self.events.len()
    }

    /// Every request the registry still knows, oldest first.
    pub fn all(&self) -> Vec<&Request> {
        let mut all: Vec<&Request> = self.history.iter().chain(self.live.values()).collect();
        all.sort_by_key(|r| r.seq);
        all
    }

    pub fn live_requests(&self) -> impl Iterator<Item = &Request> {
        self.live.values()
    }

    pub fn events(&self) -> &VecDeque<LifecycleEvent> {
        &self.events
    }

    /// The earliest deadline among live requests.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.live.values().filter_map(|r| r.deadline).min()
    }

    /// Live requests whose deadline is at or before `now`, oldest first.
    pub fn expired(&self, now: Instant) -> Vec<RequestId> {
        let mut ids: Vec<(u64, RequestId)> = self
            .live
            .values()
            .filter(|r| r.deadline.is_some_and(|d| d <= now))
            .map(|r| (r.seq, r.id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Record an event on a live request's timeline and in the feed.
    pub fn record(&mut self, id: RequestId, now: Instant, what: impl Into<String>) {
        let what = what.into();
        if let Some(request) = self.live.get_mut(&id) {
            request.note(now, what.clone());
            let event = event_for(request, now, self.origin, what);
            self.push_event(event);
        }
    }

    /// Move a live request to its final state. Returns the finished request,
    /// or `None` when it was not live (then nothing changes).
    pub fn finish(&mut self, id: RequestId, outcome: Outcome, now: Instant) -> Option<&Request> {
        let mut request = self.live.remove(&id)?;
        let what = match &outcome {
            Outcome::Failed(reason) => format!("failed: {reason}"),
            Outcome::Joined(leader) => format!("joined {}", leader.short()),
            other => other.label().to_string(),
        };
        request.phase = Phase::Done(outcome);
        request.ended = Some(now);
        request.deadline = None;
        request.note(now, what.clone());
        let event = event_for(&request, now, self.origin, what);
        self.push_event(event);
        tracing::info!(
            id = %request.id,
            kind = request.kind.label(),
            backend = %request.backend,
            outcome = request.phase.label(),
            elapsed_ms = millis(request.elapsed(now)),
            "request finished"
        );
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(request);
        self.history.back()
    }

    /// Record `child` under `parent` (restored requests), once.
    pub fn add_child(&mut self, parent: RequestId, child: RequestId) {
        let parent = self
            .history
            .iter_mut()
            .find(|r| r.id == parent)
            .or_else(|| self.live.get_mut(&parent));
        if let Some(parent) = parent
            && !parent.children.contains(&child)
        {
            parent.children.push(child);
        }
    }

    /// Put a finished request from an earlier run (a reopened session's
    /// inspector history) into the history ring. It is never live; one
    /// already known is left as it is.
    pub fn restore(&mut self, mut request: Request) {
        if self.get(request.id).is_some() || request.outcome().is_none() {
            return;
        }
        request.seq = self.next_seq();
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(request);
    }

    /// A result for `id` arrived but `id` is not live: drop it and say so.
    /// Returns the event text.
    pub fn late_drop(&mut self, id: RequestId, backend: &str, what: &str, now: Instant) -> String {
        let found = self.history.iter_mut().rev().find(|r| r.id == id);
        let (text, event) = match found {
            Some(request) => {
                request.late_drops += 1;
                let ended = request.ended.unwrap_or(now);
                let text = format!(
                    "late drop: {what} arrived {} after the request ended ({})",
                    super::request::format_duration(now.saturating_duration_since(ended)),
                    request.phase.label()
                );
                request.note(now, text.clone());
                let event = event_for(request, now, self.origin, text.clone());
                (text, event)
            }
            None => {
                // Older than the history ring: still a late drop, never "unknown".
                let text = format!("late drop: {what} for a request that ended long ago");
                let event = LifecycleEvent {
                    at: now,
                    t_ms: millis(now.saturating_duration_since(self.origin)),
                    id: Some(id),
                    parent: None,
                    kind: None,
                    backend: backend.to_string(),
                    event: text.clone(),
                };
                (text, event)
            }
        };
        tracing::warn!(id = %id, backend, "{text}");
        self.push_event(event);
        text
    }

    /// An event about a backend rather than one request.
    pub fn backend_event(&mut self, backend: &str, now: Instant, what: impl Into<String>) {
        let what = what.into();
        tracing::info!(backend, "{what}");
        self.push_event(LifecycleEvent {
            at: now,
            t_ms: millis(now.saturating_duration_since(self.origin)),
            id: None,
            parent: None,
            kind: None,
            backend: backend.to_string(),
            event: what,
        });
    }

    fn push_event(&mut self, event: LifecycleEvent) {
        tracing::debug!(id = ?event.id.map(|id| id.to_string()), kind = event.kind.map_or("?", Kind::label), backend = %event.backend, event = %event.event, "lifecycle");
        if self.events.len() == self.events_cap {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

fn event_for(request: &Request, now: Instant, origin: Instant, event: String) -> LifecycleEvent {
    LifecycleEvent {
        at: now,
        t_ms: millis(now.saturating_duration_since(origin)),
        id: Some(request.id),
        parent: request.parent,
        kind: Some(request.kind),
        backend: request.backend.clone(),
        event,
    }
}
