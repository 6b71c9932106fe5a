//! The gateway's observer of resilience events: every breaker transition is
//! logged with its target and the reason it tripped.

use backstop_core::{BreakerState, Observer, TripReason};

/// Logs breaker transitions (and, later, counts them in metrics).
pub struct LogObserver;

impl Observer for LogObserver {
    fn breaker_transition(
        &self,
        target: &str,
        from: BreakerState,
        to: BreakerState,
        reason: Option<&TripReason>,
    ) {
        match (to, reason) {
            (BreakerState::Open, Some(reason)) => {
                tracing::warn!(target = %target, from = from.as_str(), to = to.as_str(), reason = %reason, "circuit opened");
            }
            (BreakerState::Open | BreakerState::HalfOpen | BreakerState::Closed, _) => {
                tracing::info!(target = %target, from = from.as_str(), to = to.as_str(), "circuit state changed");
            }
        }
    }
}
