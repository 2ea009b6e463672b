//! Per-backend counters and latency percentiles. Counters only go up, except
//! `in_flight` and `queued`, which mirror the engine's slots. Every request
//! that reaches a backend's books is counted in exactly one final counter.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::request::Outcome;

#[derive(Debug, Clone)]
pub struct BackendMetrics {
    pub ok: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub short_circuited: u64,
    pub joined: u64,
    pub retries: u64,
    pub late_drops: u64,
    /// Observed calls that answered after their deadline (also counted in
    /// `late_drops`).
    pub late_arrivals: u64,
    /// Observed calls aborted when their grace ran out.
    pub late_abandoned: u64,
    /// Calls observed past their deadline right now (a gauge).
    pub observing: u64,
    pub in_flight: u64,
    pub queued: u64,
    latency_ms: Histogram<u64>,
    /// How long after the deadline observed calls answered.
    late_by_ms: Histogram<u64>,
}

impl Default for BackendMetrics {
    fn default() -> Self {
        Self {
            ok: 0,
            failed: 0,
            timed_out: 0,
            cancelled: 0,
            short_circuited: 0,
            joined: 0,
            retries: 0,
            late_drops: 0,
            late_arrivals: 0,
            late_abandoned: 0,
            observing: 0,
            in_flight: 0,
            queued: 0,
            // 1 ms .. 1 hour at 2 significant digits: a few KiB per backend.
            latency_ms: Histogram::new_with_bounds(1, 3_600_000, 2)
                .expect("constant histogram bounds are valid"),
            late_by_ms: Histogram::new_with_bounds(1, 3_600_000, 2)
                .expect("constant histogram bounds are valid"),
        }
    }
}

/// A snapshot for display and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    pub ok: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub short_circuited: u64,
    pub joined: u64,
    pub retries: u64,
    pub late_drops: u64,
    pub late_arrivals: u64,
    pub late_abandoned: u64,
    pub observing: u64,
    pub in_flight: u64,
    pub queued: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    /// How late observed calls answered, past their deadline.
    pub late_p50_ms: Option<u64>,
    pub late_p95_ms: Option<u64>,
}

impl BackendMetrics {
    /// Count a final outcome; `latency` is recorded for completed requests.
    pub fn record_outcome(&mut self, outcome: &Outcome, latency: Duration) {
        match outcome {
            Outcome::Completed => {
                self.ok += 1;
                let ms = u64::try_from(latency.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                self.latency_ms.saturating_record(ms);
            }
            Outcome::Failed(_) => self.failed += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::ShortCircuited => self.short_circuited += 1,
            Outcome::Joined(_) => self.joined += 1,
        }
    }

    /// An observed call answered `late_by` after its deadline.
    pub fn record_late_arrival(&mut self, late_by: Duration) {
        self.late_arrivals += 1;
        self.late_drops += 1;
        let ms = u64::try_from(late_by.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.late_by_ms.saturating_record(ms);
    }

    /// Every request this backend's books have seen to a final state.
    pub fn finished(&self) -> u64 {
        self.ok + self.failed + self.timed_out + self.cancelled + self.short_circuited + self.joined
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let pct =
            |q: f64| (!self.latency_ms.is_empty()).then(|| self.latency_ms.value_at_quantile(q));
        let late =
            |q: f64| (!self.late_by_ms.is_empty()).then(|| self.late_by_ms.value_at_quantile(q));
        MetricsSnapshot {
            ok: self.ok,
            failed: self.failed,
            timed_out: self.timed_out,
            cancelled: self.cancelled,
            short_circuited: self.short_circuited,
            joined: self.joined,
            retries: self.retries,
            late_drops: self.late_drops,
            late_arrivals: self.late_arrivals,
            late_abandoned: self.late_abandoned,
            observing: self.observing,
            in_flight: self.in_flight,
            queued: self.queued,
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
            late_p50_ms: late(0.50),
            late_p95_ms: late(0.95),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_recorded_latencies() {
        let mut m = BackendMetrics::default();
        assert_eq!(m.snapshot().p50_ms, None);
        for ms in 1..=100 {
            m.record_outcome(&Outcome::Completed, Duration::from_millis(ms));
        }
        m.record_outcome(&Outcome::TimedOut, Duration::from_secs(10));
        let s = m.snapshot();
        assert_eq!(s.ok, 100);
        assert_eq!(s.timed_out, 1);
        assert_eq!(m.finished(), 101);
        assert!((49..=51).contains(&s.p50_ms.unwrap_or(0)), "{s:?}");
        assert!((94..=96).contains(&s.p95_ms.unwrap_or(0)), "{s:?}");
    }
}
