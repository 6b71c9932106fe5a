//! The control API under `/_mock/`: faults and the request log, changed at run time.
//!
//! Bad input gets a 400 whose JSON message names the problem (the key, the kind, the JSON
//! error), because the person typing `curl -d` during a drill needs to fix it fast.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fault::Fault;
use crate::handler::Shared;

fn bad_request(message: impl Into<String>) -> Response {
    let body = json!({ "error": { "type": "invalid_request", "message": message.into() } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn parse_fault(value: Value, index: Option<usize>) -> Result<Fault, String> {
    serde_json::from_value(value).map_err(|e| match index {
        Some(i) => format!("fault #{i}: {e}"),
        None => format!("fault: {e}"),
    })
}

/// `GET /_mock/faults`.
pub(crate) async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(Value::Array(shared.faults.list())).into_response()
}

/// `POST /_mock/faults`: one fault, an array of faults (all or nothing), or `{"action": "clear"}`.
pub(crate) async fn post_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("the body is not valid JSON: {e}")),
    };
    let faults = match value {
        Value::Object(map) if map.contains_key("action") => {
            return match map.get("action").and_then(Value::as_str) {
                Some("clear") if map.len() == 1 => {
                    Json(json!({ "cleared": shared.faults.clear() })).into_response()
                }
                Some("clear") => bad_request("`{\"action\": \"clear\"}` takes no other keys"),
                Some(other) => bad_request(format!(
                    "unknown action `{other}`; the only action is \"clear\""
                )),
                None => bad_request("`action` must be a string: \"clear\""),
            };
        }
        Value::Object(map) => match parse_fault(Value::Object(map), None) {
            Ok(f) => vec![f],
            Err(e) => return bad_request(e),
        },
        Value::Array(items) => {
            let parsed: Result<Vec<Fault>, String> = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| parse_fault(v, Some(i)))
                .collect();
            match parsed {
                Ok(faults) => faults,
                Err(e) => return bad_request(e),
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            return bad_request(
                "expected a fault object, an array of faults, or {\"action\": \"clear\"}",
            )
        }
    };
    let now = Instant::now();
    let ids: Vec<u64> = faults
        .into_iter()
        .map(|f| shared.faults.add(f, now))
        .collect();
    Json(json!({ "added": ids })).into_response()
}

/// `DELETE /_mock/faults`.
pub(crate) async fn delete_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "cleared": shared.faults.clear() })).into_response()
}

/// `GET /_mock/requests`.
pub(crate) async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.log.list()).into_response()
}

/// `DELETE /_mock/requests`.
pub(crate) async fn delete_requests(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "cleared": shared.log.clear() })).into_response()
}
