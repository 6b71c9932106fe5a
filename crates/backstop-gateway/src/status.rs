//! `GET /status` and the target reports of the admin API: per public model an
//! overall `ok` / `degraded` / `down`, and per target its circuit state, recent error
//! rate and latency percentiles, so an agent can ask "is it safe to start a long job?".

use crate::config::Model;
use crate::pipeline::{Gateway, TargetHealth};
use backstop_core::BreakerState;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The health of one target as JSON.
pub fn target_report(
    gateway: &Gateway,
    label: &str,
    health: &TargetHealth,
    models: &[String],
) -> Value {
    let snapshot = health.breaker.snapshot();
    let state = health.breaker.state();
    let latency = health.latency.percentiles().map(|p| {
        json!({
            "p50": p.p50.as_secs_f64() * 1000.0,
            "p95": p.p95.as_secs_f64() * 1000.0,
            "p99": p.p99.as_secs_f64() * 1000.0,
            "samples": p.samples,
        })
    });
    let fault = gateway.injected(label).map(|fault| {
        json!({"fault": fault.kind, "remaining_ms": fault.until.saturating_duration_since(Instant::now()).as_millis() as u64})
    });
    json!({
        "target": label,
        "models": models,
        "state": state.as_str(),
        "error_rate": snapshot.error_rate,
        "window_calls": snapshot.window_calls,
        "consecutive_failures": snapshot.consecutive_failures,
        "consecutive_threshold": snapshot.consecutive_threshold,
        "trips": snapshot.trips,
        "last_trip": snapshot.last_trip.map(|reason| reason.to_string()),
        "half_open_in_ms": snapshot
            .reopens_at
            .filter(|_| state == BreakerState::Open)
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64),
        "latency_ms": latency,
        "fault": fault,
        "held_for_ms": snapshot
            .held_until
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64),
        "opened_by": gateway
            .state()
            .filter(|_| state != BreakerState::Closed)
            .and_then(|s| s.targets().opened_by(label)),
        "provider_status": crate::status_page::target_indicator(gateway, &gateway.config(), label),
    })
}

/// The state backend and whether it answers: `{"backend": "redis://...", "up": true}` (no secrets). Without a
/// state layer (the gateway built in-process without one) the backend is `memory`.
pub fn state_report(gateway: &Gateway) -> Value {
    match gateway.state() {
        Some(state) => {
            json!({"backend": state.store().spec().to_string(), "up": state.store().is_up()})
        }
        None => json!({"backend": "memory", "up": true}),
    }
}

/// Which public models each target serves.
fn models_by_target(gateway: &Gateway) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for model in gateway.config().models.values() {
        for target in &model.targets {
            map.entry(target.label.to_string())
                .or_default()
                .push(model.name.clone());
        }
    }
    map
}

/// Every known target as JSON.
pub fn targets_report(gateway: &Gateway) -> Vec<Value> {
    let models = models_by_target(gateway);
    gateway
        .targets()
        .iter()
        .map(|(label, health)| {
            let served = models.get(label).cloned().unwrap_or_default();
            target_report(gateway, label, health, &served)
        })
        .collect()
}

/// How well a model's own targets are: all closed, some not, or all open.
fn own_health(gateway: &Gateway, model: &Model) -> Health {
    let states: Vec<BreakerState> = model
        .targets
        .iter()
        .map(|t| gateway.health(&t.label).breaker.state())
        .collect();
    let injected = model
        .targets
        .iter()
        .any(|t| gateway.injected(&t.label).is_some());
    if states.iter().all(|s| *s == BreakerState::Open) {
        Health::Down
    } else if injected || states.iter().any(|s| *s != BreakerState::Closed) {
        Health::Degraded
    } else {
        Health::Ok
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Ok,
    Degraded,
    Down,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// The `/status` document.
pub fn status(gateway: &Gateway) -> Value {
    let config = gateway.config();
    let by_target = models_by_target(gateway);
    let mut models = serde_json::Map::new();
    let mut seen = Vec::new();
    for model in config.models.values() {
        let own = own_health(gateway, model);
        let health = match own {
            Health::Down => {
                let fallback_alive = model
                    .fallbacks
                    .iter()
                    .filter_map(|name| config.models.get(name))
                    .any(|fallback| own_health(gateway, fallback) != Health::Down);
                if fallback_alive {
                    Health::Degraded
                } else {
                    Health::Down
                }
            }
            Health::Ok | Health::Degraded => own,
        };
        seen.push(health);
        let targets: Vec<Value> = model
            .targets
            .iter()
            .map(|t| {
                let served = by_target.get(&*t.label).cloned().unwrap_or_default();
                target_report(gateway, &t.label, &gateway.health(&t.label), &served)
            })
            .collect();
        models.insert(
            model.name.clone(),
            json!({
                "status": health.as_str(),
                "reported": crate::status_page::model_reported(gateway, model),
                "targets": targets,
                "fallbacks": model.fallbacks,
            }),
        );
    }
    let state = state_report(gateway);
    if state["up"] == false {
        seen.push(Health::Degraded);
    }
    let overall = if seen.iter().all(|h| *h == Health::Ok) {
        Health::Ok
    } else if seen.iter().all(|h| *h == Health::Down) {
        Health::Down
    } else {
        Health::Degraded
    };
    json!({
        "status": overall.as_str(),
        "models": models,
        "providers": crate::status_page::providers_report(gateway, &config),
        "tools": tools_report(gateway),
        "state": state,
        "drift": gateway.governance().drifts.report(),
    })
}

/// Each tool and MCP server called so far, with its circuit state.
fn tools_report(gateway: &Gateway) -> Value {
    let mut out = serde_json::Map::new();
    for (label, health) in gateway.tool_health().all() {
        let snapshot = health.breaker.snapshot();
        out.insert(
            label,
            json!({
                "state": health.breaker.state().as_str(),
                "error_rate": snapshot.error_rate,
                "consecutive_failures": snapshot.consecutive_failures,
            }),
        );
    }
    Value::Object(out)
}
