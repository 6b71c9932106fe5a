//! The gateway's observer of breaker events: every transition is logged with its
//! target and the reason it tripped, and counted in metrics.

use crate::metrics::Metrics;
use backstop_core::{BreakerState, Observer, TripReason};
use std::sync::Arc;

/// Logs and counts breaker transitions.
pub struct GatewayObserver {
    metrics: Arc<Metrics>,
}

impl GatewayObserver {
    /// An observer reporting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl Observer for GatewayObserver {
    fn breaker_transition(
        &self,
        target: &str,
        from: BreakerState,
        to: BreakerState,
        reason: Option<&TripReason>,
    ) {
        self.metrics
            .circuit(target, to.as_str(), i64::from(to.as_gauge()));
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
