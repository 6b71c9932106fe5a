//! The loop over the candidates of one call.

use super::attempt::{Attempt, AttemptRecord, Exhausted, Served, StopReason};
use super::candidate::{Candidate, Candidates};
use super::race::Raced;
use super::{Attempts, Policy};
use crate::breaker::BreakerState;
use crate::class::{FailureClass, Verdict};
use crate::deadline::later;
use crate::observer::SkipReason;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::time::Duration;
use tokio::time::Instant;

/// Before or after the commit point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Looking for an answer: retries, hedges, fallbacks.
    Answer,
    /// Continuing a committed answer: each candidate once, any failure moves on.
    Continuation,
}

/// What to do after a failed attempt.
enum Next {
    Retry(Duration),
    MoveOn,
    Stop,
}

/// One walk over the candidates, and what it has seen so far.
pub(super) struct Walk<'a, A: Attempts, C: ?Sized> {
    pub(super) policy: &'a Policy,
    pub(super) candidates: &'a C,
    pub(super) attempts: &'a A,
    mode: Mode,
    started: Instant,
    pub(super) failures: Vec<AttemptRecord<A::Error>>,
    skipped: Vec<(usize, SkipReason)>,
    not_sent: Vec<(usize, A::Error)>,
    pub(super) calls: u32,
    retry_at: Option<Instant>,
    /// The largest context window (or prompt size) that failed with a context-length error.
    too_small: Option<u64>,
    /// The candidate last given up on, for `Observer::fallback`.
    last_failed: Option<(&'a Candidate<A::Target>, FailureClass)>,
    rng: SmallRng,
}

impl<'a, A: Attempts, C: Candidates<A::Target> + ?Sized> Walk<'a, A, C> {
    pub(super) fn new(policy: &'a Policy, candidates: &'a C, attempts: &'a A, mode: Mode) -> Self {
        Walk {
            policy,
            candidates,
            attempts,
            mode,
            started: Instant::now(),
            failures: Vec::new(),
            skipped: Vec::new(),
            not_sent: Vec::new(),
            calls: 0,
            retry_at: None,
            too_small: None,
            last_failed: None,
            rng: SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// When no more work may start: the earlier of the policy's deadline and the caller's.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let own = self.policy.deadline.map(|d| later(self.started, d));
        match (own, self.attempts.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the deadline has passed.
    pub(super) fn out_of_time(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    pub(super) async fn run(mut self) -> Result<Served<A::Output>, Exhausted<A::Error>> {
        let candidates = self.candidates;
        'candidates: for index in 0.. {
            let Some(candidate) = candidates.get(index) else {
                break;
            };
            if let Some(reason) = self.unfit(candidate) {
                self.skip(index, candidate, reason);
                continue;
            }
            let mut number = 0u32;
            loop {
                if self.out_of_time() {
                    return Err(self.stop(StopReason::Deadline));
                }
                let permit = match candidate.breaker.try_acquire() {
                    Ok(permit) => permit,
                    Err(rejected) => {
                        let at = rejected.retry_at;
                        self.retry_at = Some(self.retry_at.map_or(at, |r| r.min(at)));
                        self.skip(index, candidate, SkipReason::BreakerOpen { retry_at: at });
                        continue 'candidates;
                    }
                };
                if let (0, Some((from, class))) = (number, self.last_failed.take()) {
                    self.attempts
                        .observer()
                        .fallback(&from.name, &candidate.name, class);
                }
                number += 1;
                self.calls += 1;
                let attempt = Attempt::new(permit, index, number, false);
                let (attempt, error) = match self.race(attempt, candidate).await {
                    Raced::Answer { value, attempt } => {
                        return Ok(Served {
                            served_by: attempt.candidate(),
                            value,
                            attempt,
                            calls: self.calls,
                        })
                    }
                    // A call that ends once the time is up ended because of it, most likely: it says
                    // nothing of the target, so it is let go unrecorded.
                    Raced::Failed { .. } | Raced::OutOfTime if self.out_of_time() => {
                        return Err(self.stop(StopReason::Deadline))
                    }
                    Raced::Failed { attempt, error } => (attempt, error),
                    Raced::OutOfTime => return Err(self.stop(StopReason::Deadline)),
                };
                if self.attempts.not_sent(&error) {
                    self.calls -= 1;
                    drop(attempt);
                    self.not_sent.push((index, error));
                    continue 'candidates;
                }
                let (class, hint) = self.classify(&error);
                self.fail(attempt, candidate, class, error);
                self.last_failed = Some((candidate, class));
                match self.next(index, candidate, number, class, hint) {
                    Next::Retry(delay) => {
                        let name = &candidate.name;
                        self.attempts.observer().retry(name, number, class, delay);
                        tokio::time::sleep(delay).await;
                    }
                    Next::MoveOn => continue 'candidates,
                    Next::Stop => return Err(self.stop(StopReason::Permanent)),
                }
            }
        }
        Err(self.stop(StopReason::Exhausted))
    }

    /// Why `candidate` cannot serve before any call, if it cannot.
    pub(super) fn unfit(&self, candidate: &Candidate<A::Target>) -> Option<SkipReason> {
        let window = candidate.context_window?;
        if let Some(failed) = self.too_small.filter(|&failed| window <= failed) {
            return Some(SkipReason::ContextWindowTooSmall { window, failed });
        }
        self.attempts
            .prompt_tokens()
            .filter(|&prompt| prompt > window)
            .map(|prompt| SkipReason::PromptTooLarge { window, prompt })
    }

    pub(super) fn classify(&self, error: &A::Error) -> (FailureClass, Option<Duration>) {
        match self.attempts.classify(error) {
            Verdict::Failure { class, retry_after } => (class, retry_after),
            Verdict::Success => (FailureClass::Permanent, None),
        }
    }

    /// Records a failed attempt on `candidate` (the engine's one call to [`Attempts::record_failure`]) and keeps
    /// it for the final error.
    pub(super) fn fail(
        &mut self,
        attempt: Attempt,
        candidate: &Candidate<A::Target>,
        class: FailureClass,
        error: A::Error,
    ) {
        let index = attempt.candidate();
        let number = attempt.number();
        self.attempts
            .record_failure(candidate, attempt, class, &error);
        self.failures.push(AttemptRecord {
            candidate: index,
            name: candidate.name.to_string(),
            attempt: number,
            class,
            error,
        });
    }

    /// The remedy for a failure of `class` on attempt `number` of `candidate`, the one at `index`.
    fn next(
        &mut self,
        index: usize,
        candidate: &Candidate<A::Target>,
        number: u32,
        class: FailureClass,
        hint: Option<Duration>,
    ) -> Next {
        if self.mode == Mode::Continuation {
            return Next::MoveOn;
        }
        match class {
            FailureClass::Transient => self.retry_in_place(index, candidate, number, hint),
            FailureClass::ContextLength => {
                let size = candidate
                    .context_window
                    .or_else(|| self.attempts.prompt_tokens());
                if let Some(size) = size {
                    self.too_small = Some(self.too_small.map_or(size, |s| s.max(size)));
                }
                Next::MoveOn
            }
            FailureClass::ContentFilter if candidate.stop_on_content_filter => Next::Stop,
            FailureClass::Unavailable
            | FailureClass::TargetBroken
            | FailureClass::ContentFilter => Next::MoveOn,
            FailureClass::Permanent => Next::Stop,
        }
    }

    /// After a transient failure: another open channel of the same group comes first; then a retry in place if
    /// the candidate has attempts left, its breaker is not open, the delay is acceptable, the deadline allows
    /// it and the budget agrees.
    fn retry_in_place(
        &mut self,
        index: usize,
        candidate: &Candidate<A::Target>,
        number: u32,
        hint: Option<Duration>,
    ) -> Next {
        let candidates = self.candidates;
        let channel_ahead = (index + 1..)
            .map_while(|ahead| candidates.built(ahead))
            .any(|other| {
                candidate.same_group(other) && other.breaker.state() != BreakerState::Open
            });
        let retry = candidate.retry.as_ref().unwrap_or(&self.policy.retry);
        if channel_ahead
            || number >= retry.max_attempts.max(1)
            || candidate.breaker.state() == BreakerState::Open
        {
            return Next::MoveOn;
        }
        let Some(delay) = retry.backoff.delay(number, hint, &mut self.rng) else {
            return Next::MoveOn;
        };
        if self
            .deadline()
            .is_some_and(|d| later(Instant::now(), delay) >= d)
        {
            return Next::MoveOn;
        }
        if let Some(budget) = &self.policy.budget {
            if !budget.try_withdraw() {
                self.attempts.observer().budget_exhausted(&candidate.name);
                return Next::MoveOn;
            }
        }
        Next::Retry(delay)
    }

    pub(super) fn skip(
        &mut self,
        index: usize,
        candidate: &Candidate<A::Target>,
        reason: SkipReason,
    ) {
        self.attempts.observer().skipped(&candidate.name, &reason);
        self.skipped.push((index, reason));
    }

    fn stop(self, reason: StopReason) -> Exhausted<A::Error> {
        Exhausted {
            attempts: self.failures,
            skipped: self.skipped,
            not_sent: self.not_sent,
            calls: self.calls,
            retry_at: self.retry_at,
            reason,
        }
    }

    pub(super) fn mode(&self) -> Mode {
        self.mode
    }
}
