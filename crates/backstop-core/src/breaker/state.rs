//! The breaker's state machine, behind one short mutex. Transitions are collected under the lock and reported to
//! the observer after it is released.

use super::{BreakerConfig, BreakerEvent, BreakerHook, BreakerState, TripReason};
use crate::deadline::later;
use crate::observer::Observer;
use crate::window::SlotRing;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    Closed,
    Open { until: Option<Instant> },
    HalfOpen { in_flight: u32, successes: u32 },
}

impl Mode {
    pub(super) fn state(self) -> BreakerState {
        match self {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

pub(super) type Transition = (BreakerState, BreakerState, Option<TripReason>);

pub(super) struct Inner {
    pub(super) mode: Mode,
    pub(super) epoch: u64,
    pub(super) consecutive: u32,
    pub(super) ring: SlotRing,
    pub(super) last_trip: Option<TripReason>,
    pub(super) opened_at: Option<Instant>,
    pub(super) trips: u64,
    /// Transitions to report once the lock is released.
    pub(super) pending: Vec<Transition>,
    /// No call before this instant: the target asked for a pause (a rate-limit hint).
    pub(super) held_until: Option<Instant>,
    /// Set while applying a change learned elsewhere: it is not reported to the hook.
    pub(super) adopting: bool,
    /// Changes decided here, for the hook once the lock is released.
    pub(super) events: Vec<BreakerEvent>,
}

pub(super) struct Shared {
    pub(super) name: String,
    pub(super) config: BreakerConfig,
    pub(super) observer: Arc<dyn Observer>,
    pub(super) inner: Mutex<Inner>,
    /// Shares transitions and gates probes, when attached.
    pub(super) hook: OnceLock<Arc<dyn BreakerHook>>,
}

/// What a recorded call says about the target.
pub(super) enum Health {
    Good,
    Bad,
    Broken(String),
}

impl Shared {
    /// Runs `f` under the lock after applying the lazy Open -> HalfOpen transition, then reports transitions.
    pub(super) fn with<R>(&self, now: Instant, f: impl FnOnce(&mut Inner) -> R) -> R {
        let (result, transitions, events) = {
            let mut inner = self.lock();
            inner.refresh(now);
            let result = f(&mut inner);
            inner.adopting = false;
            let events = std::mem::take(&mut inner.events);
            (result, std::mem::take(&mut inner.pending), events)
        };
        for (from, to, reason) in &transitions {
            self.observer
                .breaker_transition(&self.name, *from, *to, reason.as_ref());
        }
        if let (Some(hook), false) = (self.hook.get(), events.is_empty()) {
            for event in &events {
                hook.changed(&self.name, event);
            }
        }
        result
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few integers; a panic elsewhere cannot leave it unusable.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(super) fn record(&self, epoch: u64, probe: bool, health: Health) {
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
                    let run = config.consecutive_threshold(calls);
                    if run.is_some_and(|run| inner.consecutive >= run) {
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
                        inner.close(false);
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

    pub(super) fn release(&self, epoch: u64) {
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
    pub(super) fn set_mode(&mut self, mode: Mode, reason: Option<TripReason>) {
        let from = self.mode.state();
        self.mode = mode;
        self.epoch += 1;
        let to = mode.state();
        if from != to {
            self.pending.push((from, to, reason));
        }
    }

    pub(super) fn refresh(&mut self, now: Instant) {
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

    pub(super) fn trip(&mut self, now: Instant, until: Option<Instant>, reason: TripReason) {
        self.share(BreakerEvent::Opened {
            until,
            reason: reason.clone(),
        });
        self.trips += 1;
        self.opened_at = Some(now);
        self.last_trip = Some(reason.clone());
        self.consecutive = 0;
        self.ring.clear();
        self.set_mode(Mode::Open { until }, Some(reason));
    }

    /// Closes the breaker and forgets its failure counts; a forced close also ends a hold in force, since the
    /// operator asked for the target to take calls now.
    pub(super) fn close(&mut self, forced: bool) {
        self.consecutive = 0;
        self.ring.clear();
        let hold_ended = forced && self.held_until.take().is_some();
        match self.mode {
            Mode::Closed => {
                if hold_ended {
                    self.share(BreakerEvent::Closed { forced });
                }
            }
            Mode::Open { .. } | Mode::HalfOpen { .. } => {
                self.share(BreakerEvent::Closed { forced });
                self.set_mode(Mode::Closed, None);
            }
        }
    }

    /// Holds the target until `until` (a later hold wins).
    pub(super) fn hold(&mut self, until: Instant) {
        if self.held_until.is_some_and(|held| held >= until) {
            return;
        }
        self.held_until = Some(until);
        self.share(BreakerEvent::Held { until });
    }

    /// Queues `event` for the hook, unless it was learned elsewhere.
    fn share(&mut self, event: BreakerEvent) {
        if !self.adopting {
            self.events.push(event);
        }
    }
}
