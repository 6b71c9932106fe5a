//! One attempt, hedged on the next candidate when it is slow to answer.
//!
//! When the caller's hedge delay passes without an answer, the same call goes to the next candidate that takes it
//! (a permit from its breaker and a withdrawal from the retry budget, so hedging can never double the load on an
//! unhealthy provider); the first answer wins and the other call is cancelled, its permit let go unrecorded. When
//! both fail, the hedge's failure is recorded here and the first attempt's failure decides what comes next.

use super::attempt::Attempt;
use super::candidate::{Candidate, Candidates};
use super::walk::{Mode, Walk};
use super::Attempts;
use std::future::Future;
use std::time::Duration;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, Timeout};

/// How an attempt (and its hedge, if one was sent) ended.
pub(super) enum Raced<R, E> {
    /// An answer, from `attempt`.
    Answer { value: R, attempt: Attempt },
    /// The attempt failed (and its hedge, if any, failed too and is recorded).
    Failed { attempt: Attempt, error: E },
    /// The deadline passed first.
    OutOfTime,
}

fn settle<R, E>(attempt: Attempt, result: Result<Result<R, E>, Elapsed>) -> Raced<R, E> {
    match result {
        Ok(Ok(value)) => Raced::Answer { value, attempt },
        Ok(Err(error)) => Raced::Failed { attempt, error },
        Err(_) => Raced::OutOfTime,
    }
}

/// `work`, ended once `deadline` passes (none: a deadline decades away).
fn timed<F: Future>(deadline: Option<Instant>, work: F) -> Timeout<F> {
    let deadline = deadline.unwrap_or_else(|| Instant::now() + NO_DEADLINE);
    tokio::time::timeout_at(deadline, work)
}

/// How far away the deadline of a call without one is.
const NO_DEADLINE: Duration = Duration::from_secs(30 * 365 * 86_400);

impl<'a, A: Attempts, C: Candidates<A::Target> + ?Sized> Walk<'a, A, C> {
    /// Runs `attempt`, hedged when the caller asks for it.
    ///
    /// The call is pinned where it is made and only ever awaited through that pin, and a hedge's call (rare) is
    /// boxed: an attempt's call is the largest part of the engine's future, which every request allocates and
    /// moves once, so it is held once, not once per place it is awaited.
    pub(super) async fn race(
        &mut self,
        attempt: Attempt,
        candidate: &'a Candidate<A::Target>,
    ) -> Raced<A::Output, A::Error> {
        let attempts = self.attempts;
        let deadline = self.deadline();
        let delay = match self.mode() {
            Mode::Answer => attempts.hedge_delay(candidate),
            Mode::Continuation => None,
        };
        let mut first = std::pin::pin!(timed(deadline, attempts.call(candidate, attempt.number())));
        let Some(delay) = delay else {
            return settle(attempt, first.await);
        };
        tokio::select! {
            result = &mut first => return settle(attempt, result),
            () = tokio::time::sleep(delay) => {}
        }
        let Some((hedge, to)) = self.hedge(attempt.candidate(), candidate, delay) else {
            return settle(attempt, first.await);
        };
        let mut second = Box::pin(timed(deadline, attempts.call(to, hedge.number())));
        tokio::select! {
            result = &mut first => match settle(attempt, result) {
                Raced::Failed { attempt, error } => match settle(hedge, second.await) {
                    Raced::Answer { value, attempt: hedge } => {
                        self.record(attempt, candidate, error);
                        Raced::Answer { value, attempt: hedge }
                    }
                    Raced::Failed { attempt: hedge, error: hedge_error } => {
                        self.record(hedge, to, hedge_error);
                        Raced::Failed { attempt, error }
                    }
                    Raced::OutOfTime => Raced::Failed { attempt, error },
                },
                other => other,
            },
            result = &mut second => match settle(hedge, result) {
                Raced::Failed { attempt: hedge, error } => {
                    self.record(hedge, to, error);
                    settle(attempt, first.await)
                }
                other => other,
            },
        }
    }

    /// The hedge for the attempt on `from`, candidate `index`: the first later candidate that fits and whose
    /// breaker gives a permit, if the budget pays for it.
    fn hedge(
        &mut self,
        index: usize,
        from: &Candidate<A::Target>,
        delay: Duration,
    ) -> Option<(Attempt, &'a Candidate<A::Target>)> {
        let candidates = self.candidates;
        let (to, candidate, permit) = (index + 1..)
            .map_while(|i| Some((i, candidates.get(i)?)))
            .filter(|(_, candidate)| self.unfit(candidate).is_none())
            .find_map(|(i, candidate)| {
                let permit = candidate.breaker.try_acquire().ok()?;
                Some((i, candidate, permit))
            })?;
        if let Some(budget) = &self.policy.budget {
            if !budget.try_withdraw() {
                return None;
            }
        }
        self.attempts
            .observer()
            .hedge(&from.name, &candidate.name, delay);
        self.calls += 1;
        Some((Attempt::new(permit, to, 1, true), candidate))
    }

    /// Records a failed attempt on `candidate` that does not decide what comes next (the other side of a hedge).
    fn record(&mut self, attempt: Attempt, candidate: &Candidate<A::Target>, error: A::Error) {
        if self.out_of_time() {
            return;
        }
        if self.attempts.not_sent(&error) {
            self.calls -= 1;
            return;
        }
        let (class, _) = self.classify(&error);
        self.fail(attempt, candidate, class, error);
    }
}
