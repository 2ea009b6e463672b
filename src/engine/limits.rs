//! Per-backend admission: concurrency slots, an optional rate limit (a token
//! bucket over `now`), the FIFO of requests waiting for either, the cap on
//! observed late calls, the breaker, the retry policy and the metrics. The
//! engine owns one `Backend` per name and goes through its methods
//! (`gate`, `enqueue`, `dequeue`, `withdraw`, `acquire`, `release`,
//! `drop_dead`); the invariants are stated on [`Backend`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::breaker::Breaker;
use super::event::QueueReason;
use super::metrics::BackendMetrics;
use super::request::{IdSet, RequestId, Shared};
use super::retry::RetryPolicy;

/// What happens to a call still running when its request's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// The request ends (timed out) and gives its slot back, but the call
    /// keeps running, detached, up to the grace: its answer is recorded as
    /// a late arrival and never applied.
    Observe,
    /// The call is aborted at the deadline (for calls that cost tokens).
    #[default]
    Abort,
}

impl LatePolicy {
    pub fn label(self) -> &'static str {
        match self {
            LatePolicy::Observe => "observe",
            LatePolicy::Abort => "abort",
        }
    }
}

/// How a backend may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackendPolicy {
    /// Calls in flight at once; more wait in FIFO order.
    pub concurrency: usize,
    /// Optional rate limit, requests per minute.
    pub rate_per_minute: Option<u32>,
    pub retry: RetryPolicy,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    /// What happens to a call past its deadline.
    pub late_policy: LatePolicy,
    /// How long an observed call may run past its deadline.
    pub late_grace: Duration,
    /// Observed calls at once on this backend; past it, expiry aborts.
    pub late_observe_max: u32,
}

impl BackendPolicy {
    fn with_concurrency(concurrency: usize) -> Self {
        Self {
            concurrency,
            rate_per_minute: None,
            retry: RetryPolicy::default(),
            breaker_failures: 5,
            breaker_open: Duration::from_secs(60),
            late_policy: LatePolicy::Abort,
            late_grace: Duration::from_secs(30),
            late_observe_max: 8,
        }
    }

    pub fn retrieval() -> Self {
        Self {
            late_policy: LatePolicy::Observe,
            ..Self::with_concurrency(8)
        }
    }

    /// Chat and generation cost tokens: a late call is aborted.
    pub fn chat() -> Self {
        Self::with_concurrency(2)
    }

    pub fn embeddings() -> Self {
        Self {
            late_policy: LatePolicy::Observe,
            ..Self::with_concurrency(4)
        }
    }

    /// The knowledge base's writer: one ingest at a time (more wait in
    /// order, shown as queued), never retried.
    pub fn ingest() -> Self {
        let mut policy = Self::with_concurrency(1);
        policy.retry.max_retries = 0;
        policy
    }
}

/// Tokens refill continuously at `rate_per_minute / 60` per second, up to a
/// burst of one second's worth (at least one).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn per_minute(rate: u32) -> Self {
        let per_sec = f64::from(rate.max(1)) / 60.0;
        let capacity = per_sec.ceil().max(1.0);
        Self {
            capacity,
            tokens: capacity,
            per_sec,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gained = now.saturating_duration_since(last).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + gained).min(self.capacity);
        }
        self.last = Some(now);
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    /// Whether a token is there now (nothing is taken).
    pub fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0 - 1e-9
    }

    /// When the next token will be there, as of the last refill.
    pub fn next_token_time(&self) -> Option<Instant> {
        let last = self.last?;
        Some(if self.tokens >= 1.0 - 1e-9 {
            last
        } else {
            last + Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        })
    }

    /// When the next token will be there.
    pub fn next_token(&self, now: Instant) -> Instant {
        let elapsed = self.last.map_or(0.0, |last| {
            now.saturating_duration_since(last).as_secs_f64()
        });
        let have = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if have >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - have) / self.per_sec)
        }
    }
}

/// Whether a request may start now, as far as slots and rate go (the
/// breaker is asked separately: its answer has a transition to publish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// A slot is free and a rate token was taken: start it.
    Go,
    /// It must wait in the FIFO, for this reason.
    Wait(QueueReason),
}

/// One backend's admission state: its slots, its rate bucket, its FIFO of
/// waiting requests and its observed late calls; plus its breaker, its
/// policy and its metrics.
///
/// Invariants (kept by the methods, never by callers reaching in):
/// `busy` counts the slots handed out by [`Backend::acquire`] and not yet
/// given back by [`Backend::release`], and never exceeds the concurrency
/// limit through `acquire` after [`Backend::gate`] said `Go`; a request is
/// waiting exactly while it is in `members`; `waiting` holds every member
/// once, in FIFO order, plus tombstones of members withdrawn from the
/// middle (dropped when they reach the head, or all at once when they
/// outnumber the members), so withdrawing costs O(1). `metrics.in_flight`
/// and `metrics.queued` are gauges mirroring `busy` and `members.len()`;
/// they are for display, never for decisions.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Its name, shared by every request and event on it (one allocation
    /// per backend, not one per request or event).
    name: Shared,
    pub policy: BackendPolicy,
    pub breaker: Breaker,
    pub metrics: BackendMetrics,
    bucket: Option<TokenBucket>,
    /// Requests waiting for a slot or a token, oldest first (with tombstones).
    waiting: VecDeque<RequestId>,
    /// The requests waiting now.
    members: IdSet,
    /// Slots held now: the admission counter.
    busy: usize,
}

/// Tombstones tolerated in the FIFO beyond the number of members before it
/// is compacted.
const TOMBSTONE_SLACK: usize = 64;

impl Backend {
    pub fn new(name: &str, policy: BackendPolicy) -> Self {
        Self {
            name: Shared::from(name),
            breaker: Breaker::new(policy.breaker_failures, policy.breaker_open),
            bucket: policy.rate_per_minute.map(TokenBucket::per_minute),
            waiting: VecDeque::new(),
            members: IdSet::default(),
            busy: 0,
            metrics: BackendMetrics::default(),
            policy,
        }
    }

    /// Its name (a cheap clone: shared).
    pub fn name(&self) -> &Shared {
        &self.name
    }

    fn limit(&self) -> usize {
        self.policy.concurrency.max(1)
    }

    /// Whether a concurrency slot is free.
    pub fn has_slot(&self) -> bool {
        self.busy < self.limit()
    }

    /// Slots held now.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Requests waiting now.
    pub fn waiting_len(&self) -> usize {
        self.members.len()
    }

    /// Entries in the FIFO, tombstones included (its memory footprint).
    pub fn fifo_len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether `id` waits in this backend's FIFO.
    pub fn is_waiting(&self, id: RequestId) -> bool {
        self.members.contains(&id)
    }

    /// Slots and rate for a request about to start: `Go` takes a rate token
    /// (the caller then dispatches and calls [`Backend::acquire`]); `Wait`
    /// says why it must queue. A newcomer (`from_queue` false) never
    /// overtakes requests already waiting.
    pub fn gate(&mut self, from_queue: bool, now: Instant) -> Gate {
        let behind_others = !from_queue && !self.members.is_empty();
        let slot = self.has_slot();
        let token = slot
            && !behind_others
            && self
                .bucket
                .as_mut()
                .is_none_or(|bucket| bucket.try_take(now));
        if slot && !behind_others && token {
            return Gate::Go;
        }
        Gate::Wait(if !slot || behind_others {
            QueueReason::Slots {
                busy: self.busy as u64,
                limit: self.policy.concurrency,
            }
        } else {
            QueueReason::RateLimit {
                per_minute: self.policy.rate_per_minute.unwrap_or_default(),
            }
        })
    }

    /// Put `id` in the FIFO: at the back, or back at the front when it was
    /// the head and could not start after all.
    pub fn enqueue(&mut self, id: RequestId, front: bool) {
        if !self.members.insert(id) {
            return;
        }
        if front {
            self.waiting.push_front(id);
        } else {
            self.waiting.push_back(id);
        }
        self.metrics.queued = self.members.len() as u64;
    }

    /// The oldest waiting request (tombstones at the head are dropped).
    pub fn head(&mut self) -> Option<RequestId> {
        while let Some(&id) = self.waiting.front() {
            if self.members.contains(&id) {
                return Some(id);
            }
            self.waiting.pop_front();
        }
        None
    }

    /// Take the oldest waiting request out of the FIFO.
    pub fn dequeue(&mut self) -> Option<RequestId> {
        let id = self.head()?;
        self.waiting.pop_front();
        self.members.remove(&id);
        self.metrics.queued = self.members.len() as u64;
        Some(id)
    }

    /// Take `id` out of the FIFO wherever it is (it ended while waiting).
    /// Returns whether it was waiting.
    pub fn withdraw(&mut self, id: RequestId) -> bool {
        if !self.members.remove(&id) {
            return false;
        }
        self.metrics.queued = self.members.len() as u64;
        if self.waiting.len() > 2 * self.members.len() + TOMBSTONE_SLACK {
            self.compact();
        }
        true
    }

    /// Drop what is no longer live: waiting requests `is_live` denies are
    /// withdrawn, and tombstones go.
    pub fn drop_dead(&mut self, is_live: impl Fn(RequestId) -> bool) {
        self.members.retain(|id| is_live(*id));
        self.compact();
    }

    fn compact(&mut self) {
        let members = &self.members;
        self.waiting.retain(|id| members.contains(id));
        self.metrics.queued = self.members.len() as u64;
    }

    /// Whether the head of the FIFO may be handed to admission now: a slot
    /// and a rate token are there, or the breaker rejects (admission then
    /// short-circuits it, which needs neither). Nothing is taken.
    pub fn head_may_start(&mut self, now: Instant) -> bool {
        if self.breaker.is_rejecting() {
            return true;
        }
        self.has_slot() && self.bucket.as_mut().is_none_or(|bucket| bucket.ready(now))
    }

    /// When a waiting request could next get a rate token, if one is what
    /// it waits for (requests wait and a slot is free).
    pub fn next_token_time(&self) -> Option<Instant> {
        if self.members.is_empty() || !self.has_slot() {
            return None;
        }
        self.bucket.as_ref().and_then(TokenBucket::next_token_time)
    }

    /// A call starts: it holds a slot until [`Backend::release`].
    pub fn acquire(&mut self) {
        self.busy += 1;
        self.metrics.in_flight = self.busy as u64;
    }

    /// A call's slot is given back.
    pub fn release(&mut self) {
        self.busy = self.busy.saturating_sub(1);
        self.metrics.in_flight = self.busy as u64;
    }

    /// A timed-out call may run on, observed, if the policy observes late
    /// calls and fewer than `late_observe_max` are observed now; if so it
    /// counts as observed until [`Backend::observation_ended`].
    pub fn try_observe(&mut self) -> bool {
        let observe = self.policy.late_policy == LatePolicy::Observe
            && self.metrics.observing < u64::from(self.policy.late_observe_max);
        if observe {
            self.metrics.observing += 1;
        }
        observe
    }

    /// An observed call answered (`late_by` past its deadline), or its grace
    /// ran out (`None`).
    pub fn observation_ended(&mut self, late_by: Option<Duration>) {
        self.metrics.observing = self.metrics.observing.saturating_sub(1);
        match late_by {
            Some(late_by) => self.metrics.record_late_arrival(late_by),
            None => self.metrics.late_abandoned += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_rate_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(60); // one per second, burst 1
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert_eq!(b.next_token(t0), t0 + Duration::from_secs(1));
        assert!(!b.try_take(t0 + Duration::from_millis(999)));
        assert!(b.try_take(t0 + Duration::from_millis(1_000)));
        let mut fast = TokenBucket::per_minute(600); // 10/s, burst 10
        let granted = (0..20).filter(|_| fast.try_take(t0)).count();
        assert_eq!(granted, 10);
    }

    fn rid(n: u128) -> RequestId {
        RequestId(ulid::Ulid(n))
    }

    #[test]
    fn backend_owns_its_slots_and_fifo() {
        let t0 = Instant::now();
        let mut b = Backend::new("b", BackendPolicy::with_concurrency(1));
        assert_eq!(b.gate(false, t0), Gate::Go);
        b.acquire();
        assert_eq!((b.busy(), b.metrics.in_flight), (1, 1));
        assert_eq!(
            b.gate(false, t0),
            Gate::Wait(QueueReason::Slots { busy: 1, limit: 1 })
        );
        for n in 1..=3 {
            b.enqueue(rid(n), false);
        }
        // A withdrawn member leaves a tombstone that the head skips.
        assert!(b.withdraw(rid(1)));
        assert!(!b.withdraw(rid(1)));
        assert_eq!((b.waiting_len(), b.metrics.queued), (2, 2));
        assert!(!b.head_may_start(t0), "no slot is free");
        b.release();
        assert_eq!(b.metrics.in_flight, 0);
        assert!(b.head_may_start(t0));
        assert_eq!(b.dequeue(), Some(rid(2)));
        // Back at the front when it could not start after all.
        b.enqueue(rid(2), true);
        assert_eq!(b.head(), Some(rid(2)));
        b.drop_dead(|id| id != rid(2));
        assert_eq!(b.head(), Some(rid(3)));
        assert_eq!((b.waiting_len(), b.fifo_len()), (1, 1));
    }

    #[test]
    fn withdrawn_requests_do_not_pile_up_in_the_fifo() {
        let mut b = Backend::new("b", BackendPolicy::with_concurrency(1));
        b.enqueue(rid(0), false);
        for n in 1..10_000 {
            b.enqueue(rid(n), false);
            assert!(b.withdraw(rid(n)));
        }
        assert_eq!(b.waiting_len(), 1);
        assert!(b.fifo_len() <= 2 + TOMBSTONE_SLACK + 1, "{}", b.fifo_len());
    }

    #[test]
    fn observed_calls_are_capped() {
        let mut b = Backend::new(
            "b",
            BackendPolicy {
                late_observe_max: 1,
                ..BackendPolicy::retrieval()
            },
        );
        assert!(b.try_observe());
        assert!(!b.try_observe(), "over the cap: aborted");
        b.observation_ended(Some(Duration::from_millis(5)));
        assert_eq!((b.metrics.observing, b.metrics.late_arrivals), (0, 1));
        let mut chat = Backend::new("b", BackendPolicy::chat());
        assert!(!chat.try_observe(), "chat aborts late calls");
    }
}
