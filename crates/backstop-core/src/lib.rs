//! Resilience primitives for calls to LLM providers and tools: classification, backoff with server hints, a retry
//! budget, circuit breakers and the observer hook. (Balancing, deadlines and the fallback executor follow.)

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod class;
pub mod hints;
pub mod observer;
mod window;

pub use backoff::Backoff;
pub use breaker::{
    Breaker, BreakerConfig, BreakerSnapshot, BreakerState, Permit, Rejected, TripReason,
};
pub use budget::RetryBudget;
pub use class::{Classify, FailureClass, Verdict};
pub use observer::{AttemptEvent, NoopObserver, Observer, SkipReason};
