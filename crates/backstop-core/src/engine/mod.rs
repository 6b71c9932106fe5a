//! The engine: one loop for every attempt, retry, hedge, fallback and continuation.
//!
//! Retries must happen in exactly one layer. When a client retries, its SDK retries, and the gateway retries, the
//! attempts multiply (3 × 3 × 3 = 27 calls for one request) and an outage is amplified instead of absorbed. So
//! there is one loop, and everything else (the breaker, the budget, the backoff, the hedge delay) is a decision it
//! consults, never a loop of its own. The Backstop gateway serves all its traffic through it; [`execute`] is the
//! same engine behind a closure.
//!
//! For each candidate in order ([`run`]; the caller may build later candidates only when they are reached, see
//! [`Candidates`]):
//! 1. skip it when a context-length failure or the prompt's size rules its window out;
//! 2. take a breaker permit; an open breaker means the candidate is skipped without a call;
//! 3. call it, within the deadline; when the caller's [`Attempts::hedge_delay`] passes without an answer, send
//!    the same call to the next candidate that takes it (paid from the retry budget) and keep the first answer;
//! 4. classify the error and record it ([`Attempts::record_failure`], the one place an attempt's failure is
//!    recorded);
//! 5. act on the class: [`Transient`](FailureClass::Transient) moves at once to another open channel of the same
//!    group ahead, else retries in place after the backoff (or the server's hint) while the candidate has attempts
//!    left, its breaker is not open, the deadline allows the sleep and the budget agrees, else moves on;
//!    [`Unavailable`](FailureClass::Unavailable) and [`TargetBroken`](FailureClass::TargetBroken) move on;
//!    [`ContentFilter`](FailureClass::ContentFilter) moves on unless the candidate stops there;
//!    [`ContextLength`](FailureClass::ContextLength) moves on and skips every later candidate whose window is not
//!    larger; [`Permanent`](FailureClass::Permanent) stops.
//!
//! The first answer is the **commit point**: it is handed back with its [`Attempt`], which the caller finishes
//! when the answer is whole. A stream that breaks after that cannot be retried (part of it reached the client);
//! it is continued instead: [`continue_on`] walks the candidates after the one that served, once each, with the
//! caller's continuation call, and any failure moves on.
//!
//! The budget gets one deposit per [`run`] and one withdrawal per retry in place or hedge. Moving on to the next
//! candidate is not a retry: the breakers and the candidate list already bound it.

mod attempt;
mod candidate;
mod race;
mod walk;

pub use attempt::{Attempt, AttemptRecord, Exhausted, Served, StopReason};
pub use candidate::{Candidate, Candidates, Retry};

use crate::budget::RetryBudget;
use crate::class::{FailureClass, Verdict};
use crate::observer::{NoopObserver, Observer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use walk::{Mode, Walk};

/// How hard to try.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The retry rule of candidates that have none of their own.
    pub retry: Retry,
    /// A retry budget shared with other requests; `None` for no budget.
    pub budget: Option<Arc<RetryBudget>>,
    /// The total time for all attempts, sleeps and fallbacks; `None` for no limit (see also
    /// [`Attempts::deadline`]).
    pub deadline: Option<Duration>,
}

/// What the engine needs from its caller: the call, what its errors mean, and where to record them.
pub trait Attempts: Sync {
    /// What a candidate carries for the call.
    type Target: Sync;
    /// A successful call's answer.
    type Output: Send;
    /// A failed call's error.
    type Error: Send;

    /// Makes one call to `candidate`; `attempt` is its number on that candidate, from 1.
    fn call(
        &self,
        candidate: &Candidate<Self::Target>,
        attempt: u32,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// What an error means.
    fn classify(&self, error: &Self::Error) -> Verdict;

    /// Records a failed attempt: the one place its outcome goes to the breaker ([`Attempt::finish`]), metrics and
    /// logs. Called exactly once for every attempt that fails before the commit point.
    fn record_failure(
        &self,
        candidate: &Candidate<Self::Target>,
        attempt: Attempt,
        class: FailureClass,
        error: &Self::Error,
    );

    /// Whether `error` means the call was never sent (the request cannot be expressed for this candidate): the
    /// candidate is passed over, and the attempt is neither counted nor recorded.
    fn not_sent(&self, _error: &Self::Error) -> bool {
        false
    }

    /// How long to wait for `candidate`'s answer before hedging on the next candidate; `None`: no hedge.
    fn hedge_delay(&self, _candidate: &Candidate<Self::Target>) -> Option<Duration> {
        None
    }

    /// A lower bound of the prompt's size in tokens, if known: candidates whose window is smaller are skipped.
    fn prompt_tokens(&self) -> Option<u64> {
        None
    }

    /// A deadline of the caller's own (it may move, e.g. when a shutdown starts), on top of the policy's.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Where retries, hedges, fallbacks and skips are reported.
    fn observer(&self) -> &dyn Observer {
        &NoopObserver
    }
}

/// Serves a call from `candidates`, with retries, hedges, breakers and fallback; see the
/// [module documentation](self).
pub async fn run<A: Attempts, C: Candidates<A::Target> + ?Sized>(
    policy: &Policy,
    candidates: &C,
    attempts: &A,
) -> Result<Served<A::Output>, Exhausted<A::Error>> {
    if let Some(budget) = &policy.budget {
        budget.deposit();
    }
    Walk::new(policy, candidates, attempts, Mode::Answer)
        .run()
        .await
}

/// Continues an answer after its commit point: tries `candidates` in order, once each, without retries or hedges;
/// any failure moves on. `candidates` are those after the one whose answer broke.
pub async fn continue_on<A: Attempts, C: Candidates<A::Target> + ?Sized>(
    policy: &Policy,
    candidates: &C,
    attempts: &A,
) -> Result<Served<A::Output>, Exhausted<A::Error>> {
    Walk::new(policy, candidates, attempts, Mode::Continuation)
        .run()
        .await
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
