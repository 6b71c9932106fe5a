//! Resilience for calls to LLM providers and tools: classification, retries with backoff and server hints, a retry
//! budget, circuit breakers, balancing, deadlines, and one attempt loop that ties them together.
//!
//! `backstop-core` has no HTTP in it. It wraps any async call: a chat completion, a tool's HTTP request, a database
//! query. It is the engine of the Backstop gateway, and can be embedded on its own.
//!
//! # Quick start
//!
//! Wrap a flaky async call (here a simulated search tool with a mirror) in retries, breakers and fallback:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use backstop_core::{
//!     execute, Backoff, Breaker, BreakerConfig, Candidate, FailureClass, Policy, Retry, RetryBudget, Verdict,
//! };
//!
//! #[derive(Debug)]
//! enum ToolError { Overloaded { retry_after: Option<Duration> }, BadQuery }
//!
//! async fn search(endpoint: &str, query: &str) -> Result<String, ToolError> {
//!     match endpoint {
//!         "https://primary.example" => Err(ToolError::Overloaded { retry_after: None }),
//!         _ if query.is_empty() => Err(ToolError::BadQuery),
//!         _ => Ok(format!("results for {query:?} from {endpoint}")),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Long-lived, shared by every call: the breakers remember each endpoint's health, the budget bounds retries.
//! let breaker = || Arc::new(Breaker::new(BreakerConfig::default()));
//! let candidates = [
//!     Candidate::new("primary", breaker(), "https://primary.example"),
//!     Candidate::new("mirror", breaker(), "https://mirror.example"),
//! ];
//! let policy = Policy {
//!     retry: Retry {
//!         max_attempts: 3,
//!         backoff: Backoff { base: Duration::from_millis(10), max: Duration::from_secs(2) },
//!     },
//!     budget: Some(Arc::new(RetryBudget::new(0.2, 10, Duration::from_secs(10)))),
//!     deadline: Some(Duration::from_secs(30)),
//! };
//!
//! // Say once what each error means...
//! let classify = |e: &ToolError| match e {
//!     ToolError::Overloaded { retry_after } => Verdict::transient(*retry_after),
//!     ToolError::BadQuery => Verdict::failure(FailureClass::Permanent),
//! };
//! // ...and the executor does the rest: retry, then fall over to the mirror.
//! let out = execute(&policy, &candidates, classify, |c, _attempt| {
//!     let endpoint = c.inner;
//!     async move { search(endpoint, "rust retry budget").await }
//! })
//! .await
//! .expect("the mirror answers");
//! assert_eq!(&*candidates[out.served_by].name, "mirror");
//! assert_eq!(out.attempts, 4); // 3 on the primary, then 1 on the mirror
//! # }
//! ```
//!
//! # Why it is built this way
//!
//! **Classify once, into a closed set.** Every error becomes a [`Verdict`] with one of six [`FailureClass`]es, and
//! each class has one remedy (retry in place, move on, skip to a larger context window, go to the fallbacks, open
//! the breaker, or stop). The set is closed and every `match` on it is exhaustive: a new kind of error must be
//! decided by someone, it is never "retryable by default". Errors that are the request's fault (too long, filtered,
//! malformed) never count against a target's health.
//!
//! **Full jitter.** When a provider hiccups, thousands of clients fail in the same second. Exponential backoff alone
//! brings them back in synchronised waves; drawing the whole delay uniformly from `[0, min(max, base·2^n)]` spreads
//! them out. When the server says how long to wait (`Retry-After`, rate-limit reset headers: see [`hints`]) that wins,
//! unless it is longer than we are willing to wait: then we move on to another candidate at once rather than sleep.
//!
//! **A retry budget, not just a retry limit.** "3 attempts per request" is harmless when failures are rare and
//! devastating when they are not: under a total outage it triples the load on the provider exactly when it can
//! least take it, and a chain of fallbacks each retrying 3 times makes it 9. A [`RetryBudget`] (as in Finagle and
//! tower) lets retries add at most a fraction of the traffic, 20% by default, over a sliding window: rare failures
//! are all retried, an outage is not amplified. Hedged requests pay from the same budget.
//!
//! **Breakers remember.** A [`Breaker`] per target turns repeated failures into instant skips, so callers stop
//! paying timeouts to a dead target and the target gets room to recover; a few half-open probes find out when it
//! is back. Its [`Permit`] lives as long as the call, so a stream that dies after its headers still counts.
//!
//! **One loop.** Retries that happen in several layers multiply. The [`engine`] is the only place that loops; the
//! breaker, budget, backoff, hedge delay and deadline are decisions it consults. The Backstop gateway serves every
//! request through it (with hedging and a stream's commit point), [`execute`] is the same engine behind two
//! closures, and the gateway tells client SDKs to set `max_retries=0`.
//!
//! **One deadline.** A [`Deadline`] is fixed when the request starts and shared by every attempt, sleep and
//! fallback, so the whole request is bounded, not each piece of it.
//!
//! **Observable, not noisy.** The library never logs. Breaker transitions, attempts, retries, fallbacks and skips go
//! to an [`Observer`] whose methods default to no-ops; the gateway turns them into metrics and logs.
//!
//! Time comes from `tokio::time`, so everything can be tested on paused time, as this crate's own tests are.

pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod budget;
pub mod class;
pub mod deadline;
pub mod duration;
pub mod engine;
pub mod executor;
pub mod hints;
pub mod observer;
mod window;

pub use backoff::Backoff;
pub use balance::{
    order, BalanceCandidate, LatencyPercentiles, LatencyStats, Strategy, UnknownStrategy,
};
pub use breaker::{
    Breaker, BreakerConfig, BreakerEvent, BreakerHook, BreakerSnapshot, BreakerState, Permit,
    Rejected, TripReason, MAX_HOLD,
};
pub use budget::RetryBudget;
pub use class::{Classify, FailureClass, Verdict};
pub use deadline::{Deadline, Elapsed};
pub use engine::{
    Attempt, AttemptRecord, Attempts, Candidate, Candidates, Exhausted, Policy, Retry, Served,
    StopReason,
};
pub use executor::{execute, execute_observed, Outcome};
pub use hints::{parse_reset_duration, parse_reset_timestamp, parse_retry_after, retry_hint};
pub use observer::{AttemptEvent, NoopObserver, Observer, SkipReason};
