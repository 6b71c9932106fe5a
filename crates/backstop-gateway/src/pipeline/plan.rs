//! The plan of one request: the public model's targets in balanced order, then
//! each fallback model's targets, as the engine's candidates. A chat request's plan builds
//! its fallback models' candidates only when the engine reaches them ([`Plan`]): most
//! requests are served by the model asked for, and a fallback's candidates cost their
//! health, balancing and policy checks.

use super::{ClientRequest, Gateway, TargetHealth};
use crate::config::{Balance, Config, ContentFilterPolicy, Model, Target};
use crate::governance::regions::{Asked, Regions};
use crate::http::ApiError;
use crate::telemetry::{RequestTrace, RouteTrace};
use backstop_core::{
    Backoff, BalanceCandidate, BreakerState, Candidate, Candidates, Retry, Strategy,
};
use backstop_protocol::Protocol;
use std::sync::{Arc, OnceLock};

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

/// The candidates of a chat request, one group per model: the model asked for, then each
/// of its fallbacks, each group built when the engine first reaches it, with the request's
/// tab, its region policy and its preference for targets with quota room applied.
pub struct Plan {
    source: Source,
    /// The first group, built with the plan.
    first: Vec<Candidate<Route>>,
    /// The groups after it, each built when first reached.
    rest: Box<[OnceLock<Vec<Candidate<Route>>>]>,
    /// The number of the first group of `rest` (0: the model asked for).
    next_group: usize,
}

/// What a plan's groups are built from.
#[derive(Clone)]
struct Source {
    gateway: Arc<Gateway>,
    request: Arc<ClientRequest>,
    model: Arc<Model>,
    trace: Option<Arc<RequestTrace>>,
    regions: Regions,
}

impl Plan {
    /// The plan of `request` for `model` (resolved in the request's configuration), traced
    /// under `trace`: the first group is built now, and the next ones too while the region
    /// policy leaves none. A 503 when the policy leaves no target at all, a 400 for a
    /// malformed region header.
    pub fn new(
        gateway: &Arc<Gateway>,
        request: &Arc<ClientRequest>,
        model: &Arc<Model>,
        trace: Option<&Arc<RequestTrace>>,
    ) -> Result<Plan, ApiError> {
        let source = Source {
            gateway: gateway.clone(),
            request: request.clone(),
            model: model.clone(),
            trace: trace.cloned(),
            regions: Regions::of(&Asked::request(request), model)?,
        };
        let (first, mut excluded) = source.build(0);
        let plan = Plan {
            first,
            rest: model.fallbacks.iter().map(|_| OnceLock::new()).collect(),
            next_group: 1,
            source,
        };
        if !plan.first.is_empty() {
            return Ok(plan);
        }
        for (offset, cell) in plan.rest.iter().enumerate() {
            let (candidates, dropped) = plan.source.build(plan.next_group + offset);
            excluded.extend(dropped);
            let found = !candidates.is_empty();
            let _ = cell.set(candidates);
            if found {
                return Ok(plan);
            }
        }
        if excluded.is_empty() {
            return Ok(plan);
        }
        Err(plan.source.regions.nothing_left(model, &excluded))
    }

    /// The route of candidate `index`, if it is built.
    pub fn route(&self, index: usize) -> Option<&Route> {
        self.built(index).map(|candidate| &candidate.inner)
    }

    /// The plan of the candidates after candidate `index`: those already built are copied,
    /// the groups not yet built after its own stay to be built when reached.
    pub fn after(&self, index: usize) -> Plan {
        self.get(index);
        let mut skip = index + 1;
        let mut first = None;
        let mut next_group = self.next_group;
        if skip < self.first.len() {
            first = Some(self.first[skip..].to_vec());
        }
        skip = skip.saturating_sub(self.first.len());
        let mut rest = self.rest.iter().peekable();
        while first.is_none() {
            // A group not yet built comes after `index`'s: it stays in the rest.
            let Some(group) = rest.peek().and_then(|cell| cell.get()) else {
                break;
            };
            if skip < group.len() {
                first = Some(group[skip..].to_vec());
            }
            skip = skip.saturating_sub(group.len());
            rest.next();
            next_group += 1;
        }
        Plan {
            source: self.source.clone(),
            first: first.unwrap_or_default(),
            rest: rest.cloned().collect(),
            next_group,
        }
    }

    /// Every candidate, the groups not yet built built now.
    pub fn into_candidates(self) -> Vec<Candidate<Route>> {
        let mut out = self.first;
        for (offset, cell) in self.rest.into_vec().into_iter().enumerate() {
            match cell.into_inner() {
                Some(built) => out.extend(built),
                None => out.extend(self.source.build(self.next_group + offset).0),
            }
        }
        out
    }

    /// Candidate `index`, building groups when `build` says so.
    fn find(&self, index: usize, build: bool) -> Option<&Candidate<Route>> {
        if let Some(candidate) = self.first.get(index) {
            return Some(candidate);
        }
        let mut index = index - self.first.len();
        for (offset, cell) in self.rest.iter().enumerate() {
            let group = match cell.get() {
                Some(group) => group,
                None if build => cell.get_or_init(|| self.source.build(self.next_group + offset).0),
                None => return None,
            };
            match group.get(index) {
                Some(candidate) => return Some(candidate),
                None => index -= group.len(),
            }
        }
        None
    }
}

impl Candidates<Route> for Plan {
    fn get(&self, index: usize) -> Option<&Candidate<Route>> {
        self.find(index, true)
    }

    fn built(&self, index: usize) -> Option<&Candidate<Route>> {
        self.find(index, false)
    }
}

impl Source {
    /// The candidates of group `group` (0: the model asked for; then its fallbacks in
    /// order), and those the region policy dropped.
    fn build(&self, group: usize) -> (Vec<Candidate<Route>>, Vec<String>) {
        let request = &self.request;
        let model = match group.checked_sub(1) {
            None => Some(&self.model),
            Some(fallback) => self
                .model
                .fallbacks
                .get(fallback)
                .and_then(|name| request.config.models.get(name)),
        };
        let Some(model) = model else {
            return (Vec::new(), Vec::new());
        };
        let mut out = Vec::new();
        let trace = self.trace.as_ref();
        push_model(
            &self.gateway,
            model,
            group,
            request.protocol,
            trace,
            &mut out,
        );
        for candidate in &mut out {
            candidate.inner.tab = request.tab.clone();
        }
        let excluded = self
            .regions
            .keep_allowed(&self.model, &mut out, request.request_id());
        let quotas = &self.gateway.governance().quotas;
        crate::governance::quota::prefer_roomy(quotas, self.gateway.metrics(), request, &mut out);
        (out, excluded)
    }
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
                name: target.label.clone(),
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
