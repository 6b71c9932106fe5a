//! Choosing among a model's targets: the same model served over several channels.
//!
//! [`order`] turns the candidates into the order in which to try them. The first pick spreads the load; the rest
//! of the order is the failover sequence for that request.
//!
//! - [`Strategy::Weighted`]: weighted random without replacement. With weights 3 and 1 the first target is picked
//!   first 75% of the time, and the other one is then its failover.
//! - [`Strategy::LeastLatency`]: *power of two choices* on latency (EWMA of time to first byte, see
//!   [`LatencyStats`]) for the first pick: two candidates are drawn at random and the faster one wins. Always taking
//!   the single fastest would stampede it; two random choices get most of the benefit while keeping the load
//!   spread. A candidate with no latency yet wins its duel, so new or recovered targets get explored. The failover
//!   sequence after the first pick is by latency, known latencies before unknown ones.
//!
//! In both strategies candidates with weight 0 are standbys: available, but only after all weighted ones.
//! Unavailable candidates (open breaker) are put last, in their given order, rather than dropped: a caller walking
//! the list with breaker permits skips them at no cost, and learns when they reopen.

use rand::RngExt;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

/// A balancing strategy; parses from `"weighted"` and `"least_latency"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Weighted random.
    #[default]
    Weighted,
    /// Power of two choices on latency.
    LeastLatency,
}

impl Strategy {
    /// `"weighted"` or `"least_latency"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Weighted => "weighted",
            Strategy::LeastLatency => "least_latency",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown strategy name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown balancing strategy {0:?}: expected \"weighted\" or \"least_latency\"")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "weighted" => Ok(Strategy::Weighted),
            "least_latency" => Ok(Strategy::LeastLatency),
            other => Err(UnknownStrategy(other.to_owned())),
        }
    }
}

/// What [`order`] needs to know about one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceCandidate {
    /// Its share of the traffic (0: standby).
    pub weight: u32,
    /// Its latency estimate, if any ([`LatencyStats::estimate`]).
    pub latency: Option<Duration>,
    /// `false` when its breaker is open.
    pub available: bool,
}

/// The order in which to try `candidates`, as indices; see the [module documentation](self).
pub fn order(
    strategy: Strategy,
    candidates: &[BalanceCandidate],
    rng: &mut impl rand::Rng,
) -> Vec<usize> {
    let mut weighted: Vec<usize> = Vec::with_capacity(candidates.len());
    let mut standby = Vec::new();
    let mut unavailable = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match (c.available, c.weight) {
            (false, _) => unavailable.push(i),
            (true, 0) => standby.push(i),
            (true, _) => weighted.push(i),
        }
    }
    let mut out = match strategy {
        Strategy::Weighted => weighted_order(candidates, weighted, rng),
        Strategy::LeastLatency => latency_order(candidates, weighted, rng),
    };
    out.extend(standby);
    out.extend(unavailable);
    out
}

fn weighted_order(
    all: &[BalanceCandidate],
    mut pool: Vec<usize>,
    rng: &mut impl rand::Rng,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(pool.len());
    while !pool.is_empty() {
        let total: u64 = pool.iter().map(|&i| u64::from(all[i].weight)).sum();
        let mut ticket = rng.random_range(0..total.max(1));
        let mut pick = pool.len() - 1;
        for (pos, &i) in pool.iter().enumerate() {
            let w = u64::from(all[i].weight);
            if ticket < w {
                pick = pos;
                break;
            }
            ticket -= w;
        }
        out.push(pool.remove(pick));
    }
    out
}

fn latency_order(
    all: &[BalanceCandidate],
    mut pool: Vec<usize>,
    rng: &mut impl rand::Rng,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(pool.len());
    if pool.len() >= 2 {
        let a = rng.random_range(0..pool.len());
        let mut b = rng.random_range(0..pool.len() - 1);
        if b >= a {
            b += 1;
        }
        let better = match (all[pool[a]].latency, all[pool[b]].latency) {
            (None, _) => a,
            (Some(_), None) => b,
            (Some(la), Some(lb)) => {
                if lb < la {
                    b
                } else {
                    a
                }
            }
        };
        out.push(pool.remove(better));
    }
    // Known latencies first, fastest first; unknown ones after, in their given order (the sort is stable).
    pool.sort_by_key(|&i| match all[i].latency {
        Some(l) => (0u8, l),
        None => (1u8, Duration::ZERO),
    });
    out.extend(pool);
    out
}

/// Latency of one target: an EWMA for balancing and a window of recent samples for percentiles. `Send + Sync`.
#[derive(Debug)]
pub struct LatencyStats {
    alpha: f64,
    capacity: usize,
    inner: Mutex<LatencyInner>,
}

#[derive(Debug, Default)]
struct LatencyInner {
    ewma: Option<f64>,
    samples: VecDeque<Duration>,
    count: u64,
}

/// Latency percentiles over the recent samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyPercentiles {
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Number of samples they were computed from.
    pub samples: usize,
}

impl Default for LatencyStats {
    fn default() -> Self {
        LatencyStats::new()
    }
}

impl LatencyStats {
    /// EWMA weight 0.3 for each new sample, percentiles over the last 256 samples.
    pub fn new() -> Self {
        LatencyStats::with_params(0.3, 256)
    }

    /// A custom EWMA weight (clamped to `(0, 1]`) and sample window (at least 1).
    pub fn with_params(alpha: f64, samples: usize) -> Self {
        let alpha = if alpha.is_finite() && alpha > 0.0 {
            alpha.min(1.0)
        } else {
            0.3
        };
        LatencyStats {
            alpha,
            capacity: samples.max(1),
            inner: Mutex::new(LatencyInner::default()),
        }
    }

    /// Adds one sample (time to first byte of a successful attempt, typically).
    pub fn observe(&self, d: Duration) {
        let alpha = self.alpha;
        let capacity = self.capacity;
        self.with(|inner| {
            let x = d.as_secs_f64();
            inner.ewma = Some(match inner.ewma {
                Some(prev) => prev + alpha * (x - prev),
                None => x,
            });
            if inner.samples.len() == capacity {
                inner.samples.pop_front();
            }
            inner.samples.push_back(d);
            inner.count += 1;
        });
    }

    /// The EWMA, `None` before the first sample.
    pub fn estimate(&self) -> Option<Duration> {
        self.with(|inner| inner.ewma.and_then(|s| Duration::try_from_secs_f64(s).ok()))
    }

    /// Samples observed since creation.
    pub fn count(&self) -> u64 {
        self.with(|inner| inner.count)
    }

    /// The `q` quantile (0.0 to 1.0, nearest rank) of the recent samples.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.with(|inner| inner.samples.iter().copied().collect::<Vec<_>>());
        sorted.sort_unstable();
        nearest_rank(&sorted, q)
    }

    /// p50, p95 and p99 of the recent samples, `None` before the first sample.
    pub fn percentiles(&self) -> Option<LatencyPercentiles> {
        let mut sorted = self.with(|inner| inner.samples.iter().copied().collect::<Vec<_>>());
        sorted.sort_unstable();
        Some(LatencyPercentiles {
            p50: nearest_rank(&sorted, 0.5)?,
            p95: nearest_rank(&sorted, 0.95)?,
            p99: nearest_rank(&sorted, 0.99)?,
            samples: sorted.len(),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut LatencyInner) -> R) -> R {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

fn nearest_rank(sorted: &[Duration], q: f64) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let q = if q.is_finite() {
        q.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let rank = (q * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
