//! The breaker's public vocabulary: configuration, states, trip reasons, refusals and snapshots.

use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// A breaker's thresholds. Zero or out-of-range values are read as documented on each field.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive target failures that open the breaker while the window holds at most `min_calls` calls; more
    /// at higher traffic, see [`BreakerConfig::consecutive_threshold`] (0 disables this rule).
    pub failure_threshold: u32,
    /// Failure rate over `window` that opens the breaker (outside `(0, 1]` disables this rule).
    pub failure_rate: f64,
    /// The sliding window of the failure rate.
    pub window: Duration,
    /// Calls needed in the window before the failure rate counts (at least 1).
    pub min_calls: u32,
    /// How long the breaker stays open before letting probes through.
    pub open_for: Duration,
    /// Probes allowed at the same time when half-open (at least 1).
    pub half_open_probes: u32,
    /// Successful probes needed to close (at least 1).
    pub success_threshold: u32,
}

impl BreakerConfig {
    /// The consecutive failures that open the breaker when the window holds `calls` calls (`None`: the rule is
    /// off): `failure_threshold` up to `min_calls` calls, then one more each time the calls are multiplied by
    /// `1 / failure_rate`, so that chance runs do not trip it at high traffic (see the
    /// [module documentation](super)). Without a rate rule (`failure_rate` outside `(0, 1)`) it stays at
    /// `failure_threshold`.
    pub fn consecutive_threshold(&self, calls: u64) -> Option<u32> {
        let base = self.failure_threshold;
        if base == 0 {
            return None;
        }
        let min_calls = u64::from(self.min_calls.max(1));
        let rate = self.failure_rate;
        if !(rate > 0.0 && rate < 1.0) || calls <= min_calls {
            return Some(base);
        }
        let growth = (calls as f64 / min_calls as f64).ln() / (1.0 / rate).ln();
        // The tolerance keeps an exact power (ln 8 / ln 2 = 3.0000000000000004) from being rounded up.
        let extra = (growth - 1e-9).ceil();
        // `as` saturates: a rate near 1 at huge volume gives u32::MAX, that is "never".
        Some(base.saturating_add(extra as u32))
    }
}

impl Default for BreakerConfig {
    /// 50% over 30 s with at least 20 calls, or 5 consecutive failures (more at higher traffic); open for 30 s; 1
    /// probe at a time; 2 successes to close.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(30),
            min_calls: 20,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
            success_threshold: 2,
        }
    }
}

/// The state of a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// A limited number of probe calls go through.
    HalfOpen,
    /// Calls are refused.
    Open,
}

impl BreakerState {
    /// The value of the `backstop_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    /// `"closed"`, `"half_open"` or `"open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker opened.
#[derive(Clone, Debug, PartialEq)]
pub enum TripReason {
    /// This many consecutive target failures.
    ConsecutiveFailures(u32),
    /// The failure rate over the window.
    FailureRate {
        /// Failures divided by calls.
        rate: f64,
        /// Calls in the window.
        calls: u32,
    },
    /// A failure that no retry can fix (credentials, permission, billing), with a detail for the logs.
    TargetBroken(String),
    /// Opened by hand ([`Breaker::force_open`](super::Breaker::force_open)).
    Forced,
    /// A half-open probe failed.
    HalfOpenProbeFailed,
}

impl fmt::Display for TripReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TripReason::ConsecutiveFailures(n) => write!(f, "{n} consecutive failures"),
            TripReason::FailureRate { rate, calls } => {
                write!(f, "failure rate {:.0}% over {calls} calls", rate * 100.0)
            }
            TripReason::TargetBroken(detail) => write!(f, "target broken: {detail}"),
            TripReason::Forced => f.write_str("forced open"),
            TripReason::HalfOpenProbeFailed => f.write_str("half-open probe failed"),
        }
    }
}

/// A call refused by the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit {state}: no call allowed before {retry_at:?}")]
pub struct Rejected {
    /// The earliest time a call may be let through (now, if half-open with all probe slots taken).
    pub retry_at: Instant,
    /// The state that refused the call (`Open` or `HalfOpen`; `Open` for a target held by a rate-limit hint).
    pub state: BreakerState,
}

/// A point-in-time view of a breaker, for `/status` and admin pages.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: BreakerState,
    /// Target failures since the last success (closed state).
    pub consecutive_failures: u32,
    /// The consecutive failures that would open it at the window's current volume (`None`: that rule is off).
    pub consecutive_threshold: Option<u32>,
    /// Calls recorded in the sliding window (closed state).
    pub window_calls: u64,
    /// Target failures among them.
    pub window_failures: u64,
    /// `window_failures / window_calls`, 0 without calls.
    pub error_rate: f64,
    /// Why it last opened.
    pub last_trip: Option<TripReason>,
    /// When it last opened.
    pub opened_at: Option<Instant>,
    /// When it turns half-open, if open (`None` when forced open without a limit).
    pub reopens_at: Option<Instant>,
    /// Probes in flight (half-open state).
    pub half_open_in_flight: u32,
    /// How many times it opened since creation.
    pub trips: u64,
    /// Calls are refused until then: the target asked for a pause (see [`Breaker::hold_for`]).
    ///
    /// [`Breaker::hold_for`]: super::Breaker::hold_for
    pub held_until: Option<Instant>,
}
