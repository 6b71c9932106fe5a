//! A circuit breaker, one per target.
//!
//! Retrying a target that is down wastes the caller's time (every request waits for its own timeouts) and the
//! target's recovery (every request adds load). A breaker remembers: after enough failures it *opens* and the target
//! is skipped without a call, so requests go straight to the next candidate. After `open_for` it lets a few *probe*
//! requests through (*half-open*); if they succeed it closes again, if one fails it reopens.
//!
//! It opens on whichever comes first:
//! - `failure_threshold` consecutive failures (a hard outage is caught after a handful of calls),
//! - a failure rate of at least `failure_rate` over the sliding `window`, once `min_calls` calls were seen there
//!   (a flaky target that sometimes succeeds never reaches the consecutive count),
//! - one [`FailureClass::TargetBroken`] (bad key, no quota): no amount of retrying fixes that.
//!
//! Only failures of the target count: context-length, content-filter and permanent errors are the request's fault
//! and count as successes (see [`FailureClass::is_target_failure`]).
//!
//! A [`Permit`] is taken before each call and must live until the call has really ended: for a streamed response,
//! until the end of the body, so that a stream that dies after its headers still counts. A permit dropped without
//! a record (the client went away) counts for nothing, but frees its half-open probe slot. A permit issued before
//! the breaker changed state is stale and its record is ignored: only the probes decide a half-open breaker.

use crate::class::{FailureClass, Verdict};
use crate::deadline::later;
use crate::observer::{NoopObserver, Observer};
use crate::window::SlotRing;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The slots of the failure-rate window.
const SLOTS: u32 = 10;

/// A breaker's thresholds. Zero or out-of-range values are read as documented on each field.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive target failures that open the breaker (0 disables this rule).
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

impl Default for BreakerConfig {
    /// 5 consecutive failures, or 50% over 30 s with at least 20 calls; open for 30 s; 1 probe at a time; 2
    /// successes to close.
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
    /// Opened by hand ([`Breaker::force_open`]).
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
    /// The state that refused the call (`Open` or `HalfOpen`).
    pub state: BreakerState,
}

/// A point-in-time view of a breaker, for `/status` and admin pages.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: BreakerState,
    /// Target failures since the last success (closed state).
    pub consecutive_failures: u32,
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
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Closed,
    Open { until: Option<Instant> },
    HalfOpen { in_flight: u32, successes: u32 },
}

impl Mode {
    fn state(self) -> BreakerState {
        match self {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

type Transition = (BreakerState, BreakerState, Option<TripReason>);

struct Inner {
    mode: Mode,
    epoch: u64,
    consecutive: u32,
    ring: SlotRing,
    last_trip: Option<TripReason>,
    opened_at: Option<Instant>,
    trips: u64,
    /// Transitions to report once the lock is released.
    pending: Vec<Transition>,
}

struct Shared {
    name: String,
    config: BreakerConfig,
    observer: Arc<dyn Observer>,
    inner: Mutex<Inner>,
}

/// A circuit breaker; see the [module documentation](self). Cheap to clone (clones share the state).
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish()
    }
}

/// The right to make one call; record its outcome with [`Permit::record`] (or drop it to ignore the call).
#[must_use = "a permit must be recorded when the call ends"]
pub struct Permit {
    shared: Option<Arc<Shared>>,
    epoch: u64,
    probe: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("epoch", &self.epoch)
            .field("probe", &self.probe)
            .finish()
    }
}

/// What a recorded call says about the target.
enum Health {
    Good,
    Bad,
    Broken(String),
}

impl Breaker {
    /// A breaker without a name or observer.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker::new_with_observer("", config, Arc::new(NoopObserver))
    }

    /// A breaker that reports its transitions to `observer` under the target name `name`.
    pub fn new_with_observer(
        name: impl Into<String>,
        config: BreakerConfig,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let ring = SlotRing::new(config.window, SLOTS, Instant::now());
        let inner = Inner {
            mode: Mode::Closed,
            epoch: 0,
            consecutive: 0,
            ring,
            last_trip: None,
            opened_at: None,
            trips: 0,
            pending: Vec::new(),
        };
        Breaker {
            shared: Arc::new(Shared {
                name: name.into(),
                config,
                observer,
                inner: Mutex::new(inner),
            }),
        }
    }

    /// The target name given at creation.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Asks to make one call.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let now = Instant::now();
        let shared = &self.shared;
        let result = shared.with(now, |inner| match inner.mode {
            Mode::Closed => Ok((inner.epoch, false)),
            Mode::HalfOpen {
                in_flight,
                successes,
            } => {
                if in_flight < shared.config.half_open_probes.max(1) {
                    inner.mode = Mode::HalfOpen {
                        in_flight: in_flight + 1,
                        successes,
                    };
                    Ok((inner.epoch, true))
                } else {
                    Err(Rejected {
                        retry_at: now,
                        state: BreakerState::HalfOpen,
                    })
                }
            }
            Mode::Open { until } => Err(Rejected {
                retry_at: until.unwrap_or(later(now, shared.config.open_for)),
                state: BreakerState::Open,
            }),
        });
        result.map(|(epoch, probe)| Permit {
            shared: Some(Arc::clone(&self.shared)),
            epoch,
            probe,
        })
    }

    /// The current state (an open breaker whose `open_for` has passed reports, and becomes, half-open).
    pub fn state(&self) -> BreakerState {
        self.shared.with(Instant::now(), |inner| inner.mode.state())
    }

    /// A view of the counters, for status pages.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        self.shared.with(now, |inner| {
            let (calls, failures) = match inner.mode {
                Mode::Closed => inner.ring.sums(now),
                Mode::Open { .. } | Mode::HalfOpen { .. } => (0, 0),
            };
            let (reopens_at, half_open_in_flight) = match inner.mode {
                Mode::Closed => (None, 0),
                Mode::Open { until } => (until, 0),
                Mode::HalfOpen { in_flight, .. } => (None, in_flight),
            };
            BreakerSnapshot {
                state: inner.mode.state(),
                consecutive_failures: inner.consecutive,
                window_calls: calls,
                window_failures: failures,
                error_rate: if calls == 0 {
                    0.0
                } else {
                    failures as f64 / calls as f64
                },
                last_trip: inner.last_trip.clone(),
                opened_at: inner.opened_at,
                reopens_at,
                half_open_in_flight,
                trips: inner.trips,
            }
        })
    }

    /// Opens the breaker by hand, for `for_` (then half-open as usual) or, with `None`, until [`force_close`].
    ///
    /// [`force_close`]: Breaker::force_close
    pub fn force_open(&self, for_: Option<Duration>) {
        let now = Instant::now();
        self.shared.with(now, |inner| {
            let until = for_.map(|d| later(now, d));
            inner.trip(now, until, TripReason::Forced);
        });
    }

    /// Closes the breaker by hand and forgets its failure counts.
    pub fn force_close(&self) {
        self.shared.with(Instant::now(), Inner::close);
    }
}

impl Shared {
    /// Runs `f` under the lock after applying the lazy Open -> HalfOpen transition, then reports transitions.
    fn with<R>(&self, now: Instant, f: impl FnOnce(&mut Inner) -> R) -> R {
        let (result, transitions) = {
            let mut inner = self.lock();
            inner.refresh(now);
            let result = f(&mut inner);
            (result, std::mem::take(&mut inner.pending))
        };
        for (from, to, reason) in &transitions {
            self.observer
                .breaker_transition(&self.name, *from, *to, reason.as_ref());
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few integers; a panic elsewhere cannot leave it unusable.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn record(&self, epoch: u64, probe: bool, health: Health) {
        let now = Instant::now();
        let config = &self.config;
        self.with(now, |inner| {
            if inner.epoch != epoch {
                return;
            }
            match (inner.mode, health) {
                (Mode::Open { .. }, _) => {}
                (_, Health::Broken(detail)) => {
                    let until = Some(later(now, config.open_for));
                    inner.trip(now, until, TripReason::TargetBroken(detail));
                }
                (Mode::Closed, Health::Good) => {
                    inner.consecutive = 0;
                    inner.ring.add(now, 1, 0);
                }
                (Mode::Closed, Health::Bad) => {
                    inner.consecutive += 1;
                    inner.ring.add(now, 1, 1);
                    let (calls, failures) = inner.ring.sums(now);
                    let rate = failures as f64 / calls.max(1) as f64;
                    let rate_rule = config.failure_rate > 0.0 && config.failure_rate <= 1.0;
                    let until = Some(later(now, config.open_for));
                    if config.failure_threshold > 0 && inner.consecutive >= config.failure_threshold
                    {
                        let n = inner.consecutive;
                        inner.trip(now, until, TripReason::ConsecutiveFailures(n));
                    } else if rate_rule
                        && calls >= u64::from(config.min_calls.max(1))
                        && rate >= config.failure_rate
                    {
                        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
                        inner.trip(now, until, TripReason::FailureRate { rate, calls });
                    }
                }
                (Mode::HalfOpen { .. }, Health::Bad) => {
                    inner.trip(
                        now,
                        Some(later(now, config.open_for)),
                        TripReason::HalfOpenProbeFailed,
                    );
                }
                (
                    Mode::HalfOpen {
                        in_flight,
                        successes,
                    },
                    Health::Good,
                ) => {
                    let successes = successes + u32::from(probe);
                    if successes >= config.success_threshold.max(1) {
                        inner.close();
                    } else {
                        let in_flight = in_flight.saturating_sub(u32::from(probe));
                        inner.mode = Mode::HalfOpen {
                            in_flight,
                            successes,
                        };
                    }
                }
            }
        });
    }

    fn release(&self, epoch: u64) {
        self.with(Instant::now(), |inner| {
            if let (
                true,
                Mode::HalfOpen {
                    in_flight,
                    successes,
                },
            ) = (inner.epoch == epoch, inner.mode)
            {
                inner.mode = Mode::HalfOpen {
                    in_flight: in_flight.saturating_sub(1),
                    successes,
                };
            }
        });
    }
}

impl Inner {
    fn set_mode(&mut self, mode: Mode, reason: Option<TripReason>) {
        let from = self.mode.state();
        self.mode = mode;
        self.epoch += 1;
        let to = mode.state();
        if from != to {
            self.pending.push((from, to, reason));
        }
    }

    fn refresh(&mut self, now: Instant) {
        if let Mode::Open { until: Some(until) } = self.mode {
            if now >= until {
                self.set_mode(
                    Mode::HalfOpen {
                        in_flight: 0,
                        successes: 0,
                    },
                    None,
                );
            }
        }
    }

    fn trip(&mut self, now: Instant, until: Option<Instant>, reason: TripReason) {
        self.trips += 1;
        self.opened_at = Some(now);
        self.last_trip = Some(reason.clone());
        self.consecutive = 0;
        self.ring.clear();
        self.set_mode(Mode::Open { until }, Some(reason));
    }

    fn close(&mut self) {
        self.consecutive = 0;
        self.ring.clear();
        match self.mode {
            Mode::Closed => {}
            Mode::Open { .. } | Mode::HalfOpen { .. } => self.set_mode(Mode::Closed, None),
        }
    }
}

impl Permit {
    /// Records the call's verdict: successes and request-side failures are good for the target's health,
    /// target failures are bad, and [`FailureClass::TargetBroken`] opens the breaker at once.
    pub fn record(self, verdict: &Verdict) {
        match verdict {
            Verdict::Success => self.record_success(),
            Verdict::Failure { class, .. } => self.record_failure(*class),
        }
    }

    /// Records a success.
    pub fn record_success(self) {
        self.finish(Health::Good);
    }

    /// Records a failure of the given class.
    pub fn record_failure(self, class: FailureClass) {
        let health = match class {
            FailureClass::TargetBroken => Health::Broken(class.as_str().to_owned()),
            FailureClass::Transient | FailureClass::Unavailable => Health::Bad,
            FailureClass::ContextLength | FailureClass::ContentFilter | FailureClass::Permanent => {
                Health::Good
            }
        };
        self.finish(health);
    }

    /// Records a [`FailureClass::TargetBroken`] failure with a detail for [`TripReason::TargetBroken`]
    /// (e.g. `"401 invalid_api_key"`; never put a secret in it).
    pub fn record_target_broken(self, detail: impl Into<String>) {
        self.finish(Health::Broken(detail.into()));
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    fn finish(mut self, health: Health) {
        if let Some(shared) = self.shared.take() {
            shared.record(self.epoch, self.probe, health);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let (Some(shared), true) = (self.shared.take(), self.probe) {
            shared.release(self.epoch);
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
