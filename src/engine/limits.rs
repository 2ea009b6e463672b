//! Per-backend admission: concurrency slots, an optional rate limit (a token
//! bucket over `now`), the FIFO of requests waiting for either, the breaker,
//! the retry policy and the metrics. The engine owns one `Backend` per name.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::breaker::Breaker;
use super::metrics::BackendMetrics;
use super::request::RequestId;
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

#[derive(Debug, Clone)]
pub struct Backend {
    pub policy: BackendPolicy,
    pub breaker: Breaker,
    pub bucket: Option<TokenBucket>,
    /// Requests waiting for a slot or a token, oldest first.
    pub waiting: VecDeque<RequestId>,
    pub metrics: BackendMetrics,
}

impl Backend {
    pub fn new(policy: BackendPolicy) -> Self {
        Self {
            breaker: Breaker::new(policy.breaker_failures, policy.breaker_open),
            bucket: policy.rate_per_minute.map(TokenBucket::per_minute),
            waiting: VecDeque::new(),
            metrics: BackendMetrics::default(),
            policy,
        }
    }

    pub fn has_slot(&self) -> bool {
        usize::try_from(self.metrics.in_flight).unwrap_or(usize::MAX)
            < self.policy.concurrency.max(1)
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
}
