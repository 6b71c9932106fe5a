//! The governance metrics: `backstop_spend_usd_total{key,model}`, `backstop_rate_limited_total{key}`,
//! `backstop_model_drift_total{target,reported}` and `backstop_preemptive_reroutes_total{target}`. Keys
//! appear by their configured name, never by the key itself.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpendLabels {
    key: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabel {
    key: String,
}

/// The governance metrics; clones share the counters.
#[derive(Clone)]
pub struct GovernanceMetrics {
    spend: Family<SpendLabels, Counter<f64, AtomicU64>>,
    rate_limited: Family<KeyLabel, Counter>,
    drift: Family<DriftLabels, Counter>,
    reroutes: Family<TargetLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    target: String,
    reported: String,
}

impl GovernanceMetrics {
    /// Registers the governance metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let spend = Family::default();
        registry.register(
            "spend_usd",
            "Estimated spend in US dollars by client key name and the public model asked for: every attempt's usage times its price, retries, hedges, continuations and fallbacks included",
            spend.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by client key name: over its rate limits or its budget",
            rate_limited.clone(),
        );
        let drift = Family::default();
        registry.register(
            "model_drift",
            "Answers of a target pinned in the catalog that reported another model, by target and the model reported",
            drift.clone(),
        );
        let reroutes = Family::default();
        registry.register(
            "preemptive_reroutes",
            "Requests that tried a target after the model's other channels because its provider said it was below rate_limit.headroom (or had fewer tokens left than the request needs) before its reset",
            reroutes.clone(),
        );
        Self {
            spend,
            rate_limited,
            drift,
            reroutes,
        }
    }

    /// `usd` spent for `key` on a request for `model`.
    pub fn spend(&self, key: &str, model: &str, usd: f64) {
        let labels = SpendLabels {
            key: key.to_string(),
            model: model.to_string(),
        };
        self.spend.get_or_create(&labels).inc_by(usd);
    }

    /// `target` answered as `reported`, not its pinned version.
    pub fn drift(&self, target: &str, reported: &str) {
        let labels = DriftLabels {
            target: target.to_string(),
            reported: reported.to_string(),
        };
        self.drift.get_or_create(&labels).inc();
    }

    /// A request moved `target` behind the model's other channels for lack of room.
    pub fn preemptive_reroute(&self, target: &str) {
        let label = TargetLabel {
            target: target.to_string(),
        };
        self.reroutes.get_or_create(&label).inc();
    }

    /// A request of `key` refused with 429.
    pub fn rate_limited(&self, key: &str) {
        let label = KeyLabel {
            key: key.to_string(),
        };
        self.rate_limited.get_or_create(&label).inc();
    }
}
