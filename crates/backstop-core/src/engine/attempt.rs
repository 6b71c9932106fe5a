//! One call in flight, and what the engine learned when the candidates ran out.

use crate::breaker::Permit;
use crate::class::FailureClass;
use crate::observer::SkipReason;
use std::fmt;
use tokio::time::Instant;

/// One call to a candidate, holding the breaker's permit until its outcome is known.
///
/// The engine finishes the attempts that fail before the commit point. The attempt that serves is handed to the
/// caller with the answer: a stream's outcome is only known when it ends, so the caller finishes it then (a
/// failure after the commit point still counts against the target). Dropping an attempt unfinished lets its
/// permit go unrecorded, which is right when the caller's own deadline, a shutdown or a cancellation ended it.
#[derive(Debug)]
pub struct Attempt {
    permit: Permit,
    candidate: usize,
    number: u32,
    started: Instant,
    hedge: bool,
}

impl Attempt {
    pub(crate) fn new(permit: Permit, candidate: usize, number: u32, hedge: bool) -> Self {
        Attempt {
            permit,
            candidate,
            number,
            started: Instant::now(),
            hedge,
        }
    }

    /// The index of the candidate in the engine's list.
    pub fn candidate(&self) -> usize {
        self.candidate
    }

    /// The attempt's number on its candidate, from 1.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether it was sent as a hedge while an earlier attempt was still waiting.
    pub fn is_hedge(&self) -> bool {
        self.hedge
    }

    /// Whether the permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.permit.is_probe()
    }

    /// Records the outcome on the candidate's breaker: `None` for a success, else the failure's class (only the
    /// classes that are the target's fault count against it).
    pub fn finish(self, outcome: Option<FailureClass>) {
        match outcome {
            None => self.permit.record_success(),
            Some(class) => self.permit.record_failure(class),
        }
    }
}

/// One failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord<E> {
    /// The candidate's index.
    pub candidate: usize,
    /// The candidate's name.
    pub name: String,
    /// The attempt number on that candidate, from 1.
    pub attempt: u32,
    /// How the error was classified.
    pub class: FailureClass,
    /// The error.
    pub error: E,
}

/// Why the engine gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every candidate was tried or skipped.
    Exhausted,
    /// A failure no other candidate would fix: a [`FailureClass::Permanent`] error (the request itself is wrong),
    /// or a content filter on a candidate that stops there.
    Permanent,
    /// The deadline passed.
    Deadline,
}

/// Every candidate failed, was skipped, or the engine stopped early.
#[derive(Clone, Debug)]
pub struct Exhausted<E> {
    /// The failed attempts, in order; on a stop, the failure that decided it is the last.
    pub attempts: Vec<AttemptRecord<E>>,
    /// The candidates skipped without a call, and why.
    pub skipped: Vec<(usize, SkipReason)>,
    /// The candidates the call could not be sent to at all (see
    /// [`Attempts::not_sent`](crate::Attempts::not_sent)), with the reason.
    pub not_sent: Vec<(usize, E)>,
    /// Calls made, hedges included.
    pub calls: u32,
    /// The earliest time an open breaker lets a call through again, when at least one candidate was skipped for
    /// an open breaker (when they all were, nothing can be done before then: a good `Retry-After`).
    pub retry_at: Option<Instant>,
    /// Why it stopped.
    pub reason: StopReason,
}

impl<E> Exhausted<E> {
    /// The last error, if any call was made.
    pub fn last_error(&self) -> Option<&E> {
        self.attempts.last().map(|a| &a.error)
    }

    /// Takes the last error out, if any call was made.
    pub fn into_last_error(self) -> Option<E> {
        self.attempts.into_iter().last().map(|a| a.error)
    }

    /// Whether no call at all was made because every candidate's breaker was open.
    pub fn all_open(&self) -> bool {
        self.attempts.is_empty()
            && self.not_sent.is_empty()
            && !self.skipped.is_empty()
            && self
                .skipped
                .iter()
                .all(|(_, r)| matches!(r, SkipReason::BreakerOpen { .. }))
    }
}

impl<E: fmt::Display> fmt::Display for Exhausted<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            StopReason::Exhausted => f.write_str("every candidate failed")?,
            StopReason::Permanent => f.write_str("the request was rejected")?,
            StopReason::Deadline => f.write_str("the deadline passed")?,
        }
        for a in &self.attempts {
            write!(
                f,
                "; {} attempt {}: {} ({})",
                a.name, a.attempt, a.class, a.error
            )?;
        }
        for (i, error) in &self.not_sent {
            write!(f, "; candidate {i} not sent: {error}")?;
        }
        for (i, reason) in &self.skipped {
            write!(f, "; candidate {i} skipped: {reason}")?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Exhausted<E> {}

/// A committed answer.
#[derive(Debug)]
pub struct Served<R> {
    /// What the call returned.
    pub value: R,
    /// The attempt that returned it, for the caller to finish once the answer is whole.
    pub attempt: Attempt,
    /// The index of the candidate that served.
    pub served_by: usize,
    /// Calls made in total, hedges and the successful one included.
    pub calls: u32,
}
