//! The operator's API under `/admin` (see [`crate::config::AdminAccess`] for who may use it): list
//! targets and their breakers, force a breaker open or closed, inject and clear
//! faults, reload the configuration from disk.

use crate::config::{parse_duration, AdminAccess};
use crate::http::{constant_time_eq, presented_key, read_json_body, ApiError, ErrorKind};
use crate::pipeline::{Gateway, InjectedFault, InjectedKind, ReloadError, Reloaded};
use crate::status;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backstop_protocol::Protocol;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The `/admin` routes.
pub fn router(gateway: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/targets", get(targets))
        .route("/admin/faults", post(inject).delete(clear))
        .route("/admin/breakers/{*path}", post(breaker))
        .route("/admin/reload", post(reload))
        .route("/admin/keys", get(crate::governance::admin_keys))
        .route("/admin/dashboard", get(crate::dashboard::state))
        .layer(middleware::from_fn_with_state(gateway, require_admin_key))
}

fn admin_error(kind: ErrorKind, message: impl Into<String>) -> Response {
    ApiError::new(kind, message).render(Protocol::OpenAi)
}

/// The largest admin request body: every admin call takes a few hundred bytes at most.
pub const MAX_ADMIN_BODY: usize = 64 << 10;

/// Lets a request through when the admin API is open or it presents the admin key, and
/// reads its body, at most [`MAX_ADMIN_BODY`], only then.
async fn require_admin_key(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    match gateway.config().admin_access() {
        AdminAccess::Open => {}
        AdminAccess::Disabled(why) => return admin_error(ErrorKind::Forbidden, why),
        AdminAccess::Key(key) => match presented_key(request.headers()) {
            Some(given) if constant_time_eq(key.expose(), given) => {}
            Some(_) => return admin_error(ErrorKind::Unauthorized, "invalid admin key"),
            None => {
                return admin_error(
                    ErrorKind::Unauthorized,
                    "the admin API needs the admin key: send `Authorization: Bearer ADMIN_KEY`",
                )
            }
        },
    }
    let (parts, body) = request.into_parts();
    match read_json_body(
        &parts.headers,
        body,
        MAX_ADMIN_BODY as u64,
        "the admin API's limit",
    )
    .await
    {
        Ok(body) => next.run(Request::from_parts(parts, body.into())).await,
        Err(error) => error.render(Protocol::OpenAi),
    }
}

async fn targets(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(json!({"targets": status::targets_report(&gateway)})).into_response()
}

/// `POST /admin/faults` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    target: String,
    kind: String,
    status: Option<u16>,
    duration: Option<String>,
}

fn known_target(gateway: &Gateway, label: &str) -> Result<(), Box<Response>> {
    let config = gateway.config();
    let mut labels: Vec<&str> = config
        .models
        .values()
        .flat_map(|m| m.targets.iter().map(|t| &*t.label))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.contains(&label) {
        Ok(())
    } else {
        Err(Box::new(admin_error(
            ErrorKind::NotFound,
            format!(
                "unknown target `{label}`; known targets: {}",
                labels.join(", ")
            ),
        )))
    }
}

async fn inject(State(gateway): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return admin_error(
                ErrorKind::InvalidRequest,
                format!("invalid fault: {error}; expected {{\"target\": \"provider/model\", \"kind\": \"status\"|\"timeout\"|\"reset\", \"status\": 503, \"duration\": \"30s\"}}"),
            )
        }
    };
    if let Err(response) = known_target(&gateway, &request.target) {
        return *response;
    }
    let kind = match (request.kind.as_str(), request.status) {
        ("status", Some(status)) if (400..=599).contains(&status) => {
            InjectedKind::Status { status }
        }
        ("status", _) => {
            return admin_error(
                ErrorKind::InvalidRequest,
                "kind `status` needs `status` between 400 and 599",
            )
        }
        ("timeout", None) => InjectedKind::Timeout,
        ("reset", None) => InjectedKind::Reset,
        ("timeout" | "reset", Some(_)) => {
            return admin_error(
                ErrorKind::InvalidRequest,
                format!("kind `{}` takes no `status`", request.kind),
            )
        }
        (other, _) => {
            return admin_error(
                ErrorKind::InvalidRequest,
                format!("unknown fault kind `{other}`: use \"status\", \"timeout\" or \"reset\""),
            )
        }
    };
    let duration = match request.duration.as_deref().map(parse_duration) {
        None => Duration::from_secs(60),
        Some(Ok(duration)) => duration,
        Some(Err(message)) => {
            return admin_error(ErrorKind::InvalidRequest, format!("duration: {message}"))
        }
    };
    gateway.inject(&request.target, InjectedFault::new(kind, duration));
    tracing::warn!(target = %request.target, fault = ?kind, duration_ms = duration.as_millis() as u64, "fault injected by an operator");
    Json(json!({"target": request.target, "fault": kind, "until_ms": duration.as_millis() as u64}))
        .into_response()
}

async fn clear(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let target = query.get("target").map(String::as_str);
    gateway.clear_faults(target);
    tracing::info!(target = target.unwrap_or("all"), "injected faults cleared");
    Json(json!({"cleared": target.unwrap_or("all")})).into_response()
}

/// Optional body of a breaker command.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerCommand {
    #[serde(rename = "for")]
    for_: Option<String>,
}

/// `POST /admin/breakers/{provider}/{model}/open|close`, body optionally `{"for": "30s"}`.
async fn breaker(
    State(gateway): State<Arc<Gateway>>,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some((label, action)) = path.rsplit_once('/') else {
        return admin_error(
            ErrorKind::NotFound,
            "use /admin/breakers/PROVIDER/MODEL/open or .../close",
        );
    };
    if let Err(response) = known_target(&gateway, label) {
        return *response;
    }
    let command: BreakerCommand = if body.is_empty() {
        BreakerCommand::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(command) => command,
            Err(error) => {
                return admin_error(ErrorKind::InvalidRequest, format!("invalid body: {error}"))
            }
        }
    };
    let health = gateway.health(label);
    match action {
        "open" => {
            let duration = match command.for_.as_deref().map(parse_duration) {
                None => None,
                Some(Ok(duration)) => Some(duration),
                Some(Err(message)) => {
                    return admin_error(ErrorKind::InvalidRequest, format!("for: {message}"))
                }
            };
            health.breaker.force_open(duration);
        }
        "close" => health.breaker.force_close(),
        other => {
            return admin_error(
                ErrorKind::NotFound,
                format!("unknown breaker action `{other}`: use open or close"),
            )
        }
    }
    tracing::warn!(target = %label, action, "circuit forced by an operator");
    Json(json!({"target": label, "state": health.breaker.state().as_str()})).into_response()
}

/// Reloads off the async workers, so that reading and checking a large file never holds
/// up the requests they serve.
async fn reload(State(gateway): State<Arc<Gateway>>) -> Response {
    let outcome = tokio::task::spawn_blocking(move || gateway.reload()).await;
    match outcome {
        Ok(Ok(reloaded)) => {
            log_reloaded(&reloaded, "POST /admin/reload");
            let models: Vec<&String> = reloaded.config.models.keys().collect();
            Json(json!({
                "reloaded": true,
                "models": models,
                "restart_required": reloaded.restart_required,
            }))
            .into_response()
        }
        Ok(Err(error)) => {
            let message = refused_message(&error);
            tracing::error!(source = "POST /admin/reload", "{message}");
            admin_error(ErrorKind::InvalidRequest, message)
        }
        Err(error) => admin_error(ErrorKind::Internal, format!("reload failed: {error}")),
    }
}

/// What a refused reload says, in the answer and in the log.
pub fn refused_message(error: &ReloadError) -> String {
    format!("reload refused, the running configuration stays: {error}")
}

/// Logs a reload that took effect, with a warning naming what waits for a restart.
pub fn log_reloaded(reloaded: &Reloaded, source: &str) {
    tracing::info!(
        source,
        models = reloaded.config.models.len(),
        "configuration reloaded"
    );
    if !reloaded.restart_required.is_empty() {
        tracing::warn!(
            source,
            "reload: {} changed but only applies at a restart; the running values stay",
            reloaded.restart_required.join(", ")
        );
    }
}
