//! The HTTP routes: the two model endpoints, the model list and the health checks.

use crate::config::Auth;
use crate::http::{ApiError, ErrorKind};
use crate::pipeline::{ClientRequest, Gateway};
use crate::server::BodyTimeout;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backstop_protocol::Protocol;
use std::sync::Arc;

/// The gateway's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .merge(crate::admin::router(gateway.clone()))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(gateway)
}

async fn chat_completions(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    model_request(&gateway, Protocol::OpenAi, request).await
}

async fn messages(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    model_request(&gateway, Protocol::Anthropic, request).await
}

async fn model_request(gateway: &Arc<Gateway>, protocol: Protocol, request: Request) -> Response {
    match serve_model(gateway, protocol, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(
                status = error.status.as_u16(),
                kind = error.kind.code(),
                "{}",
                error.message
            );
            error.render(protocol)
        }
    }
}

async fn serve_model(
    gateway: &Arc<Gateway>,
    protocol: Protocol,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    check_client_key(gateway.config().auth.as_ref(), &parts.headers)?;
    let limit = gateway.config().server.max_body_size;
    let body = read_limited(body, limit, "server.max_body_size").await?;
    let request = ClientRequest::new(protocol, parts.headers, body)?;
    gateway.serve(Arc::new(request)).await
}

/// Reads `body` whole, or answers 413 naming `limit_name` once it passes `limit` bytes.
pub(crate) async fn read_limited(
    body: Body,
    limit: u64,
    limit_name: &str,
) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|error| {
            let causes =
                || std::iter::successors(std::error::Error::source(&error), |e| e.source());
            if let Some(timeout) = causes().find_map(|e| e.downcast_ref::<BodyTimeout>()) {
                ApiError::new(ErrorKind::Timeout, timeout.to_string())
            } else if causes().any(|e| e.is::<http_body_util::LengthLimitError>()) {
                ApiError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "request body is larger than the limit of {limit} bytes ({limit_name})"
                    ),
                )
            } else {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    format!("could not read the request body: {error}"),
                )
            }
        })
}

/// The key a caller presents: `x-api-key: K` or `Authorization: Bearer K`, the scheme
/// in any case and followed by any amount of whitespace.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = || {
        let value = headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .trim();
        let (scheme, key) = value.split_once(char::is_whitespace)?;
        scheme.eq_ignore_ascii_case("bearer").then_some(key)
    };
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(bearer)
        .map(str::trim)
}

/// Accepts `Authorization: Bearer K` or `x-api-key: K` when client keys are configured.
fn check_client_key(auth: Option<&Auth>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(auth) = auth.filter(|auth| !auth.client_keys.is_empty()) else {
        return Ok(());
    };
    let presented = presented_key(headers);
    match presented {
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "missing client key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
        )),
        Some(key)
            if auth
                .client_keys
                .iter()
                .any(|k| constant_time_eq(k.expose(), key.trim())) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(ErrorKind::Unauthorized, "invalid client key")),
    }
}

/// Compares two keys in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn models(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(error) = check_client_key(gateway.config().auth.as_ref(), &headers) {
        return error.render(Protocol::OpenAi);
    }
    let data: Vec<serde_json::Value> = gateway
        .config()
        .models
        .keys()
        .map(|name| serde_json::json!({"id": name, "object": "model", "created": 0, "owned_by": "backstop"}))
        .collect();
    Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

async fn metrics(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(error) = check_observer_key(&gateway, &headers) {
        return error.render(Protocol::OpenAi);
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gateway.metrics().render(),
    )
        .into_response()
}

async fn status(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(error) = check_observer_key(&gateway, &headers) {
        return error.render(Protocol::OpenAi);
    }
    Json(crate::status::status(&gateway)).into_response()
}

/// With `auth.protect_metrics`, `/metrics` and `/status` need a client key or the admin key.
fn check_observer_key(gateway: &Gateway, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = gateway.config();
    let Some(auth) = config.auth.as_ref().filter(|auth| auth.protect_metrics) else {
        return Ok(());
    };
    let Some(presented) = presented_key(headers) else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "this endpoint needs a client key or the admin key (auth.protect_metrics): send `Authorization: Bearer KEY`",
        ));
    };
    let known = auth.client_keys.iter().chain(auth.admin_key.iter());
    let mut accepted = false;
    for key in known {
        accepted |= constant_time_eq(key.expose(), presented);
    }
    if accepted {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::Unauthorized, "invalid key"))
    }
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response()
}

async fn not_found(request: Request) -> Response {
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    ApiError::new(ErrorKind::NotFound, message).render(Protocol::OpenAi)
}
