//! The attempt loop: retry, breaker and fallback in one place.
//!
//! Retries must happen in exactly one layer. When a client retries, its SDK retries, and the gateway retries, the
//! attempts multiply (3 × 3 × 3 = 27 calls for one request) and an outage is amplified instead of absorbed. So
//! there is one loop, [`execute`], and everything else (the breaker, the budget, the backoff) is a decision it
//! consults, never a loop of its own.
//!
//! For each candidate in order:
//! 1. take a breaker permit; an open breaker means the candidate is skipped without a call;
//! 2. call, within the shared [`Deadline`];
//! 3. classify the error and record it on the permit;
//! 4. act on the class: [`Transient`](FailureClass::Transient) retries the same candidate after the backoff (or the
//!    server's hint) while it has attempts left, the budget agrees and the deadline allows the sleep, then moves on;
//!    [`Unavailable`](FailureClass::Unavailable), [`TargetBroken`](FailureClass::TargetBroken) and
//!    [`ContentFilter`](FailureClass::ContentFilter) move on at once;
//!    [`ContextLength`](FailureClass::ContextLength) moves on and skips every later candidate whose known context
//!    window is not larger; [`Permanent`](FailureClass::Permanent) stops and hands the error back.
//!
//! The budget gets one deposit per [`execute`] call and one withdrawal per same-candidate retry. Moving on to the
//! next candidate is not a retry: it is what the breakers and the candidate list already bound.

use crate::backoff::Backoff;
use crate::breaker::Breaker;
use crate::budget::RetryBudget;
use crate::class::{Classify, FailureClass, Verdict};
use crate::deadline::Deadline;
use crate::observer::{AttemptEvent, NoopObserver, Observer, SkipReason};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How hard to try.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Attempts per candidate, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The delay between attempts on the same candidate.
    pub backoff: Backoff,
    /// A retry budget shared with other requests; `None` for no budget.
    pub budget: Option<Arc<RetryBudget>>,
    /// The total time for all attempts, sleeps and fallbacks; `None` for no limit.
    pub deadline: Option<Duration>,
}

impl Default for Policy {
    /// 3 attempts, the default backoff, no budget, no deadline.
    fn default() -> Self {
        Policy {
            max_attempts: 3,
            backoff: Backoff::default(),
            budget: None,
            deadline: None,
        }
    }
}

/// One thing that can serve the call: a target, a fallback model, a mirror of a tool.
#[derive(Clone, Debug)]
pub struct Candidate<T> {
    /// A name for records and observers (`provider/model`, a URL...).
    pub name: String,
    /// Its breaker (share it between requests: it is the memory of the target's health).
    pub breaker: Arc<Breaker>,
    /// Its context window in tokens, if known (for context-length fallback).
    pub context_window: Option<u64>,
    /// Whatever the call needs to reach it.
    pub inner: T,
}

impl<T> Candidate<T> {
    /// A candidate without a known context window.
    pub fn new(name: impl Into<String>, breaker: Arc<Breaker>, inner: T) -> Self {
        Candidate {
            name: name.into(),
            breaker,
            context_window: None,
            inner,
        }
    }
}

/// A successful call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<R> {
    /// What the call returned.
    pub value: R,
    /// The index of the candidate that served.
    pub served_by: usize,
    /// Calls made in total, the successful one included.
    pub attempts: u32,
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

/// Why the executor gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every candidate was tried or skipped.
    Exhausted,
    /// A [`FailureClass::Permanent`] error: the request itself is wrong.
    Permanent,
    /// The deadline passed.
    Deadline,
}

/// Every candidate failed, was skipped, or the executor stopped early.
#[derive(Clone, Debug)]
pub struct Exhausted<E> {
    /// The failed attempts, in order.
    pub attempts: Vec<AttemptRecord<E>>,
    /// The candidates skipped without a call, and why.
    pub skipped: Vec<(usize, SkipReason)>,
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
            && !self.skipped.is_empty()
            && self.skipped.iter().all(|(_, r)| match r {
                SkipReason::BreakerOpen { .. } => true,
                SkipReason::ContextWindowTooSmall { .. } => false,
            })
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
        for (i, reason) in &self.skipped {
            match reason {
                SkipReason::BreakerOpen { .. } => {
                    write!(f, "; candidate {i} skipped: circuit open")?
                }
                SkipReason::ContextWindowTooSmall { window, .. } => write!(
                    f,
                    "; candidate {i} skipped: context window {window} too small"
                )?,
            }
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Exhausted<E> {}

/// Calls the candidates in order, with retries, breakers and fallback; see the [module documentation](self).
///
/// `call` gets the candidate and the attempt number on it (from 1). Its future must own what it uses (clone
/// out of `candidate.inner`).
pub async fn execute<T, F, Fut, R, E>(
    policy: &Policy,
    candidates: &[Candidate<T>],
    classify: impl Classify<E>,
    call: F,
) -> Result<Outcome<R>, Exhausted<E>>
where
    F: FnMut(&Candidate<T>, u32) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    execute_observed(policy, candidates, classify, &NoopObserver, call).await
}

/// [`execute`], reporting attempts, retries, fallbacks and skips to `observer`.
pub async fn execute_observed<T, F, Fut, R, E>(
    policy: &Policy,
    candidates: &[Candidate<T>],
    classify: impl Classify<E>,
    observer: &dyn Observer,
    mut call: F,
) -> Result<Outcome<R>, Exhausted<E>>
where
    F: FnMut(&Candidate<T>, u32) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let deadline = policy.deadline.map(Deadline::after);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    if let Some(budget) = &policy.budget {
        budget.deposit();
    }
    let mut run = Run {
        attempts: Vec::new(),
        skipped: Vec::new(),
        retry_at: None,
        total: 0,
    };
    // The largest known context window that failed with ContextLength.
    let mut too_small: Option<u64> = None;
    // The candidate we last gave up on, for Observer::fallback.
    let mut last_failed: Option<(usize, FailureClass)> = None;

    'candidates: for (index, candidate) in candidates.iter().enumerate() {
        if let (Some(failed), Some(window)) = (too_small, candidate.context_window) {
            if window <= failed {
                run.skip(
                    observer,
                    index,
                    candidate,
                    SkipReason::ContextWindowTooSmall { window, failed },
                );
                continue;
            }
        }
        let mut attempt = 0u32;
        loop {
            if deadline.is_some_and(|d| d.expired()) {
                return Err(run.stop(StopReason::Deadline));
            }
            let permit = match candidate.breaker.try_acquire() {
                Ok(p) => p,
                Err(rejected) => {
                    let retry_at = rejected.retry_at;
                    run.retry_at = Some(run.retry_at.map_or(retry_at, |r| r.min(retry_at)));
                    run.skip(
                        observer,
                        index,
                        candidate,
                        SkipReason::BreakerOpen { retry_at },
                    );
                    continue 'candidates;
                }
            };
            if let (0, Some((from, class))) = (attempt, last_failed.take()) {
                if let Some(prev) = candidates.get(from) {
                    observer.fallback(&prev.name, &candidate.name, class);
                }
            }
            attempt += 1;
            run.total += 1;
            let started = Instant::now();
            let result = match deadline {
                Some(d) => match d.run(call(candidate, attempt)).await {
                    Ok(r) => r,
                    // The permit is dropped unrecorded: running out of the caller's time says nothing of the target.
                    Err(_) => return Err(run.stop(StopReason::Deadline)),
                },
                None => call(candidate, attempt).await,
            };
            let elapsed = started.elapsed();
            let error = match result {
                Ok(value) => {
                    observer.attempt(&AttemptEvent {
                        target: &candidate.name,
                        candidate: index,
                        attempt,
                        class: None,
                        elapsed,
                    });
                    permit.record_success();
                    return Ok(Outcome {
                        value,
                        served_by: index,
                        attempts: run.total,
                    });
                }
                Err(e) => e,
            };
            let (class, hint) = match classify.classify(&error) {
                Verdict::Failure { class, retry_after } => (class, retry_after),
                Verdict::Success => (FailureClass::Permanent, None),
            };
            observer.attempt(&AttemptEvent {
                target: &candidate.name,
                candidate: index,
                attempt,
                class: Some(class),
                elapsed,
            });
            permit.record_failure(class);
            run.attempts.push(AttemptRecord {
                candidate: index,
                name: candidate.name.clone(),
                attempt,
                class,
                error,
            });
            last_failed = Some((index, class));
            match class {
                FailureClass::Transient => {
                    let retry = same_target_delay(
                        policy, candidate, attempt, hint, deadline, &mut rng, observer,
                    );
                    match retry {
                        Some(delay) => {
                            observer.retry(&candidate.name, attempt, class, delay);
                            tokio::time::sleep(delay).await;
                        }
                        None => continue 'candidates,
                    }
                }
                FailureClass::ContextLength => {
                    if let Some(window) = candidate.context_window {
                        too_small = Some(too_small.map_or(window, |w| w.max(window)));
                    }
                    continue 'candidates;
                }
                FailureClass::Unavailable
                | FailureClass::TargetBroken
                | FailureClass::ContentFilter => {
                    continue 'candidates;
                }
                FailureClass::Permanent => return Err(run.stop(StopReason::Permanent)),
            }
        }
    }
    Err(run.stop(StopReason::Exhausted))
}

/// Whether to retry the same candidate after a transient failure, and after how long.
fn same_target_delay<T>(
    policy: &Policy,
    candidate: &Candidate<T>,
    attempt: u32,
    hint: Option<Duration>,
    deadline: Option<Deadline>,
    rng: &mut SmallRng,
    observer: &dyn Observer,
) -> Option<Duration> {
    if attempt >= policy.max_attempts.max(1) {
        return None;
    }
    // This very failure may have opened the breaker: no point sleeping to be refused.
    match candidate.breaker.state() {
        crate::BreakerState::Open => return None,
        crate::BreakerState::Closed | crate::BreakerState::HalfOpen => {}
    }
    let delay = policy.backoff.delay(attempt, hint, rng)?;
    if deadline.is_some_and(|d| !d.allows(delay)) {
        return None;
    }
    if let Some(budget) = &policy.budget {
        if !budget.try_withdraw() {
            observer.budget_exhausted(&candidate.name);
            return None;
        }
    }
    Some(delay)
}

/// What one execution has seen so far.
struct Run<E> {
    attempts: Vec<AttemptRecord<E>>,
    skipped: Vec<(usize, SkipReason)>,
    retry_at: Option<Instant>,
    total: u32,
}

impl<E> Run<E> {
    fn skip<T>(
        &mut self,
        observer: &dyn Observer,
        index: usize,
        candidate: &Candidate<T>,
        reason: SkipReason,
    ) {
        observer.skipped(&candidate.name, &reason);
        self.skipped.push((index, reason));
    }

    fn stop(self, reason: StopReason) -> Exhausted<E> {
        Exhausted {
            attempts: self.attempts,
            skipped: self.skipped,
            retry_at: self.retry_at,
            reason,
        }
    }
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
