//! The engine behind two closures: one that calls a candidate, one that says what its errors mean.
//!
//! [`execute`] is for calls whose answer is whole when the call returns (a tool's HTTP request, a database query,
//! a non-streaming completion): the attempt that answers is recorded as a success at once. Callers that need the
//! commit point of a stream, or their own recording, implement [`Attempts`] and call [`run`](crate::engine::run).

use crate::class::{Classify, FailureClass, Verdict};
use crate::engine::{self, Attempt, Attempts, Candidate, Exhausted, Policy};
use crate::observer::{AttemptEvent, NoopObserver, Observer};
use std::future::Future;
use std::marker::PhantomData;

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

/// Calls the candidates in order, with retries, breakers and fallback; see the [engine](crate::engine).
///
/// `call` gets the candidate and the attempt number on it (from 1). Its future must own what it uses (clone
/// out of `candidate.inner`).
pub async fn execute<T, F, Fut, R, E>(
    policy: &Policy,
    candidates: &[Candidate<T>],
    classify: impl Classify<E> + Sync,
    call: F,
) -> Result<Outcome<R>, Exhausted<E>>
where
    T: Sync,
    F: Fn(&Candidate<T>, u32) -> Fut + Sync,
    Fut: Future<Output = Result<R, E>> + Send,
    R: Send,
    E: Send,
{
    execute_observed(policy, candidates, classify, &NoopObserver, call).await
}

/// [`execute`], reporting attempts, retries, hedges, fallbacks and skips to `observer`.
pub async fn execute_observed<T, F, Fut, R, E>(
    policy: &Policy,
    candidates: &[Candidate<T>],
    classify: impl Classify<E> + Sync,
    observer: &dyn Observer,
    call: F,
) -> Result<Outcome<R>, Exhausted<E>>
where
    T: Sync,
    F: Fn(&Candidate<T>, u32) -> Fut + Sync,
    Fut: Future<Output = Result<R, E>> + Send,
    R: Send,
    E: Send,
{
    let closures = Closures {
        classify,
        call,
        observer,
        target: PhantomData,
    };
    let served = engine::run(policy, candidates, &closures).await?;
    let candidate = &candidates[served.served_by];
    report(observer, candidate, &served.attempt, None);
    served.attempt.finish(None);
    Ok(Outcome {
        value: served.value,
        served_by: served.served_by,
        attempts: served.calls,
    })
}

/// The two closures as the engine's [`Attempts`].
struct Closures<'o, T, C, F> {
    classify: C,
    call: F,
    observer: &'o dyn Observer,
    target: PhantomData<fn(&T)>,
}

impl<T, C, F, Fut, R, E> Attempts for Closures<'_, T, C, F>
where
    T: Sync,
    C: Classify<E> + Sync,
    F: Fn(&Candidate<T>, u32) -> Fut + Sync,
    Fut: Future<Output = Result<R, E>> + Send,
    R: Send,
    E: Send,
{
    type Target = T;
    type Output = R;
    type Error = E;

    fn call(
        &self,
        candidate: &Candidate<T>,
        attempt: u32,
    ) -> impl Future<Output = Result<R, E>> + Send {
        (self.call)(candidate, attempt)
    }

    fn classify(&self, error: &E) -> Verdict {
        self.classify.classify(error)
    }

    fn record_failure(
        &self,
        candidate: &Candidate<T>,
        attempt: Attempt,
        class: FailureClass,
        _error: &E,
    ) {
        report(self.observer, candidate, &attempt, Some(class));
        attempt.finish(Some(class));
    }

    fn observer(&self) -> &dyn Observer {
        self.observer
    }
}

fn report<T>(
    observer: &dyn Observer,
    candidate: &Candidate<T>,
    attempt: &Attempt,
    class: Option<FailureClass>,
) {
    observer.attempt(&AttemptEvent {
        target: &candidate.name,
        candidate: attempt.candidate(),
        attempt: attempt.number(),
        class,
        elapsed: attempt.started().elapsed(),
    });
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
