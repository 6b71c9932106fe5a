//! The guard on irreversible tools: an answer of a tier in the model's `guard_tiers` that
//! calls a tool matching `[guard] irreversible_tools` is not delivered. The request goes on
//! to the next tier; when none can answer without the call, the client gets a 503 of type
//! `irreversible_action_held` naming the tool and the tier.

use crate::config::{Config, GuardTier, Model};
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::metrics::Metrics;
use crate::pipeline::ClientRequest;

/// An answer the guard held: the tool it would call, and its tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The irreversible tool.
    pub tool: String,
    /// The tier of the answer.
    pub tier: GuardTier,
}

/// Whether answers of `tier` are checked for `model` at all.
pub fn guards(config: &Config, model: &Model, tier: GuardTier) -> bool {
    !config.guard.irreversible_tools.is_empty() && model.guard_tiers.contains(&tier)
}

/// Whether `request` offers the model a tool the guard holds (an answer can only call such a
/// tool when it is offered; a stream of a guarded tier is then held whole before it is sent).
pub fn offers_irreversible(config: &Config, request: &ClientRequest) -> bool {
    request.canonical().is_ok_and(|canonical| {
        canonical
            .tools
            .iter()
            .any(|tool| config.guard.is_irreversible(&tool.name))
    })
}

/// The first irreversible tool among `calls` of an answer of `tier`, counted in
/// `backstop_guard_held_total`; `None` when the answer may be delivered.
pub fn check<'a>(
    config: &Config,
    model: &Model,
    tier: GuardTier,
    mut calls: impl Iterator<Item = &'a str>,
    metrics: &Metrics,
) -> Option<Held> {
    if !guards(config, model, tier) {
        return None;
    }
    let tool = calls.find(|name| config.guard.is_irreversible(name))?;
    metrics.keep().held(&model.name, tool);
    tracing::warn!(model = %model.name, tool, tier = tier.as_str(), "held an answer that calls an irreversible tool");
    Some(Held {
        tool: tool.to_string(),
        tier,
    })
}

/// The 503 for an answer held when no later tier could answer.
pub fn held_error(model: &Model, held: &Held, attempts: u32) -> ApiError {
    let mut error = ApiError::new(
        ErrorKind::ActionHeld,
        format!(
            "model `{}` could only be answered from tier `{}`, and that answer calls the irreversible tool `{}`: it was held (see [guard] irreversible_tools)",
            model.name,
            held.tier.as_str(),
            held.tool
        ),
    );
    error.meta = Some(Box::new(ServedMeta {
        model: model.name.clone(),
        target: None,
        attempts,
        fallback: false,
        degraded: None,
    }));
    error
}
