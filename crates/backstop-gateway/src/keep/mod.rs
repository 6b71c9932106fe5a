//! What Backstop keeps so that work is not lost, in the state layer (memory, SQLite or Redis):
//! the answers of the `cached` tier ([`cache`]), the answers of requests with an
//! `Idempotency-Key` ([`idempotency`]), and the guard that holds answers of degraded tiers
//! that would call an irreversible tool ([`guard`]). [`tiers`] puts them in the order a
//! request goes through: idempotent replay, `serve = "always"` cache, the engine (full and
//! reduced), then `cached` and `static`.

pub mod answer;
pub mod cache;
pub mod guard;
pub mod idempotency;
mod keeper;
pub mod key;
pub mod tiers;

pub use keeper::Keeper;

use crate::pipeline::Gateway;
use backstop_state::{NoStateObserver, StateSpec, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

/// The gateway's share of what is kept: a store of its own for a gateway started without the
/// state layer (tests, embedding), and the cache's index of what this replica wrote.
#[derive(Default)]
pub struct Keep {
    local: OnceLock<Option<Arc<Store>>>,
    index: cache::Index,
}

impl Keep {
    /// The cache's index.
    pub fn index(&self) -> &cache::Index {
        &self.index
    }
}

/// The store of `gateway`: the state layer's, or a memory store of this process (`None` only
/// if even that cannot be opened).
pub fn store(gateway: &Gateway) -> Option<Arc<Store>> {
    if let Some(state) = gateway.state() {
        return Some(state.store().clone());
    }
    gateway
        .keep()
        .local
        .get_or_init(|| {
            let prefix = gateway.config().state_prefix.clone();
            Store::open(
                &StateSpec::Memory,
                &prefix,
                "local",
                Arc::new(NoStateObserver),
            )
            .map(Arc::new)
            .ok()
        })
        .clone()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    model: String,
    serve: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeldLabels {
    model: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// `backstop_cache_hits_total{model,serve}`, `backstop_guard_held_total{model,tool}` and
/// `backstop_idempotency_total{outcome}`.
pub struct KeepMetrics {
    hits: Family<CacheLabels, Counter>,
    held: Family<HeldLabels, Counter>,
    idempotency: Family<OutcomeLabel, Counter>,
}

impl KeepMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let hits = Family::default();
        registry.register(
            "cache_hits",
            "Answers given from a model's cache, by public model and cache.serve (always: saved an upstream call; on_failure: every target had failed)",
            hits.clone(),
        );
        let held = Family::default();
        registry.register(
            "guard_held",
            "Answers of a guarded tier not delivered because they call an irreversible tool ([guard] irreversible_tools), by public model and tool",
            held.clone(),
        );
        let idempotency = Family::default();
        registry.register(
            "idempotency",
            "Requests with an Idempotency-Key, by outcome: first (answered upstream), replayed, waited (a duplicate that waited for the first), conflict (still in progress), mismatch (another body: 422), unavailable (the store did not answer: served without the guarantee)",
            idempotency.clone(),
        );
        Self {
            hits,
            held,
            idempotency,
        }
    }

    /// An answer given from `model`'s cache.
    pub fn hit(&self, model: &str, serve: &'static str) {
        let labels = CacheLabels {
            model: model.to_string(),
            serve,
        };
        self.hits.get_or_create(&labels).inc();
    }

    /// An answer of `model` held because it calls `tool`.
    pub fn held(&self, model: &str, tool: &str) {
        let labels = HeldLabels {
            model: model.to_string(),
            tool: tool.to_string(),
        };
        self.held.get_or_create(&labels).inc();
    }

    /// A request with an `Idempotency-Key` ended in `outcome`.
    pub fn idempotency(&self, outcome: &'static str) {
        self.idempotency
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}
