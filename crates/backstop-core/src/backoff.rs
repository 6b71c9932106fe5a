//! Exponential backoff with full jitter, and server hints.
//!
//! Why *full* jitter: when many clients fail at the same moment (a provider's 503 burst), plain exponential backoff
//! makes them all come back at the same moments too, in synchronised waves. Drawing the whole delay uniformly from
//! `[0, min(max, base·2^(n-1))]` spreads the retries over the window; it does the least total work of the classic
//! variants while keeping the expected delay growing exponentially.
//!
//! Why a hint wins, and why a long hint means "move on": the server knows when it will take us again
//! (`Retry-After`, rate-limit reset headers). Waiting for it is better than guessing, as long as the wait fits our
//! own patience (`max`). A hint longer than `max` is not slept on at all: [`Backoff::delay`] answers `None`, and the
//! caller goes to the next candidate now instead of holding the request hostage.
//!
//! `Backoff` is stateless: the attempt number comes from the caller, so one value can be shared by every request.

use rand::RngExt;
use std::time::Duration;

/// Exponential backoff with full jitter; see the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The upper bound of the first delay (before the second attempt).
    pub base: Duration,
    /// The largest delay ever slept; also the longest server hint that is honoured.
    pub max: Duration,
}

impl Default for Backoff {
    /// `base` 500 ms, `max` 20 s, as in the gateway's default `[retry]` section.
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The backoff ceiling for an attempt: `min(max, base·2^(attempt-1))`, saturating (attempt 0 counts as 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.max(1) - 1;
        let factor = 1u32.checked_shl(exp.min(31)).unwrap_or(u32::MAX);
        let grown = self.base.checked_mul(factor).unwrap_or(Duration::MAX);
        grown.min(self.max)
    }

    /// The delay to sleep before the next attempt, or `None` to move on now.
    ///
    /// `attempt` counts the attempts made so far (1 = the delay before the second attempt). Without a hint the
    /// delay is uniform in `[0, ceiling(attempt)]`. With a hint `h <= max` the delay is `h` plus up to 10% of
    /// jitter, never above `max` and never below `h`. A hint above `max` gives `None`.
    pub fn delay(
        &self,
        attempt: u32,
        hint: Option<Duration>,
        rng: &mut impl rand::Rng,
    ) -> Option<Duration> {
        match hint {
            Some(h) if h > self.max => None,
            Some(h) => {
                let jitter = uniform(h / 10, rng);
                Some(h.saturating_add(jitter).min(self.max).max(h))
            }
            None => Some(uniform(self.ceiling(attempt), rng)),
        }
    }
}

/// A duration drawn uniformly from `[0, upper]` at nanosecond resolution (clamped to ~584 years).
fn uniform(upper: Duration, rng: &mut impl rand::Rng) -> Duration {
    let nanos = u64::try_from(upper.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff {
            base: ms(100),
            max: ms(1000),
        };
        assert_eq!(b.ceiling(0), ms(100));
        assert_eq!(b.ceiling(1), ms(100));
        assert_eq!(b.ceiling(2), ms(200));
        assert_eq!(b.ceiling(4), ms(800));
        assert_eq!(b.ceiling(5), ms(1000));
        assert_eq!(b.ceiling(u32::MAX), ms(1000));
    }

    #[test]
    fn long_hint_means_move_on() {
        let b = Backoff {
            base: ms(100),
            max: Duration::from_secs(5),
        };
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(b.delay(1, Some(Duration::from_secs(6)), &mut rng), None);
        let d = b.delay(1, Some(Duration::from_secs(5)), &mut rng);
        assert_eq!(d, Some(Duration::from_secs(5)));
    }

    #[test]
    fn jitter_is_spread_not_constant() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let mut rng = SmallRng::seed_from_u64(7);
        let draws: Vec<Duration> = (0..1000)
            .filter_map(|_| b.delay(1, None, &mut rng))
            .collect();
        let mean = draws.iter().sum::<Duration>() / 1000;
        assert!(mean > ms(400) && mean < ms(600), "mean {mean:?}");
        assert!(draws.iter().any(|d| *d < ms(100)));
        assert!(draws.iter().any(|d| *d > ms(900)));
    }

    proptest! {
        #[test]
        fn delay_bounds(base_ms in 0u64..10_000, max_ms in 0u64..100_000, attempt in 0u32..100,
                        hint_ms in proptest::option::of(0u64..200_000), seed: u64) {
            let b = Backoff { base: ms(base_ms), max: ms(max_ms) };
            let mut rng = SmallRng::seed_from_u64(seed);
            let d = b.delay(attempt, hint_ms.map(ms), &mut rng);
            match hint_ms {
                Some(h) if h > max_ms => prop_assert_eq!(d, None),
                Some(h) => {
                    let d = d.unwrap();
                    prop_assert!(d >= ms(h));
                    prop_assert!(d <= ms(max_ms));
                    prop_assert!(d <= ms(h) + ms(h) / 10);
                }
                None => {
                    let d = d.unwrap();
                    prop_assert!(d <= b.ceiling(attempt));
                    prop_assert!(d <= ms(max_ms));
                    let exp = attempt.max(1) - 1;
                    if exp < 20 {
                        prop_assert!(d <= ms(base_ms) * (1u32 << exp));
                    }
                }
            }
        }
    }
}
