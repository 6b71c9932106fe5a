//! `backstop_responses_store_errors_total{op}`: operations on stored responses the store did
//! not answer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// The metrics of stored responses.
pub struct ResponsesMetrics {
    errors: Family<OpLabel, Counter>,
}

impl ResponsesMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let errors = Family::default();
        registry.register(
            "responses_store_errors",
            "Operations on stored responses that the state store did not answer, by op: put (the answer was given but not stored), get (a read or a previous_response_id answered 503), delete (answered 503)",
            errors.clone(),
        );
        Self { errors }
    }

    /// The store did not answer `op`.
    pub fn error(&self, op: &'static str) {
        self.errors.get_or_create(&OpLabel { op }).inc();
    }
}
