//! The durable queue's metrics: `backstop_queue_depth` (jobs waiting or running in the store, sampled by each
//! replica's worker), `backstop_queue_jobs_total{outcome}` and `backstop_queue_webhooks_total{outcome}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The queue metrics; clones share the counters.
#[derive(Clone)]
pub struct QueueMetrics {
    depth: Gauge,
    jobs: Family<OutcomeLabel, Counter>,
    webhooks: Family<OutcomeLabel, Counter>,
}

impl QueueMetrics {
    /// Registers the queue metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs of the durable queue waiting or running, in the whole store (all replicas), as this replica last saw it",
            depth.clone(),
        );
        let jobs = Family::default();
        registry.register(
            "queue_jobs",
            "Durable queue events by outcome: queued (202 sent), rejected (503: full or not storable), retried, done, failed (given up, or answered with an error the client must fix), cancelled, lost_race (another replica stored the result first)",
            jobs.clone(),
        );
        let webhooks = Family::default();
        registry.register(
            "queue_webhooks",
            "Webhook deliveries of finished jobs by outcome: delivered, failed (every retry refused or unreachable), dropped (too many deliveries in flight)",
            webhooks.clone(),
        );
        QueueMetrics {
            depth,
            jobs,
            webhooks,
        }
    }

    /// The store holds `depth` unfinished jobs.
    pub fn depth(&self, depth: u64) {
        self.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// One job event.
    pub fn job(&self, outcome: &'static str) {
        self.jobs.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// One webhook delivery ended.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
