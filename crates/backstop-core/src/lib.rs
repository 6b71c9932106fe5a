//! Resilience primitives for calls to LLM providers and tools.
pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod budget;
pub mod class;
pub mod deadline;
pub mod executor;
pub mod hints;
pub mod observer;
mod window;

pub use backoff::Backoff;
pub use balance::{
    order, BalanceCandidate, LatencyPercentiles, LatencyStats, Strategy, UnknownStrategy,
};
pub use breaker::{
    Breaker, BreakerConfig, BreakerSnapshot, BreakerState, Permit, Rejected, TripReason,
};
pub use budget::RetryBudget;
pub use class::{Classify, FailureClass, Verdict};
pub use deadline::{Deadline, Elapsed};
pub use executor::{
    execute, execute_observed, AttemptRecord, Candidate, Exhausted, Outcome, Policy, StopReason,
};
pub use observer::{AttemptEvent, NoopObserver, Observer, SkipReason};
