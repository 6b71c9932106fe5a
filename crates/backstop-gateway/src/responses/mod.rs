//! The OpenAI Responses API: `POST /v1/responses` served by the same engine as every other
//! model request (any target, every retry, fallback, breaker and stream rescue), and
//! `GET`/`DELETE /v1/responses/{id}` for the answers it stored. Answers are kept in a
//! [`ResponseStore`], bounded by `[responses] ttl` and `max_bytes`, and only the client key
//! that created one can read, continue or delete it.

mod echo;
mod items;
mod queued;
mod store;
mod stream;

pub use queued::finish_queued;
pub use store::{Limits, MemoryStore, ResponseStore, Stored};

use crate::config::Config;
use crate::http::{
    check_client_key, identify_client, presented_key, read_limited, ApiError, ErrorKind,
};
use crate::pipeline::{ClientRequest, Gateway};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backstop_protocol::Protocol;
use futures_util::StreamExt;
use std::sync::Arc;

/// The gateway and the store the routes share.
#[derive(Clone)]
struct Shared {
    gateway: Arc<Gateway>,
    store: Arc<dyn ResponseStore>,
}

/// The Responses API routes over `gateway`, keeping answers in its response store.
pub fn router<S>(gateway: Arc<Gateway>) -> Router<S> {
    let store = gateway.response_store();
    Router::new()
        .route("/v1/responses", post(create))
        .route("/v1/responses/{id}", get(read).delete(remove))
        .with_state(Shared { gateway, store })
}

fn limits(config: &Config) -> Limits {
    Limits {
        ttl: config.responses.ttl,
        max_bytes: config.responses.max_bytes,
    }
}

fn owner(headers: &HeaderMap) -> String {
    presented_key(headers).unwrap_or_default().to_owned()
}

fn failed(error: &ApiError) -> Response {
    tracing::warn!(
        status = error.status.as_u16(),
        kind = error.kind.code(),
        "{}",
        error.message
    );
    error.render(Protocol::Responses)
}

async fn create(State(shared): State<Shared>, request: Request) -> Response {
    match serve(&shared, request).await {
        Ok(response) => response,
        Err(error) => failed(&error),
    }
}

async fn serve(shared: &Shared, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let config = shared.gateway.config();
    let key = identify_client(config.auth.as_ref(), &parts.headers)?;
    let body = read_limited(body, config.server.max_body_size, "server.max_body_size").await?;
    let owner = owner(&parts.headers);
    let (body, echo) = echo::prepare(body, shared.store.as_ref(), &owner)?;
    let limits = limits(&config);
    let mut request = ClientRequest::new(Protocol::Responses, parts.headers, body, config)?;
    shared.gateway.admit(&mut request, key).await?;
    if let Some(accepted) = crate::queue::respond_async(&shared.gateway, &request).await? {
        return Ok(accepted);
    }
    let stream = request.envelope.stream;
    let response = shared.gateway.serve(Arc::new(request)).await?;
    if response.status() != http::StatusCode::OK {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    if stream {
        let mut patcher = stream::Patcher::new(echo, owner, shared.store.clone(), limits);
        let patched = body
            .into_data_stream()
            .map(move |chunk| chunk.map(|bytes| patcher.feed(&bytes)));
        return Ok(Response::from_parts(parts, Body::from_stream(patched)));
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| {
            ApiError::new(ErrorKind::Internal, format!("reading the answer: {error}"))
        })?;
    let mut object: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            ErrorKind::Internal,
            format!("the answer is not JSON: {error}"),
        )
    })?;
    echo.finish(&mut object);
    if let Some(record) = echo.record(&owner, &object) {
        shared.store.put(&echo.id, record, limits);
    }
    Ok(Response::from_parts(parts, Body::from(object.to_string())))
}

fn not_found(id: &str) -> Response {
    failed(&ApiError::new(
        ErrorKind::NotFound,
        format!("no stored response with id `{id}` (it may have expired, been deleted, or belong to another key)"),
    ))
}

async fn read(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = check_client_key(shared.gateway.config().auth.as_ref(), &headers) {
        return failed(&error);
    }
    match shared.store.get(&id, &owner(&headers)) {
        Some(stored) => Json(stored.response).into_response(),
        None => not_found(&id),
    }
}

async fn remove(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = check_client_key(shared.gateway.config().auth.as_ref(), &headers) {
        return failed(&error);
    }
    if shared.store.delete(&id, &owner(&headers)) {
        Json(serde_json::json!({"id": id, "object": "response", "deleted": true})).into_response()
    } else {
        not_found(&id)
    }
}
