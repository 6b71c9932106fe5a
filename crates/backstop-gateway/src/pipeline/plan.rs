//! The plan of one request: the public model's targets in balanced order, then
//! each fallback model's targets, minus what can be skipped before any call.

use super::{Gateway, TargetHealth};
use crate::config::{Balance, Config, Model, Target};
use backstop_core::{BalanceCandidate, BreakerState, Strategy};
use std::sync::Arc;

/// One place the request may be sent.
#[derive(Clone)]
pub struct Candidate {
    /// The public model this target serves.
    pub model: Arc<Model>,
    /// The target.
    pub target: Target,
    /// Its breaker and latency statistics.
    pub health: Arc<TargetHealth>,
    /// True when `model` is not the model the client asked for.
    pub is_fallback: bool,
}

/// The ordered candidates for `requested`, each model's targets balanced, its fallbacks
/// looked up in `config` (the request's snapshot).
pub fn plan(gateway: &Gateway, config: &Config, requested: &Arc<Model>) -> Vec<Candidate> {
    let mut out = Vec::new();
    push_model(gateway, requested, false, &mut out);
    for name in &requested.fallbacks {
        if let Some(fallback) = config.models.get(name) {
            push_model(gateway, fallback, true, &mut out);
        }
    }
    out
}

fn push_model(gateway: &Gateway, model: &Arc<Model>, is_fallback: bool, out: &mut Vec<Candidate>) {
    let healths: Vec<Arc<TargetHealth>> = model
        .targets
        .iter()
        .map(|t| gateway.health(&t.label))
        .collect();
    let order = if model.targets.len() == 1 {
        vec![0]
    } else {
        let balance: Vec<BalanceCandidate> = model
            .targets
            .iter()
            .zip(&healths)
            .map(|(target, health)| BalanceCandidate {
                weight: target.weight,
                latency: health.latency.estimate(),
                available: health.breaker.state() != BreakerState::Open,
            })
            .collect();
        let strategy = match model.balance {
            Balance::Weighted => Strategy::Weighted,
            Balance::LeastLatency => Strategy::LeastLatency,
        };
        let mut order = backstop_core::order(strategy, &balance, &mut rand::rng());
        for index in 0..model.targets.len() {
            if !order.contains(&index) {
                order.push(index);
            }
        }
        order
    };
    for index in order {
        if let (Some(target), Some(health)) = (model.targets.get(index), healths.get(index)) {
            out.push(Candidate {
                model: model.clone(),
                target: target.clone(),
                health: health.clone(),
                is_fallback,
            });
        }
    }
}
