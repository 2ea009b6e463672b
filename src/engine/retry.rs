//! When to try a failed call again. Only transient errors are retried
//! (connect errors, timeouts, 5xx, 408, 429: the backend classifies them);
//! the delay is exponential backoff with full jitter, or the server's
//! `Retry-After` (clamped); and no retry is scheduled that would start at or
//! after the request's deadline: the request fails at once instead, saying
//! why. The random source is the engine's seeded one, so tests are exact.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::domain::{BackendError, ErrorClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` honoured as is.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay.
    RetryIn(Duration),
    /// Fail now, for this reason.
    GiveUp(String),
}

impl RetryPolicy {
    /// `retries_done` counts the retries already made for this request.
    pub fn decide(
        &self,
        error: &BackendError,
        retries_done: u32,
        now: Instant,
        deadline: Option<Instant>,
        rng: &mut impl Rng,
    ) -> Decision {
        if error.class == ErrorClass::Permanent {
            return Decision::GiveUp(error.message.clone());
        }
        if retries_done >= self.max_retries {
            let n = retries_done;
            return Decision::GiveUp(if n == 0 {
                error.message.clone()
            } else {
                format!(
                    "{} (gave up after {n} retr{})",
                    error.message,
                    if n == 1 { "y" } else { "ies" }
                )
            });
        }
        let delay = match error.retry_after {
            Some(after) => after.min(self.retry_after_cap),
            None => {
                let window = self
                    .base
                    .saturating_mul(2u32.saturating_pow(retries_done))
                    .min(self.cap);
                let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(rng.random_range(0..=ms))
            }
        };
        if let Some(deadline) = deadline
            && now + delay >= deadline
        {
            let why = if error.retry_after.is_some() {
                "Retry-After"
            } else {
                "the next retry"
            };
            return Decision::GiveUp(format!(
                "{}; {why} in {} would pass the deadline",
                error.message,
                super::request::format_duration(delay)
            ));
        }
        Decision::RetryIn(delay)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn far() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(3600))
    }

    #[test]
    fn permanent_errors_are_never_retried() {
        let mut rng = SmallRng::seed_from_u64(1);
        let d = RetryPolicy::default().decide(
            &BackendError::permanent("422: bad"),
            0,
            Instant::now(),
            far(),
            &mut rng,
        );
        assert_eq!(d, Decision::GiveUp("422: bad".into()));
    }

    #[test]
    fn full_jitter_stays_in_the_doubling_window_and_capped() {
        let policy = RetryPolicy {
            max_retries: 10,
            ..RetryPolicy::default()
        };
        let mut rng = SmallRng::seed_from_u64(7);
        let now = Instant::now();
        for retries in 0..6u32 {
            let window = Duration::from_secs(1 << retries).min(Duration::from_secs(8));
            let mut seen_max = Duration::ZERO;
            for _ in 0..200 {
                match policy.decide(
                    &BackendError::transient("503"),
                    retries,
                    now,
                    far(),
                    &mut rng,
                ) {
                    Decision::RetryIn(d) => {
                        assert!(d <= window, "{d:?} > {window:?}");
                        seen_max = seen_max.max(d);
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert!(seen_max > window / 2, "jitter spans the window");
        }
    }

    #[test]
    fn at_most_max_retries() {
        let mut rng = SmallRng::seed_from_u64(1);
        let d = RetryPolicy::default().decide(
            &BackendError::transient("503"),
            2,
            Instant::now(),
            far(),
            &mut rng,
        );
        assert_eq!(d, Decision::GiveUp("503 (gave up after 2 retries)".into()));
    }

    #[test]
    fn retry_after_is_honoured_clamped_and_never_past_the_deadline() {
        let mut rng = SmallRng::seed_from_u64(1);
        let now = Instant::now();
        let mut e = BackendError::transient("429");
        e.retry_after = Some(Duration::from_secs(3));
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(&e, 0, now, far(), &mut rng),
            Decision::RetryIn(Duration::from_secs(3))
        );
        e.retry_after = Some(Duration::from_secs(3_000));
        assert_eq!(
            policy.decide(&e, 0, now, far(), &mut rng),
            Decision::RetryIn(Duration::from_secs(60))
        );
        e.retry_after = Some(Duration::from_secs(20));
        let deadline = Some(now + Duration::from_secs(10));
        let Decision::GiveUp(why) = policy.decide(&e, 0, now, deadline, &mut rng) else {
            panic!("must fail fast")
        };
        assert!(
            why.contains("Retry-After in 20s would pass the deadline"),
            "{why}"
        );
    }
}
