//! A circuit breaker per backend, as a pure state machine over `now`.
//!
//! Closed --(N consecutive failures)--> Open --(open_for passes)--> HalfOpen
//! HalfOpen admits exactly one probe; the probe's success closes the breaker,
//! its failure opens it again. Every other call while Open or while the probe
//! is out is rejected (short-circuited). A success while Closed resets the
//! count. Each transition is returned exactly once, for the engine to
//! publish. The probe is an ordinary request with its own deadline, so
//! half-open cannot get stuck: a timed-out probe is a failure.
//!
//! A breaker can be forced open or closed by hand (debugging); `Auto`
//! returns it to the rules above, starting Closed.

use std::fmt;
use std::time::{Duration, Instant};

use super::request::RequestId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe: Option<RequestId> },
}

/// Manual override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Force {
    Auto,
    Open,
    Closed,
}

/// What the breaker says about a call about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allow,
    /// Allowed as the half-open probe.
    Probe,
    Reject,
}

/// A state change, for the lifecycle feed and the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub why: String,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaker {} -> {} ({})", self.from, self.to, self.why)
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    threshold: u32,
    open_for: Duration,
    force: Force,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: BreakerState::Closed { failures: 0 },
            threshold: threshold.max(1),
            open_for,
            force: Force::Auto,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn force(&self) -> Force {
        self.force
    }

    /// "closed", "open", "half-open", or "forced open" / "forced closed".
    pub fn label(&self) -> &'static str {
        match self.force {
            Force::Open => "forced open",
            Force::Closed => "forced closed",
            Force::Auto => state_label(&self.state),
        }
    }

    /// When the breaker will change by itself (Open -> HalfOpen).
    pub fn next_change(&self) -> Option<Instant> {
        match (self.force, self.state) {
            (Force::Auto, BreakerState::Open { until }) => Some(until),
            _ => None,
        }
    }

    /// Whether a call now would be short-circuited (no probe is taken).
    pub fn is_rejecting(&self) -> bool {
        match self.force {
            Force::Open => true,
            Force::Closed => false,
            Force::Auto => matches!(
                self.state,
                BreakerState::Open { .. } | BreakerState::HalfOpen { probe: Some(_) }
            ),
        }
    }

    /// Let time pass: Open -> HalfOpen once `open_for` has elapsed.
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            BreakerState::Open { until } if self.force == Force::Auto && now >= until => {
                Some(self.go(
                    BreakerState::HalfOpen { probe: None },
                    "open period over: one probe may pass".into(),
                ))
            }
            _ => None,
        }
    }

    /// Decide about call `id`. A transition may happen first (time passed).
    pub fn admit(&mut self, id: RequestId, now: Instant) -> (Admission, Option<Transition>) {
        let transition = self.tick(now);
        let admission = match self.force {
            Force::Open => Admission::Reject,
            Force::Closed => Admission::Allow,
            Force::Auto => match self.state {
                BreakerState::Closed { .. } => Admission::Allow,
                BreakerState::Open { .. } => Admission::Reject,
                BreakerState::HalfOpen { probe: Some(_) } => Admission::Reject,
                BreakerState::HalfOpen { probe: None } => {
                    self.state = BreakerState::HalfOpen { probe: Some(id) };
                    Admission::Probe
                }
            },
        };
        (admission, transition)
    }

    pub fn on_success(&mut self, id: RequestId) -> Option<Transition> {
        match self.state {
            BreakerState::Closed { failures } => {
                if failures > 0 {
                    self.state = BreakerState::Closed { failures: 0 };
                }
                None
            }
            BreakerState::HalfOpen { probe: Some(p) } if p == id => Some(self.go(
                BreakerState::Closed { failures: 0 },
                "probe succeeded".into(),
            )),
            // A call admitted before the breaker opened succeeded late:
            // the open period still runs its course.
            _ => None,
        }
    }

    pub fn on_failure(&mut self, id: RequestId, now: Instant, why: &str) -> Option<Transition> {
        match self.state {
            BreakerState::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.threshold && self.force == Force::Auto {
                    let until = now + self.open_for;
                    Some(self.go(
                        BreakerState::Open { until },
                        format!("{failures} consecutive failures, last: {why}"),
                    ))
                } else {
                    self.state = BreakerState::Closed { failures };
                    None
                }
            }
            BreakerState::HalfOpen { probe: Some(p) } if p == id => {
                let until = now + self.open_for;
                Some(self.go(BreakerState::Open { until }, format!("probe failed: {why}")))
            }
            _ => None,
        }
    }

    /// The call ended without a verdict (cancelled): a probe slot is freed.
    pub fn on_abandon(&mut self, id: RequestId) {
        if self.state == (BreakerState::HalfOpen { probe: Some(id) }) {
            self.state = BreakerState::HalfOpen { probe: None };
        }
    }

    pub fn set_force(&mut self, force: Force) -> Option<Transition> {
        let before = self.label();
        self.force = force;
        if force == Force::Auto {
            self.state = BreakerState::Closed { failures: 0 };
        }
        let after = self.label();
        (before != after).then(|| Transition {
            from: before,
            to: after,
            why: "set by hand".into(),
        })
    }

    fn go(&mut self, to: BreakerState, why: String) -> Transition {
        let from = state_label(&self.state);
        self.state = to;
        Transition {
            from,
            to: state_label(&to),
            why,
        }
    }
}

fn state_label(state: &BreakerState) -> &'static str {
    match state {
        BreakerState::Closed { .. } => "closed",
        BreakerState::Open { .. } => "open",
        BreakerState::HalfOpen { .. } => "half-open",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn id(n: u128) -> RequestId {
        RequestId(Ulid::from_parts(0, n))
    }

    #[test]
    fn opens_on_exactly_the_nth_consecutive_failure_and_success_resets() {
        let t0 = Instant::now();
        let mut b = Breaker::new(5, Duration::from_secs(60));
        for n in 0..4 {
            assert_eq!(b.on_failure(id(n), t0, "x"), None);
        }
        assert_eq!(b.on_success(id(9)), None);
        for n in 0..4 {
            assert_eq!(
                b.on_failure(id(n), t0, "x"),
                None,
                "count was reset by the success"
            );
        }
        let t = b.on_failure(id(5), t0, "503").expect("opens on the 5th");
        assert_eq!((t.from, t.to), ("closed", "open"));
        assert_eq!(b.admit(id(6), t0).0, Admission::Reject);
    }

    #[test]
    fn half_open_admits_exactly_one_probe() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(60));
        b.on_failure(id(1), t0, "x");
        assert_eq!(
            b.admit(id(2), t0 + Duration::from_secs(59)).0,
            Admission::Reject
        );
        let (a, t) = b.admit(id(3), t0 + Duration::from_secs(60));
        assert_eq!(a, Admission::Probe);
        assert_eq!(t.map(|t| t.to), Some("half-open"));
        assert_eq!(
            b.admit(id(4), t0 + Duration::from_secs(61)).0,
            Admission::Reject
        );
        let t = b.on_success(id(3)).expect("probe success closes");
        assert_eq!(t.to, "closed");
        assert_eq!(
            b.admit(id(5), t0 + Duration::from_secs(62)).0,
            Admission::Allow
        );
    }

    #[test]
    fn failed_probe_reopens_and_abandoned_probe_frees_the_slot() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(10));
        b.on_failure(id(1), t0, "x");
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(id(2), t1).0, Admission::Probe);
        b.on_abandon(id(2));
        assert_eq!(b.admit(id(3), t1).0, Admission::Probe);
        let t = b.on_failure(id(3), t1, "still down").expect("reopens");
        assert_eq!((t.from, t.to), ("half-open", "open"));
        assert_eq!(b.next_change(), Some(t1 + Duration::from_secs(10)));
    }

    #[test]
    fn forcing_overrides_the_rules() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(10));
        assert!(b.set_force(Force::Open).is_some());
        assert_eq!(b.admit(id(1), t0).0, Admission::Reject);
        b.set_force(Force::Closed);
        b.on_failure(id(2), t0, "x");
        assert_eq!(
            b.admit(id(3), t0).0,
            Admission::Allow,
            "forced closed never opens"
        );
        b.set_force(Force::Auto);
        assert_eq!(b.label(), "closed");
    }
}
