//! `GET /admin/keys`: every client key by name (never the key) with its limits, what it spent in its budget's
//! current period (also by public model, every replica's spend included) and what remains.

use crate::config::ClientKey;
use crate::pipeline::Gateway;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use backstop_state::record::now_ms;
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /admin/keys`.
pub async fn admin_keys(State(gateway): State<Arc<Gateway>>) -> Response {
    let config = gateway.config();
    let keys = config.auth.as_ref().map_or(&[][..], |auth| &auth.keys[..]);
    let mut report = Vec::with_capacity(keys.len());
    for key in keys {
        report.push(key_report(&gateway, key).await);
    }
    Json(json!({ "keys": report })).into_response()
}

async fn key_report(gateway: &Gateway, key: &ClientKey) -> Value {
    let spent = gateway.governance().spent(key).await;
    let by_model = gateway.governance().spent_by_model(key).await;
    let window = super::period::budget_window(super::spend_period(key), now_ms());
    let budget = key.budget.map(|budget| {
        json!({
            "usd": budget.usd,
            "per": budget.per.as_str(),
            "remaining_usd": (budget.usd - spent).max(0.0),
        })
    });
    json!({
        "name": key.name,
        "models": key.models,
        "regions": key.regions,
        "budget": budget,
        "period": window.id,
        "resets_at": window.ends_at_text(),
        "spent_usd": spent,
        "spent_usd_by_model": by_model,
        "rate": {
            "requests_per_minute": key.rate.requests_per_minute,
            "tokens_per_minute": key.rate.tokens_per_minute,
        },
    })
}
