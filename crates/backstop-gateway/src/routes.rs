//! The HTTP routes: the model endpoints, the model list and the health checks.

use crate::http::{
    check_client_key, check_observer_key, identify_client, read_client_body, ApiError, ErrorKind,
};
use crate::pipeline::{ClientRequest, Gateway};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backstop_protocol::Protocol;
use std::sync::Arc;

/// The gateway's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    crate::status_page::start(&gateway);
    crate::queue::start(&gateway);
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/dashboard", get(crate::dashboard::page))
        .merge(crate::admin::router(gateway.clone()))
        .merge(crate::responses::router(gateway.clone()))
        .merge(crate::embeddings::router(gateway.clone()))
        .merge(crate::queue::router(gateway.clone()))
        .merge(crate::tools::router())
        .merge(crate::mcp::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .with_state(gateway)
}

async fn chat_completions(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    model_request(&gateway, Protocol::OpenAi, request).await
}

async fn messages(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    model_request(&gateway, Protocol::Anthropic, request).await
}

/// Serves one request of a model endpoint in `protocol`: its errors rendered in it.
pub(crate) async fn model_request(
    gateway: &Arc<Gateway>,
    protocol: Protocol,
    request: Request,
) -> Response {
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
    let (http::request::Parts { headers, .. }, body) = request.into_parts();
    let config = gateway.config();
    let key = identify_client(config.auth.as_ref(), &headers)?;
    let body = read_client_body(&headers, body, &config).await?;
    let mut request = ClientRequest::new(protocol, headers, body, config)?;
    gateway.admit(&mut request, key).await?;
    if let Some(accepted) = crate::queue::respond_async(gateway, &request).await? {
        return Ok(accepted);
    }
    gateway.serve(Arc::new(request)).await
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
    if let Err(error) = check_observer_key(gateway.config().auth.as_ref(), &headers) {
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
    if let Err(error) = check_observer_key(gateway.config().auth.as_ref(), &headers) {
        return error.render(Protocol::OpenAi);
    }
    Json(crate::status::status(&gateway)).into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response()
}

/// A known path asked with a method it does not take: 405 (with `Allow`) and an error in the protocol of the
/// path (Anthropic's on `/v1/messages`, OpenAI's elsewhere).
async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path();
    let protocol = if path == "/v1/messages" {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    };
    let mut error = ApiError::new(
        ErrorKind::InvalidRequest,
        format!("{path} does not take {}", request.method()),
    );
    error.status = StatusCode::METHOD_NOT_ALLOWED;
    error.render(protocol)
}

async fn not_found(request: Request) -> Response {
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    ApiError::new(ErrorKind::NotFound, message).render(Protocol::OpenAi)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
