//! Hooks for metrics and logs.
//!
//! The library never logs and never counts by itself: it has no opinion on your logging or metrics stack. Instead,
//! everything worth knowing (a breaker changing state, an attempt finishing, a retry being scheduled, a candidate
//! being skipped, the budget saying no) is reported to an [`Observer`], whose methods all default to doing nothing.
//! The gateway implements it to feed Prometheus counters and structured logs; a library user can implement only
//! the one method they care about.
//!
//! Observers are called synchronously, outside of any lock of the library, so they may call back into it (for
//! example read a [`crate::Breaker::snapshot`]); they should be quick.

use crate::breaker::{BreakerState, TripReason};
use crate::class::FailureClass;
use std::time::Duration;
use tokio::time::Instant;

/// Receives what happens inside breakers and the executor; every method is a no-op by default.
pub trait Observer: Send + Sync + 'static {
    /// A breaker changed state. `reason` is set when it opened (why it tripped).
    fn breaker_transition(
        &self,
        _target: &str,
        _from: BreakerState,
        _to: BreakerState,
        _reason: Option<&TripReason>,
    ) {
    }

    /// One attempt finished (successfully or not).
    fn attempt(&self, _event: &AttemptEvent<'_>) {}

    /// The executor will retry `target` after `delay`; `attempt` is the number of attempts made on it so far.
    fn retry(&self, _target: &str, _attempt: u32, _class: FailureClass, _delay: Duration) {}

    /// The executor gives up on `from` after a failure of class `class` and moves on to the next candidate, `to`.
    fn fallback(&self, _from: &str, _to: &str, _class: FailureClass) {}

    /// No answer from `target` after `delay`: the same call was also sent to `hedge`.
    fn hedge(&self, _target: &str, _hedge: &str, _delay: Duration) {}

    /// A candidate was skipped without a call.
    fn skipped(&self, _target: &str, _reason: &SkipReason) {}

    /// A retry of `target` was refused by the retry budget.
    fn budget_exhausted(&self, _target: &str) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {}

/// What an [`Observer`] learns about one finished attempt.
#[derive(Clone, Copy, Debug)]
pub struct AttemptEvent<'a> {
    /// The candidate's name.
    pub target: &'a str,
    /// The candidate's index in the executor's list.
    pub candidate: usize,
    /// The attempt number on this candidate, from 1.
    pub attempt: u32,
    /// `None` for a success, else the failure class.
    pub class: Option<FailureClass>,
    /// How long the attempt took.
    pub elapsed: Duration,
}

/// Why a candidate was skipped without a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its breaker refused a permit; it may be tried again at `retry_at`.
    BreakerOpen {
        /// When the breaker lets a probe through.
        retry_at: Instant,
    },
    /// An earlier candidate failed with a context-length error and this one's window is not larger.
    ContextWindowTooSmall {
        /// This candidate's context window.
        window: u64,
        /// The largest window that already failed.
        failed: u64,
    },
    /// The prompt is larger than this candidate's context window.
    PromptTooLarge {
        /// This candidate's context window.
        window: u64,
        /// The prompt's size in tokens (a lower bound).
        prompt: u64,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::BreakerOpen { .. } => f.write_str("circuit open"),
            SkipReason::ContextWindowTooSmall { window, .. } => {
                write!(f, "context window {window} too small")
            }
            SkipReason::PromptTooLarge { window, prompt } => write!(
                f,
                "skipped, the prompt (~{prompt} tokens) exceeds its context window of {window}"
            ),
        }
    }
}
