//! The plan of one request: the public model's targets in balanced order, then
//! each fallback model's targets, as the engine's candidates.

use super::{Gateway, TargetHealth};
use crate::config::{Balance, Config, ContentFilterPolicy, Model, Target};
use crate::telemetry::{RequestTrace, RouteTrace};
use backstop_core::{Backoff, BalanceCandidate, BreakerState, Candidate, Retry, Strategy};
use backstop_protocol::Protocol;
use std::sync::Arc;

/// One place the request may be sent: a target of a public model.
#[derive(Clone)]
pub struct Route {
    /// The public model this target serves.
    pub model: Arc<Model>,
    /// The target.
    pub target: Target,
    /// Its breaker and latency statistics.
    pub health: Arc<TargetHealth>,
    /// True when `model` is not the model the client asked for.
    pub is_fallback: bool,
    /// The spans of its calls, when the request is traced.
    pub trace: Option<Arc<RouteTrace>>,
    /// The request's tab, charged with what each call costs.
    pub tab: Option<Arc<crate::governance::Tab>>,
}

/// The ordered candidates for `requested`, each model's targets balanced, its fallbacks
/// looked up in `config` (the request's snapshot). The targets of one model form one
/// group: another channel of the model asked for comes before a retry in place. Each
/// route's calls are traced under `trace`, when the request is traced. Each target is
/// taken as it serves a client speaking `caller` ([`Target::for_caller`]).
pub fn plan(
    gateway: &Gateway,
    config: &Config,
    requested: &Arc<Model>,
    caller: Protocol,
    trace: Option<&Arc<RequestTrace>>,
) -> Vec<Candidate<Route>> {
    let mut out = Vec::new();
    push_model(gateway, requested, 0, caller, trace, &mut out);
    for (index, name) in requested.fallbacks.iter().enumerate() {
        if let Some(fallback) = config.models.get(name) {
            push_model(gateway, fallback, index + 1, caller, trace, &mut out);
        }
    }
    out
}

fn push_model(
    gateway: &Gateway,
    model: &Arc<Model>,
    group: usize,
    caller: Protocol,
    trace: Option<&Arc<RequestTrace>>,
    out: &mut Vec<Candidate<Route>>,
) {
    let healths: Vec<Arc<TargetHealth>> = model
        .targets
        .iter()
        .map(|t| gateway.health(&t.label))
        .collect();
    let retry = Retry {
        max_attempts: model.retry.max_attempts,
        backoff: Backoff {
            base: model.retry.base_delay,
            max: model.retry.max_delay,
        },
    };
    let order = crate::status_page::reorder(gateway, model, balanced(model, &healths));
    for index in order {
        if let (Some(target), Some(health)) = (model.targets.get(index), healths.get(index)) {
            out.push(Candidate {
                name: target.label.to_string(),
                breaker: health.breaker.clone(),
                context_window: model.context_window,
                group: Some(group),
                retry: Some(retry.clone()),
                stop_on_content_filter: model.on_content_filter == ContentFilterPolicy::Return,
                inner: Route {
                    model: model.clone(),
                    target: target.for_caller(caller),
                    health: health.clone(),
                    is_fallback: group > 0,
                    trace: trace.map(RequestTrace::route),
                    tab: None,
                },
            });
        }
    }
}

/// The order in which to try a model's targets: its balance strategy over the available
/// ones, then the others.
fn balanced(model: &Model, healths: &[Arc<TargetHealth>]) -> Vec<usize> {
    if model.targets.len() == 1 {
        return vec![0];
    }
    let balance: Vec<BalanceCandidate> = model
        .targets
        .iter()
        .zip(healths)
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
}
