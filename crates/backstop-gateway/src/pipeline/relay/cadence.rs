//! Stall detection from a stream's own cadence (`timeouts.idle = "auto"`).
//!
//! A fixed idle timeout must be long enough for the slowest healthy stream, so a stream that
//! stopped after twenty tokens keeps its client waiting that long before it is rescued. The
//! learned rule watches the gaps between the stream's events instead: once it has seen
//! [`WARMUP`] events, a silence longer than [`K`] times its 99th-percentile gap so far is a
//! stall, but never one shorter than the floor (`timeouts.idle_floor`, and one and a half
//! times the longest pause the target's recent complete streams made) nor longer than
//! `timeouts.idle_max`, which also applies until the cadence is known.
//!
//! The trade-off: a model that pauses mid-answer for longer than ten times its slowest usual
//! gap (a long tool-use preamble after a fast stream of text) is taken for stalled and
//! continued elsewhere, unless its target has made such pauses in complete streams before:
//! then the learned floor covers them. A stream whose pauses stay under three times its usual
//! gap is never cut by the rule.

use crate::config::Idle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Events a stream must deliver before its own cadence is trusted.
pub const WARMUP: u32 = 8;
/// How many times its 99th-percentile gap a stream may be silent.
pub const K: u32 = 10;
/// Histogram buckets per doubling of the gap: a percentile is known within 19%.
const PER_OCTAVE: f64 = 4.0;
/// Buckets for gaps from 1 µs to about 18 hours.
const BUCKETS: usize = 144;

/// Which rule declared a stall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A fixed `idle`.
    Fixed,
    /// The learned rule of `idle = "auto"`.
    Adaptive,
}

impl Rule {
    /// Its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Fixed => "fixed",
            Rule::Adaptive => "adaptive",
        }
    }
}

/// The gaps between one stream's events.
pub struct Cadence {
    events: u32,
    last: Option<Instant>,
    counts: Box<[u16; BUCKETS]>,
    longest: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        Self {
            events: 0,
            last: None,
            counts: Box::new([0; BUCKETS]),
            longest: Duration::ZERO,
        }
    }
}

impl Cadence {
    /// An event arrived at `now`.
    pub fn event(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            self.longest = self.longest.max(gap);
            let slot = &mut self.counts[bucket(gap)];
            *slot = slot.saturating_add(1);
        }
        self.last = Some(now);
        self.events = self.events.saturating_add(1);
    }

    /// The time since the last event (zero before the first).
    pub fn since_last_event(&self, now: Instant) -> Duration {
        self.last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
    }

    /// Starts over, for a continuation's stream (another target, another cadence).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The longest gap between two events, once the cadence is known.
    pub fn longest_pause(&self) -> Option<Duration> {
        (self.events >= WARMUP).then_some(self.longest)
    }

    /// How long a silence may last before it is a stall, and the rule that says so. `usual`
    /// is the longest pause the target's recent complete streams made.
    pub fn stall_after(&self, idle: Idle, usual: Duration) -> (Duration, Rule) {
        let (floor, max) = match idle {
            Idle::Fixed(idle) => return (idle, Rule::Fixed),
            Idle::Auto { floor, max } => (floor, max),
        };
        if self.events < WARMUP {
            return (max, Rule::Adaptive);
        }
        let learned = self.percentile(0.99).saturating_mul(K);
        let floor = floor.max(usual.saturating_add(usual / 2));
        (learned.max(floor).min(max), Rule::Adaptive)
    }

    /// The gap under which a share `q` of the gaps fall (rounded up to its bucket's end). It
    /// is asked before every read of the stream, so it walks down from the longest gap: only
    /// the few buckets of the slowest `1 - q` of the gaps.
    fn percentile(&self, q: f64) -> Duration {
        let total = u64::from(self.events.saturating_sub(1));
        let above = total - (((total as f64) * q).ceil().max(1.0) as u64).min(total);
        let mut seen = 0;
        for index in (0..=bucket(self.longest)).rev() {
            seen += u64::from(self.counts[index]);
            if seen > above {
                return bucket_end(index);
            }
        }
        self.longest
    }
}

fn bucket(gap: Duration) -> usize {
    let micros = gap.as_micros().max(1) as f64;
    ((micros.log2() * PER_OCTAVE) as usize).min(BUCKETS - 1)
}

fn bucket_end(index: usize) -> Duration {
    Duration::from_micros(2f64.powf((index + 1) as f64 / PER_OCTAVE) as u64)
}

/// The pauses a target's complete streams make: the longest of each, remembered with a slow
/// decay (each new stream takes an eighth off the old value before comparing).
#[derive(Default)]
pub struct UsualPause {
    micros: AtomicU64,
}

impl UsualPause {
    /// The longest pause the target's recent complete streams made.
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    /// A complete stream whose longest pause was `longest`.
    pub fn learn(&self, longest: Duration) {
        let new = u64::try_from(longest.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(new.max(old - old / 8))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    const AUTO: Idle = Idle::Auto {
        floor: Duration::from_secs(2),
        max: Duration::from_secs(30),
    };

    fn stream(gaps: &[Duration]) -> Cadence {
        let mut cadence = Cadence::default();
        let mut at = Instant::now();
        cadence.event(at);
        for gap in gaps {
            at += *gap;
            cadence.event(at);
        }
        cadence
    }

    #[test]
    fn until_the_cadence_is_known_idle_max_applies() {
        let cadence = stream(&[Duration::from_millis(20); 5]);
        assert_eq!(
            cadence.stall_after(AUTO, Duration::ZERO),
            (Duration::from_secs(30), Rule::Adaptive)
        );
    }

    #[test]
    fn a_fast_stream_stalls_at_the_floor() {
        let cadence = stream(&[Duration::from_millis(30); 20]);
        assert_eq!(
            cadence.stall_after(AUTO, Duration::ZERO).0,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_slow_stream_may_pause_ten_times_its_gap() {
        let cadence = stream(&[Duration::from_secs(1); 20]);
        let (after, _) = cadence.stall_after(AUTO, Duration::ZERO);
        assert!(
            after >= Duration::from_secs(10) && after <= Duration::from_secs(12),
            "{after:?}"
        );
    }

    #[test]
    fn a_target_that_pauses_raises_its_own_floor() {
        let usual = UsualPause::default();
        usual.learn(Duration::from_secs(6));
        let cadence = stream(&[Duration::from_millis(30); 20]);
        assert_eq!(
            cadence.stall_after(AUTO, usual.get()).0,
            Duration::from_secs(9)
        );
        usual.learn(Duration::from_millis(40));
        assert!(usual.get() > Duration::from_secs(5), "it decays slowly");
    }

    #[test]
    fn a_fixed_idle_is_the_rule() {
        let cadence = stream(&[Duration::from_millis(30); 20]);
        let fixed = Idle::Fixed(Duration::from_secs(7));
        assert_eq!(
            cadence.stall_after(fixed, Duration::ZERO),
            (Duration::from_secs(7), Rule::Fixed)
        );
    }

    /// 10,000 streams with random usual gaps (5 ms to 2 s, jittered) and pauses of up to
    /// three times their usual gap: the rule never takes one of them for a stall.
    #[test]
    fn no_false_stall_when_pauses_stay_under_three_usual_gaps() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut false_stalls = 0;
        for _ in 0..10_000 {
            let usual = Duration::from_micros(rng.random_range(5_000..2_000_000));
            let events = rng.random_range(WARMUP as usize..400);
            let mut cadence = Cadence::default();
            let mut at = Instant::now();
            cadence.event(at);
            for _ in 0..events {
                let gap = usual.mul_f64(rng.random_range(0.5..1.5));
                let pause = rng.random_bool(0.05);
                let gap = if pause {
                    usual.mul_f64(rng.random_range(1.0..3.0))
                } else {
                    gap
                };
                let (allowed, _) = cadence.stall_after(AUTO, Duration::ZERO);
                if gap > allowed {
                    false_stalls += 1;
                    break;
                }
                at += gap;
                cadence.event(at);
            }
        }
        assert_eq!(false_stalls, 0);
    }
}
