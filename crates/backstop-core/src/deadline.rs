//! One deadline for the whole request.
//!
//! Per-attempt timeouts alone do not bound a request: three attempts on each of three candidates, each with a 30 s
//! timeout plus backoff, is several minutes, long after the caller gave up. A [`Deadline`] is fixed once, when the
//! request starts, and every attempt, every backoff sleep and every fallback shares it: the executor never sleeps
//! past it and cuts the attempt in flight when it passes. Nothing hangs.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// About thirty years: "never" for a deadline, still far from `Instant` overflow.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + d`, saturating at about thirty years from now instead of overflowing.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FAR_FUTURE)).unwrap_or(now)
}

/// A point in time after which the work is abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

/// The deadline passed before the work finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

impl Deadline {
    /// The deadline `d` from now (a huge `d` saturates at about thirty years).
    pub fn after(d: Duration) -> Self {
        Deadline {
            at: later(Instant::now(), d),
        }
    }

    /// The deadline at a given instant.
    pub fn at(at: Instant) -> Self {
        Deadline { at }
    }

    /// The instant of the deadline.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Whether waiting `d` from now still ends strictly before the deadline.
    pub fn allows(&self, d: Duration) -> bool {
        d < self.remaining()
    }

    /// The earlier of this deadline and `other`.
    pub fn earliest(self, other: Option<Deadline>) -> Deadline {
        match other {
            Some(o) if o.at < self.at => o,
            Some(_) | None => self,
        }
    }

    /// Runs `f` until it finishes or the deadline passes, whichever comes first.
    pub async fn run<F: Future>(self, f: F) -> Result<F::Output, Elapsed> {
        tokio::time::timeout_at(self.at, f)
            .await
            .map_err(|_| Elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_and_expiry() {
        let d = Deadline::after(Duration::from_secs(10));
        assert_eq!(d.remaining(), Duration::from_secs(10));
        assert!(d.allows(Duration::from_secs(9)));
        assert!(!d.allows(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(d.remaining(), Duration::from_secs(6));
        assert!(!d.expired());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(d.expired());
        assert_eq!(d.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn run_cuts_slow_work() {
        let start = Instant::now();
        let d = Deadline::after(Duration::from_secs(2));
        let slow = d.run(tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(slow, Err(Elapsed));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let d = Deadline::after(Duration::from_secs(2));
        assert_eq!(d.run(async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn huge_durations_saturate_and_earliest_picks() {
        let far = Deadline::after(Duration::MAX);
        assert!(far.remaining() >= Duration::from_secs(86_400 * 365));
        let near = Deadline::after(Duration::from_secs(1));
        assert_eq!(far.earliest(Some(near)), near);
        assert_eq!(near.earliest(Some(far)), near);
        assert_eq!(near.earliest(None), near);
        assert_eq!(Deadline::at(near.instant()), near);
    }
}
