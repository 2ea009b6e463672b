//! The request registry: the only authority on whether a result is still
//! wanted. Live requests sit in a map; a request that reaches its final state
//! moves to a bounded history ring (for the inspector) and can never change
//! again. A result for an id that is not live is a late drop, counted on the
//! request when it is still in the ring, and never applied.
//!
//! Invariants: `live` holds only non-final requests; every request leaves
//! `live` exactly once, through [`Registry::finish`]; `history` and `events`
//! never exceed their capacities.
//!
//! Two indexes keep the inspector's cost independent of how much is
//! retained: `in_history` finds a request in the ring by id without a scan,
//! and `roots` / `detached` keep the top-level requests in creation order as
//! requests arrive and leave, so the view never sorts the whole ring. A
//! retained request is exactly one of: a root (no parent), attached (listed
//! in the `children` of a retained root), or detached (its parent is gone,
//! is not a root, or had ended when it started).
//!
//! Deadlines are indexed by time (lanes of non-decreasing deadlines, plus a
//! tree for the rest), so expiry and the next wake-up never scan the live
//! requests, and a stream's deadline moving on after a token costs O(1).

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use super::event::{EventKind, LateAfter};
use super::request::{DeadlinePolicy, IdMap, Kind, Outcome, Phase, Request, RequestId, millis};
use super::workspace::ConversationId;

pub use super::event::LifecycleEvent;

#[derive(Debug)]
pub struct Registry {
    live: IdMap<Request>,
    history: VecDeque<Request>,
    history_cap: usize,
    /// Ring position of each request in `history`, counted from the first
    /// request ever pushed: `history[pos - evicted]`.
    in_history: IdMap<u64>,
    /// Requests pushed out of the front of the ring so far.
    evicted: u64,
    /// Retained requests without a parent, by `seq`.
    roots: BTreeSet<(u64, RequestId)>,
    /// Retained requests with a parent that are not listed under a retained
    /// root, by `seq`.
    detached: BTreeSet<(u64, RequestId)>,
    /// Live requests without a parent that work for a conversation (its
    /// turns and scenarios), by conversation then `seq`: closing one
    /// conversation finds its pipelines without a scan of every live
    /// request. Kept by [`Registry::set_conversation`] and
    /// [`Registry::finish`].
    live_roots: BTreeSet<(ConversationId, u64, RequestId)>,
    /// Deadlines of live requests that fit no lane, soonest first; never
    /// stale. A live request's deadline changes only through
    /// [`Registry::set_deadline`].
    deadlines: BTreeSet<Deadline>,
    /// Runs of deadlines in non-decreasing order, each taking a deadline no
    /// earlier than its last in O(1): a stream's idle deadline moving on
    /// after every token is the latest so far, so it never pays a tree's
    /// O(log n) (nor its cache misses) per token. Entries are checked
    /// lazily: one whose request is no longer live or whose deadline has
    /// moved is stale, skipped, dropped when it reaches the front, and all
    /// dropped when stale ones outnumber the live requests.
    ///
    /// Invariants: every live request's deadline has a valid entry here or
    /// in `deadlines`; every lane's front entry is valid; `lane_len` counts
    /// the entries of all lanes. So the soonest deadline is the least of
    /// the fronts and `deadlines`' first: exact, in O(lanes).
    lanes: Vec<VecDeque<Deadline>>,
    lane_len: usize,
    events: VecDeque<LifecycleEvent>,
    events_cap: usize,
    /// Every event since the last [`Registry::take_tapped`], when a trace
    /// or an exporter listens (unbounded between two drains; the driver
    /// drains after every input).
    tap: Option<Vec<LifecycleEvent>>,
    next_seq: u64,
    origin: Instant,
}

impl Registry {
    pub fn new(origin: Instant, history_cap: usize) -> Self {
        Self {
            live: IdMap::default(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            in_history: IdMap::default(),
            evicted: 0,
            roots: BTreeSet::new(),
            detached: BTreeSet::new(),
            live_roots: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            lanes: Vec::new(),
            lane_len: 0,
            events: VecDeque::new(),
            events_cap: 2_000,
            tap: None,
            next_seq: 0,
            origin,
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn insert(&mut self, request: Request) {
        match request.parent {
            None => {
                self.roots.insert((request.seq, request.id));
            }
            Some(parent) => {
                let mut under_root = false;
                if let Some(parent) = self.live.get_mut(&parent) {
                    parent.children.push(request.id);
                    under_root = parent.parent.is_none();
                }
                if !under_root {
                    self.detached.insert((request.seq, request.id));
                }
            }
        }
        let entry = request.deadline.map(|d| (d, request.seq, request.id));
        self.live.insert(request.id, request);
        if let Some(entry) = entry {
            self.index_deadline(entry);
        }
    }

    /// Say which conversation a live request works for (a turn's or a
    /// scenario's root; children inherit theirs when created).
    pub fn set_conversation(&mut self, id: RequestId, conversation: ConversationId) {
        let Some(request) = self.live.get_mut(&id) else {
            return;
        };
        if let Some(old) = request.conversation.replace(conversation)
            && request.parent.is_none()
        {
            self.live_roots.remove(&(old, request.seq, id));
        }
        if request.parent.is_none() {
            self.live_roots.insert((conversation, request.seq, id));
        }
    }

    /// The live pipelines (requests without a parent) of `conversation`,
    /// oldest first.
    pub fn live_roots_of(&self, conversation: ConversationId) -> Vec<RequestId> {
        self.live_roots
            .range((conversation, 0, RequestId(ulid::Ulid::nil()))..)
            .take_while(|(c, _, _)| *c == conversation)
            .map(|&(_, _, id)| id)
            .collect()
    }

    /// Move a live request's deadline (a stream's idle deadline after each
    /// token).
    pub fn set_deadline(&mut self, id: RequestId, deadline: Option<Instant>) {
        let Some(request) = self.live.get_mut(&id) else {
            return;
        };
        if request.deadline == deadline {
            return;
        }
        let old = std::mem::replace(&mut request.deadline, deadline);
        let seq = request.seq;
        self.reindex_deadline(id, seq, old, deadline);
    }

    /// A live request's deadline moved from `old` to `new` (already set on
    /// the request): its index entries follow.
    fn reindex_deadline(
        &mut self,
        id: RequestId,
        seq: u64,
        old: Option<Instant>,
        new: Option<Instant>,
    ) {
        if let Some(old) = old {
            self.unindex_deadline((old, seq, id));
        }
        if let Some(new) = new {
            self.index_deadline((new, seq, id));
        }
    }

    /// A token arrived for `id`: if it has a call out (live, dispatched or
    /// streaming), it is now streaming (its first token is recorded), and
    /// a streaming deadline moves on by the idle budget. One lookup: this
    /// runs for every token. Returns its parent (`Some(None)` for none), or
    /// `None` when it has no call out (nothing changes).
    pub fn token(&mut self, id: RequestId, now: Instant) -> Option<Option<RequestId>> {
        let request = self.live.get_mut(&id)?;
        let first = match request.phase {
            Phase::Streaming => false,
            Phase::Dispatched => true,
            _ => return None,
        };
        request.phase = Phase::Streaming;
        let parent = request.parent;
        let old = request.deadline;
        let seq = request.seq;
        let new = match request.policy {
            DeadlinePolicy::Streaming { idle, .. } => Some(now + idle),
            _ => old,
        };
        request.deadline = new;
        if first {
            request.note(now, EventKind::FirstToken);
            let event = event_for(request, now, self.origin, EventKind::FirstToken);
            self.push_event(event);
        }
        if new != old {
            self.reindex_deadline(id, seq, old, new);
        }
        Some(parent)
    }

    /// Index a live request's deadline: on the lane whose last entry is the
    /// latest not after it, else on a new lane, else in the tree.
    fn index_deadline(&mut self, entry: Deadline) {
        let mut best: Option<(usize, Option<Instant>)> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            let back = lane.back().map(|b| b.0);
            if back.is_some_and(|b| b > entry.0) {
                continue;
            }
            if best.is_none_or(|(_, best_back)| back > best_back) {
                best = Some((i, back));
            }
        }
        let lane = match best {
            Some((i, _)) => i,
            None if self.lanes.len() < MAX_LANES => {
                self.lanes.push(VecDeque::new());
                self.lanes.len() - 1
            }
            None => {
                self.deadlines.insert(entry);
                return;
            }
        };
        self.lanes[lane].push_back(entry);
        self.lane_len += 1;
        if self.lane_len > 2 * self.live.len() + LANE_SLACK {
            let live = &self.live;
            for lane in &mut self.lanes {
                lane.retain(|e| is_current(live, e));
            }
            self.lane_len = self.lanes.iter().map(VecDeque::len).sum();
        }
    }

    /// `entry` just went stale (its request ended or its deadline moved):
    /// out of the tree, or off the front of its lane with the stale
    /// entries behind it.
    /// (A deadline that moved away and back has an entry in two places:
    /// every lane is looked at.)
    fn unindex_deadline(&mut self, entry: Deadline) {
        if !self.deadlines.is_empty() {
            self.deadlines.remove(&entry);
        }
        let live = &self.live;
        for lane in &mut self.lanes {
            if lane.front() == Some(&entry) {
                while lane.front().is_some_and(|e| !is_current(live, e)) {
                    lane.pop_front();
                    self.lane_len -= 1;
                }
            }
        }
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
        self.live.get(&id).or_else(|| {
            let slot = self.history_slot(id)?;
            self.history.get(slot)
        })
    }

    /// Where `id` sits in the history ring.
    fn history_slot(&self, id: RequestId) -> Option<usize> {
        let pos = self.in_history.get(&id)?;
        usize::try_from(pos.checked_sub(self.evicted)?).ok()
    }

    /// How many requests are retained (live and in the history ring).
    pub fn retained_len(&self) -> usize {
        self.live.len() + self.history.len()
    }

    /// Retained requests without a parent, newest first.
    pub fn roots_newest_first(&self) -> impl Iterator<Item = &Request> {
        self.roots.iter().rev().filter_map(|(_, id)| self.get(*id))
    }

    /// Retained requests with a parent that are not listed under a retained
    /// root (the parent left the history ring, or is not a root, or had
    /// ended when the child started), newest first.
    pub fn detached_newest_first(&self) -> impl Iterator<Item = &Request> {
        self.detached
            .iter()
            .rev()
            .filter_map(|(_, id)| self.get(*id))
    }

    /// How many retained requests [`Registry::detached_newest_first`] yields.
    pub fn detached_len(&self) -> usize {
        self.detached.len()
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
        self.lanes
            .iter()
            .filter_map(|lane| lane.front())
            .chain(self.deadlines.first())
            .map(|(deadline, _, _)| *deadline)
            .min()
    }

    /// Live requests whose deadline is at or before `now`, oldest first.
    pub fn expired(&self, now: Instant) -> Vec<RequestId> {
        // The common case, twice per input: nothing is due.
        if self.next_deadline().is_none_or(|deadline| deadline > now) {
            return Vec::new();
        }
        let due = |(deadline, _, _): &&Deadline| *deadline <= now;
        let mut ids: Vec<(u64, RequestId)> = self
            .deadlines
            .iter()
            .take_while(due)
            .chain(
                self.lanes
                    .iter()
                    .flat_map(|lane| lane.iter().take_while(due))
                    .filter(|e| is_current(&self.live, e)),
            )
            .map(|(_, seq, id)| (*seq, *id))
            .collect();
        ids.sort();
        // A deadline that moved away and back has two current entries.
        ids.dedup();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Record an event on a live request's timeline and in the feed.
    pub fn record(&mut self, id: RequestId, now: Instant, what: EventKind) {
        if let Some(request) = self.live.get_mut(&id) {
            request.note(now, what.clone());
            let event = event_for(request, now, self.origin, what);
            self.push_event(event);
        }
    }

    /// Start (or stop) keeping every event for [`Registry::take_tapped`].
    pub fn set_tap(&mut self, on: bool) {
        self.tap = on.then(Vec::new);
    }

    /// The events recorded since the last call (none when no tap is set).
    pub fn take_tapped(&mut self) -> Vec<LifecycleEvent> {
        self.tap.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Move a live request to its final state. Returns the finished request,
    /// or `None` when it was not live (then nothing changes).
    pub fn finish(&mut self, id: RequestId, outcome: Outcome, now: Instant) -> Option<&Request> {
        let mut request = self.live.remove(&id)?;
        if request.parent.is_none()
            && let Some(conversation) = request.conversation
        {
            self.live_roots.remove(&(conversation, request.seq, id));
        }
        if let Some(deadline) = request.deadline {
            self.unindex_deadline((deadline, request.seq, id));
        }
        let what = EventKind::Final {
            outcome: outcome.clone(),
        };
        request.phase = Phase::Done(outcome);
        request.ended = Some(now);
        request.deadline = None;
        request.note(now, what.clone());
        // Retained from now on, and only ever noted again for a late result:
        // keep no spare capacity.
        request.timeline.shrink_to_fit();
        request.children.shrink_to_fit();
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
        self.push_history(request);
        self.history.back()
    }

    /// Put `request` at the back of the history ring, indexed, and let the
    /// oldest go past the cap. In first, then the oldest out: a child
    /// finishing as its parent leaves the ring must be found to be detached.
    fn push_history(&mut self, request: Request) {
        self.in_history
            .insert(request.id, self.evicted + self.history.len() as u64);
        self.reserve_history();
        self.history.push_back(request);
        if self.history.len() > self.history_cap
            && let Some(gone) = self.history.pop_front()
        {
            self.forget(&gone);
        }
    }

    /// Record `child` under `parent` (restored requests), once.
    pub fn add_child(&mut self, parent: RequestId, child: RequestId) {
        let parent = match self.history_slot(parent) {
            Some(slot) => self.history.get_mut(slot),
            None => self.live.get_mut(&parent),
        };
        if let Some(parent) = parent
            && !parent.children.contains(&child)
        {
            parent.children.push(child);
        }
    }

    /// Put a finished request from an earlier run (a reopened session's
    /// inspector history) into the history ring, indexed as if it had
    /// finished here. It is never live; one already known is left as it is.
    pub fn restore(&mut self, mut request: Request) {
        if self.get(request.id).is_some() || request.outcome().is_none() {
            return;
        }
        request.seq = self.next_seq();
        match request.parent {
            None => {
                self.roots.insert((request.seq, request.id));
            }
            Some(parent) => {
                let under_root = self.get(parent).is_some_and(|p| p.parent.is_none());
                if !under_root {
                    self.detached.insert((request.seq, request.id));
                }
            }
        }
        self.push_history(request);
    }

    /// Room for one more request in the ring, growing by doubling but never
    /// past `history_cap + 1`: a full ring of 100,000 would otherwise sit
    /// in a buffer of 131,072 requests.
    fn reserve_history(&mut self) {
        let len = self.history.len();
        if len == self.history.capacity() {
            let want = (len.max(8) * 2).min(self.history_cap + 1).max(len + 1);
            self.history.reserve_exact(want - len);
        }
    }

    /// Drop the indexes' entries for a request that left the history ring;
    /// its children that were listed under it (it was a root) are detached.
    fn forget(&mut self, gone: &Request) {
        self.evicted += 1;
        self.in_history.remove(&gone.id);
        if gone.parent.is_some() {
            self.detached.remove(&(gone.seq, gone.id));
            return;
        }
        self.roots.remove(&(gone.seq, gone.id));
        for child in &gone.children {
            if let Some(child) = self.get(*child) {
                self.detached.insert((child.seq, child.id));
            }
        }
    }

    /// A result for `id` arrived but `id` is not live: drop it and say so.
    /// Returns the event.
    pub fn late_drop(
        &mut self,
        id: RequestId,
        backend: &str,
        what: &str,
        now: Instant,
    ) -> EventKind {
        if let Some(request) = self.live.get_mut(&id) {
            // Still live: an answer to an attempt that was given up on.
            request.late_drops += 1;
            let kind = EventKind::StaleResult {
                what: what.to_string(),
            };
            request.note(now, kind.clone());
            let event = event_for(request, now, self.origin, kind.clone());
            tracing::warn!(id = %id, backend, "{kind}");
            self.push_event(event);
            return kind;
        }
        let found = self
            .history_slot(id)
            .and_then(|slot| self.history.get_mut(slot));
        let (kind, event) = match found {
            Some(request) => {
                request.late_drops += 1;
                let ended = request.ended.unwrap_or(now);
                let kind = EventKind::late_arrival(
                    what.to_string(),
                    LateAfter::End {
                        phase: request.phase.label().to_string(),
                    },
                    Some(millis(now.saturating_duration_since(ended))),
                );
                request.note(now, kind.clone());
                let event = event_for(request, now, self.origin, kind.clone());
                (kind, event)
            }
            None => {
                // Older than the history ring: still a late drop, never "unknown".
                let kind = EventKind::late_arrival(what.to_string(), LateAfter::Unknown, None);
                let event = self.orphan_event(id, backend, now, kind.clone());
                (kind, event)
            }
        };
        tracing::warn!(id = %id, backend, "{kind}");
        self.push_event(event);
        kind
    }

    /// Note `event` on a request that has ended (found in the history ring
    /// by id), as a timeline entry and an event; a request older than the
    /// ring gets the event alone. Used for an observed call's late arrival
    /// and for the end of its grace; `late` counts a late result on the
    /// request, as `late_drop` does.
    pub fn note_ended(
        &mut self,
        id: RequestId,
        backend: &str,
        now: Instant,
        what: EventKind,
        late: bool,
    ) {
        let found = self
            .history_slot(id)
            .and_then(|slot| self.history.get_mut(slot));
        let event = match found {
            Some(request) => {
                if late {
                    request.late_drops += 1;
                }
                request.note(now, what.clone());
                event_for(request, now, self.origin, what)
            }
            None => self.orphan_event(id, backend, now, what),
        };
        tracing::warn!(id = %id, backend, "{}", event.event);
        self.push_event(event);
    }

    /// An event for a request the registry no longer holds.
    fn orphan_event(
        &self,
        id: RequestId,
        backend: &str,
        now: Instant,
        event: EventKind,
    ) -> LifecycleEvent {
        LifecycleEvent {
            at: now,
            t_ms: millis(now.saturating_duration_since(self.origin)),
            id: Some(id),
            parent: None,
            kind: None,
            backend: backend.into(),
            conversation: None,
            event,
        }
    }

    /// An event about a backend rather than one request.
    /// A breaker opening is a warning in the log (it stays there when the
    /// per-request lines are held to warnings, as under `loreweave load`).
    pub fn backend_event(&mut self, backend: &str, now: Instant, what: EventKind) {
        if what.is_error() {
            tracing::warn!(backend, "{what}");
        } else {
            tracing::info!(backend, "{what}");
        }
        self.push_event(LifecycleEvent {
            at: now,
            t_ms: millis(now.saturating_duration_since(self.origin)),
            id: None,
            parent: None,
            kind: None,
            backend: backend.into(),
            conversation: None,
            event: what,
        });
    }

    fn push_event(&mut self, event: LifecycleEvent) {
        tracing::debug!(id = ?event.id.map(|id| id.to_string()), kind = event.kind.map_or("?", Kind::label), backend = %event.backend, event = %event.event, "lifecycle");
        if let Some(tap) = self.tap.as_mut() {
            tap.push(event.clone());
        }
        if self.events.len() == self.events_cap {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The newest sequence number handed out (0 before any): requests
    /// created since an earlier reading are the difference (the inspector's
    /// paused table counts them).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }
}

/// A deadline in the index: when, the request's `seq` (ties expire in
/// creation order), and its id.
type Deadline = (Instant, u64, RequestId);

/// Lanes of the deadline index at most (a few deadline lengths are in use:
/// retrieval, first token, idle); a deadline that fits none goes to the tree.
const MAX_LANES: usize = 8;

/// Stale lane entries tolerated beyond twice the live requests before the
/// lanes are compacted.
const LANE_SLACK: usize = 1_024;

/// Whether an index entry is still its request's deadline.
fn is_current(live: &IdMap<Request>, (deadline, seq, id): &Deadline) -> bool {
    live.get(id)
        .is_some_and(|r| r.seq == *seq && r.deadline == Some(*deadline))
}

fn event_for(request: &Request, now: Instant, origin: Instant, event: EventKind) -> LifecycleEvent {
    LifecycleEvent {
        at: now,
        t_ms: millis(now.saturating_duration_since(origin)),
        id: Some(request.id),
        parent: request.parent,
        kind: Some(request.kind),
        backend: request.backend.clone(),
        conversation: request.conversation,
        event,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use ulid::Ulid;

    use super::*;

    fn request(seq: u64, parent: Option<RequestId>, now: Instant) -> Request {
        Request {
            id: RequestId(Ulid::from_parts(seq, u128::from(seq))),
            seq,
            kind: if parent.is_some() {
                Kind::Retrieve
            } else {
                Kind::Turn
            },
            backend: "local".into(),
            conversation: None,
            parent,
            children: Vec::new(),
            label: "".into(),
            created: now,
            dispatched: None,
            ended: None,
            policy: DeadlinePolicy::Unbounded,
            deadline: None,
            phase: Phase::Queued,
            attempt: 0,
            late_drops: 0,
            timeline: Vec::new(),
            progress: None,
            restored: false,
        }
    }

    /// The inspector's order as it was built before the indexes: sort
    /// everything, roots newest first with their children, then the rest.
    fn rows_by_sorting(registry: &Registry) -> Vec<RequestId> {
        let all = registry.all();
        let mut rows = Vec::new();
        for root in all.iter().rev().filter(|r| r.parent.is_none()) {
            rows.push(root.id);
            for child in &root.children {
                if let Some(child) = registry.get(*child) {
                    rows.push(child.id);
                }
            }
        }
        let shown: std::collections::HashSet<_> = rows.iter().copied().collect();
        rows.extend(
            all.iter()
                .rev()
                .filter(|r| !shown.contains(&r.id))
                .map(|r| r.id),
        );
        rows
    }

    /// The same order from the indexes, as the view builds it.
    fn rows_from_indexes(registry: &Registry) -> Vec<RequestId> {
        let mut rows = Vec::new();
        for root in registry.roots_newest_first() {
            rows.push(root.id);
            rows.extend(
                root.children
                    .iter()
                    .filter_map(|c| registry.get(*c))
                    .map(|c| c.id),
            );
        }
        rows.extend(registry.detached_newest_first().map(|r| r.id));
        rows
    }

    #[test]
    fn indexes_keep_the_inspector_order_through_inserts_finishes_and_evictions() {
        let t0 = Instant::now();
        let mut detached_seen = 0;
        for seed in 0..20 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut registry = Registry::new(t0, rng.random_range(1..12));
            let mut ever = Vec::new();
            for step in 0..400 {
                let retained: Vec<RequestId> = registry.all().iter().map(|r| r.id).collect();
                let live: Vec<RequestId> = registry.live_requests().map(|r| r.id).collect();
                match rng.random_range(0..10) {
                    // A root.
                    0..3 => {
                        let seq = registry.next_seq();
                        registry.insert(request(seq, None, t0));
                        let id = RequestId(Ulid::from_parts(seq, u128::from(seq)));
                        // Most pipelines work for one of three conversations.
                        if rng.random_bool(0.8) {
                            registry.set_conversation(id, ConversationId(rng.random_range(0..3)));
                        }
                        ever.push(id);
                    }
                    // A child of anything retained (live, ended, itself a
                    // child) or of a request already forgotten.
                    3..6 => {
                        let parent = if !retained.is_empty() && rng.random_bool(0.9) {
                            retained[rng.random_range(0..retained.len())]
                        } else if !ever.is_empty() {
                            ever[rng.random_range(0..ever.len())]
                        } else {
                            continue;
                        };
                        let seq = registry.next_seq();
                        registry.insert(request(seq, Some(parent), t0));
                        ever.push(RequestId(Ulid::from_parts(seq, u128::from(seq))));
                    }
                    _ if !live.is_empty() => {
                        let id = live[rng.random_range(0..live.len())];
                        assert!(
                            registry
                                .finish(id, Outcome::Completed, t0 + Duration::from_millis(step))
                                .is_some()
                        );
                    }
                    _ => {}
                }
                let rows = rows_from_indexes(&registry);
                assert_eq!(rows, rows_by_sorting(&registry), "seed {seed} step {step}");
                // A conversation's live pipelines: the index agrees with a scan.
                for c in 0..3 {
                    let mut scan: Vec<(u64, RequestId)> = registry
                        .live_requests()
                        .filter(|r| r.parent.is_none() && r.conversation == Some(ConversationId(c)))
                        .map(|r| (r.seq, r.id))
                        .collect();
                    scan.sort();
                    let scan: Vec<RequestId> = scan.into_iter().map(|(_, id)| id).collect();
                    assert_eq!(registry.live_roots_of(ConversationId(c)), scan);
                }
                assert_eq!(rows.len(), registry.retained_len());
                detached_seen += registry.detached_len();
                let retained: std::collections::HashSet<RequestId> =
                    registry.all().iter().map(|r| r.id).collect();
                for id in &ever {
                    assert_eq!(registry.get(*id).is_some(), retained.contains(id));
                }
            }
            assert!(registry.history_len() <= registry.history_cap);
        }
        // The runs did reach the cases the indexes exist for.
        assert!(detached_seen > 100, "{detached_seen}");
    }

    /// The deadline index (lanes and tree, stale entries skipped) always
    /// agrees with a scan of every live request: the soonest deadline, and
    /// what has expired, in creation order, each once.
    #[test]
    fn the_deadline_index_agrees_with_a_scan_of_the_live_requests() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut lanes_used = 0;
        for seed in 0..30 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut registry = Registry::new(t0, 50);
            let mut now = 0u64;
            for _ in 0..600 {
                let live: Vec<RequestId> = registry.live_requests().map(|r| r.id).collect();
                match rng.random_range(0..10) {
                    0..3 => {
                        let seq = registry.next_seq();
                        let mut r = request(seq, None, t0);
                        r.deadline = rng
                            .random_bool(0.8)
                            .then(|| at(now + rng.random_range(0..200)));
                        registry.insert(r);
                    }
                    // Mostly later (a stream's idle deadline), sometimes
                    // earlier, back to an old value, or none.
                    3..8 if !live.is_empty() => {
                        let id = live[rng.random_range(0..live.len())];
                        let deadline = match rng.random_range(0..10) {
                            0 => None,
                            1 => Some(at(now)),
                            2 => Some(at(now + rng.random_range(0..50))),
                            _ => Some(at(now + 100)),
                        };
                        registry.set_deadline(id, deadline);
                    }
                    8 if !live.is_empty() => {
                        let id = live[rng.random_range(0..live.len())];
                        registry.finish(id, Outcome::Completed, at(now));
                    }
                    _ => {
                        now += rng.random_range(0..30);
                        for id in registry.expired(at(now)) {
                            registry.finish(id, Outcome::TimedOut, at(now));
                        }
                    }
                }
                let soonest = registry.live_requests().filter_map(|r| r.deadline).min();
                assert_eq!(registry.next_deadline(), soonest, "seed {seed}");
                let probe = at(now + rng.random_range(0..120));
                let mut due: Vec<(u64, RequestId)> = registry
                    .live_requests()
                    .filter(|r| r.deadline.is_some_and(|d| d <= probe))
                    .map(|r| (r.seq, r.id))
                    .collect();
                due.sort();
                let due: Vec<RequestId> = due.into_iter().map(|(_, id)| id).collect();
                assert_eq!(registry.expired(probe), due, "seed {seed}");
                assert!(registry.lane_len <= 2 * registry.live_count() + LANE_SLACK + 1);
                lanes_used = lanes_used.max(registry.lanes.len());
            }
        }
        assert!(lanes_used > 1, "{lanes_used}");
    }

    /// Under `loreweave load`'s log filter (the registry held to warnings
    /// at `info`) a breaker opening is still logged; closing is not.
    #[test]
    fn a_breaker_opening_stays_in_a_log_held_to_warnings() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut buffer) = self.0.lock() {
                    buffer.extend_from_slice(bytes);
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                crate::logging::directives("info", crate::headless::load::QUIET_LOG_TARGETS),
            ))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let t0 = Instant::now();
        let mut registry = Registry::new(t0, 10);
        tracing::subscriber::with_default(subscriber, || {
            registry.backend_event(
                "local",
                t0,
                EventKind::breaker("closed", "open", "5 failures"),
            );
            registry.backend_event(
                "local",
                t0,
                EventKind::breaker("half-open", "closed", "probe ok"),
            );
        });
        let log = String::from_utf8_lossy(&buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
            .into_owned();
        assert!(log.contains("WARN") && log.contains("open"), "{log}");
        assert_eq!(log.lines().count(), 1, "{log}");
    }

    #[test]
    fn a_late_result_finds_its_request_in_the_ring_by_id() {
        let t0 = Instant::now();
        let mut registry = Registry::new(t0, 3);
        let ids: Vec<RequestId> = (0..5)
            .map(|_| {
                let seq = registry.next_seq();
                let r = request(seq, None, t0);
                let id = r.id;
                registry.insert(r);
                registry.finish(id, Outcome::Completed, t0);
                id
            })
            .collect();
        // The two oldest left the ring; the others count their late drops.
        registry.late_drop(ids[3], "local", "a result", t0);
        registry.late_drop(ids[0], "local", "a result", t0);
        assert_eq!(registry.get(ids[3]).map(|r| r.late_drops), Some(1));
        assert!(registry.get(ids[0]).is_none());
        assert_eq!(registry.get(ids[4]).map(|r| r.late_drops), Some(0));
    }
}
