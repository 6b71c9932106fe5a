//! The state store's metrics: `backstop_state_backend_up`, `backstop_state_ops_total{op,outcome}` and
//! `backstop_state_op_duration_seconds{op}`, fed by the state layer through [`StateObserver`].

use backstop_state::StateObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Buckets for store operations: 100 µs to 1 s.
const OP_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 1.0,
];

#[derive(Clone, Copy)]
struct OpHistogram;

impl MetricConstructor<Histogram> for OpHistogram {
    fn new_metric(&self) -> Histogram {
        Histogram::new(OP_BUCKETS)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: String,
}

/// The state metrics; clones share the counters.
#[derive(Clone)]
pub struct StateMetrics {
    up: Gauge,
    ops: Family<OpLabels, Counter>,
    durations: Family<OpLabel, Histogram, OpHistogram>,
}

impl StateMetrics {
    /// Registers the state metrics in `registry` (the backend counts as up until told otherwise).
    pub fn register(registry: &mut Registry) -> Self {
        let up = Gauge::default();
        up.set(1);
        registry.register(
            "state_backend_up",
            "1 while the state backend answers, 0 while it is down or slow (the gateway serves on local state)",
            up.clone(),
        );
        let ops = Family::default();
        registry.register(
            "state_ops",
            "State store operations by op and outcome (ok, error, timeout)",
            ops.clone(),
        );
        let durations = Family::new_with_constructor(OpHistogram);
        registry.register(
            "state_op_duration_seconds",
            "State store operation duration",
            durations.clone(),
        );
        StateMetrics { up, ops, durations }
    }
}

impl StateObserver for StateMetrics {
    fn op(&self, op: &str, outcome: &str, elapsed: Duration) {
        self.ops
            .get_or_create(&OpLabels {
                op: op.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&OpLabel { op: op.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    fn backend_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }
}
