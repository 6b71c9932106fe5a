//! A circuit breaker, one per target.
//!
//! Retrying a target that is down wastes the caller's time (every request waits for its own timeouts) and the
//! target's recovery (every request adds load). A breaker remembers: after enough failures it *opens* and the target
//! is skipped without a call, so requests go straight to the next candidate. After `open_for` it lets a few *probe*
//! requests through (*half-open*); if they succeed it closes again, if one fails it reopens.
//!
//! It opens on whichever comes first:
//! - a failure rate of at least `failure_rate` over the sliding `window`, once `min_calls` calls were seen there:
//!   the judge of health, since a rate over many calls is what tells a flaky target from an unlucky one;
//! - a run of consecutive failures, `failure_threshold` of them while the window holds at most `min_calls` calls,
//!   more as the traffic grows (below): this is the quick rule, that catches a hard outage after a handful of calls
//!   instead of after a window's worth of them;
//! - one [`FailureClass::TargetBroken`] (bad key, no quota): no amount of retrying fixes that.
//!
//! # Why the run grows with the traffic
//!
//! A target that fails a fraction `p` of its calls, independently, starts a run of `k` failures at a given call with
//! probability about `(1 - p) p^k`, so over the `n` calls of a window it makes about `n (1 - p) p^k` such runs by
//! chance. A fixed run length therefore trips on noise as soon as the traffic is high enough: at 30% failures and
//! 200 calls/s, runs of 5 come every 2 seconds (`200 × 0.7 × 0.3^5 ≈ 0.34` per second), and the breaker would throw
//! away a target that the failure rate calls healthy, and that retries would have kept serving.
//!
//! So the run that opens the breaker, with `n` calls in the window, `m = min_calls`, `t = failure_threshold` and
//! `q = failure_rate`, is
//!
//! ```text
//! k(n) = t                            for n <= m
//! k(n) = t + ceil(log(n / m) / log(1 / q))   for n > m
//! ```
//!
//! one more failure each time the volume is multiplied by `1 / q`. This keeps `n q^k` constant: a target failing at
//! exactly the tolerated rate `q` makes such a run by chance no more often in a busy window than in a window of `m`
//! calls, and one failing at any lower rate `p` ever more rarely as the traffic grows (`n p^k` falls like
//! `n^(1 - log p / log q)`). With the defaults (`t` 5, `q` 0.5, `m` 20, 30 s window) at 200 calls/s, `n` is
//! about 6,000 and `k` is 14: a 30%-failing target makes such a run about once in 5,000 windows (almost two days),
//! while a dead one is still caught after 14 calls, within a tenth of a second at that rate. At low traffic (at most
//! `m` calls in the window, where the rate says little) 5 consecutive failures open it as before.
//!
//! Dropping the run rule above `m` calls instead would leave a hard outage to the rate alone, which must first
//! outweigh the window's earlier successes: about half a window (15 s by default) of failed calls, each followed by
//! a fallback call.
//!
//! When the rate rule is off (`failure_rate` outside `(0, 1)`), the run stays at `failure_threshold`.
//!
//! Only failures of the target count: context-length, content-filter and permanent errors are the request's fault
//! and count as successes (see [`FailureClass::is_target_failure`]).
//!
//! A [`Permit`] is taken before each call and must live until the call has really ended: for a streamed response,
//! until the end of the body, so that a stream that dies after its headers still counts. A permit dropped without
//! a record (the client went away) counts for nothing, but frees its half-open probe slot. A permit issued before
//! the breaker changed state is stale and its record is ignored: only the probes decide a half-open breaker.

mod hook;
mod state;
mod types;

pub use hook::{BreakerEvent, BreakerHook};
pub use types::{BreakerConfig, BreakerSnapshot, BreakerState, Rejected, TripReason};

use crate::class::{FailureClass, Verdict};
use crate::deadline::later;
use crate::observer::{NoopObserver, Observer};
use crate::window::SlotRing;
use state::{Health, Inner, Mode, Shared};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// The longest a target is held for one hint: a provider that asks for a day's pause (or a broken one
/// that says so) is asked again after an hour.
pub const MAX_HOLD: Duration = Duration::from_secs(3600);

/// The slots of the failure-rate window.
const SLOTS: u32 = 10;

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
            held_until: None,
            adopting: false,
            events: Vec::new(),
        };
        Breaker {
            shared: Arc::new(Shared {
                name: name.into(),
                config,
                observer,
                inner: Mutex::new(inner),
                hook: OnceLock::new(),
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
            _ if inner.held_until.is_some_and(|held| held > now) => Err(Rejected {
                retry_at: inner.held_until.unwrap_or(now),
                state: BreakerState::Open,
            }),
            Mode::Closed => Ok((inner.epoch, false)),
            Mode::HalfOpen {
                in_flight,
                successes,
            } => {
                let gate_open = || {
                    shared
                        .hook
                        .get()
                        .is_none_or(|h| h.allow_probe(&shared.name))
                };
                if in_flight < shared.config.half_open_probes.max(1) && gate_open() {
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
                consecutive_threshold: self.shared.config.consecutive_threshold(calls),
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
                held_until: inner.held_until.filter(|held| *held > now),
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

    /// Closes the breaker by hand, forgets its failure counts and ends a rate-limit hold in force.
    pub fn force_close(&self) {
        self.shared.with(Instant::now(), |inner| inner.close(true));
    }

    /// Refuses calls until `for_` has passed (at most [`MAX_HOLD`]), without opening the breaker: the target
    /// asked for a pause (`Retry-After`, a rate-limit reset). A longer hold already in force is kept.
    pub fn hold_for(&self, for_: Duration) {
        let now = Instant::now();
        self.shared
            .with(now, |inner| inner.hold(later(now, for_.min(MAX_HOLD))));
    }

    /// Attaches the hook that shares this breaker's transitions and gates its probes; only the first one counts
    /// (returns `false` if one was attached already).
    pub fn attach_hook(&self, hook: Arc<dyn BreakerHook>) -> bool {
        self.shared.hook.set(hook).is_ok()
    }

    /// Applies a change decided elsewhere (another replica, or this process before a restart) without reporting
    /// it to the hook: an open until a time already past half-opens at once, a close forgets the failure counts,
    /// a hold is kept if it is later than the one in force. The observer hears the transitions as usual.
    pub fn adopt(&self, event: &BreakerEvent) {
        let now = Instant::now();
        self.shared.with(now, |inner| {
            inner.adopting = true;
            match event {
                BreakerEvent::Opened { until, reason } => {
                    let same =
                        matches!(inner.mode, Mode::Open { until: current } if current == *until);
                    if !same {
                        inner.trip(now, *until, reason.clone());
                        inner.refresh(now);
                    }
                }
                BreakerEvent::Closed { forced } => inner.close(*forced),
                BreakerEvent::Held { until } => inner.hold(*until),
            }
        });
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
mod hook_tests;
#[cfg(test)]
mod tests;
