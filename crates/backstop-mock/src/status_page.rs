//! A Statuspage v2 status page (`GET /api/v2/status.json`) whose indicator tests set with
//! `POST /_mock/status {"indicator": "major"}` or [`crate::MockServer::set_status_indicator`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};

use crate::handler::Shared;

/// The indicators a Statuspage v2 page can show.
const INDICATORS: [&str; 4] = ["none", "minor", "major", "critical"];

/// The page's current indicator (`none` at the start).
#[derive(Debug)]
pub(crate) struct StatusIndicator(RwLock<&'static str>);

impl Default for StatusIndicator {
    fn default() -> Self {
        Self(RwLock::new("none"))
    }
}

impl StatusIndicator {
    /// Sets the indicator; `false` when `word` is not one of Statuspage's.
    pub(crate) fn set(&self, word: &str) -> bool {
        let Some(known) = INDICATORS.iter().find(|known| **known == word) else {
            return false;
        };
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = known;
        true
    }

    fn get(&self) -> &'static str {
        *self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn description(indicator: &str) -> &'static str {
    match indicator {
        "none" => "All Systems Operational",
        "minor" => "Minor Service Outage",
        "major" => "Partial System Outage",
        _ => "Major Service Outage",
    }
}

/// `GET /api/v2/status.json`
pub(crate) async fn status_json(State(shared): State<Arc<Shared>>) -> Response {
    let indicator = shared.status.get();
    Json(json!({
        "page": {
            "id": "backstopmock",
            "name": "backstop-mock",
            "url": "http://localhost",
            "time_zone": "Etc/UTC",
            "updated_at": "2026-01-01T00:00:00.000Z"
        },
        "status": {"indicator": indicator, "description": description(indicator)}
    }))
    .into_response()
}

/// `POST /_mock/status {"indicator": "major"}`
pub(crate) async fn set_status(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<Value>,
) -> Response {
    let word = body["indicator"].as_str().unwrap_or_default();
    if shared.status.set(word) {
        Json(json!({"indicator": word})).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"type": "invalid_request", "message": "indicator must be \"none\", \"minor\", \"major\" or \"critical\""}})),
        )
            .into_response()
    }
}
