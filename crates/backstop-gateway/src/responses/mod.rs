//! The OpenAI Responses API: `POST /v1/responses` served by the same engine as every other
//! model request (any target, every retry, fallback, breaker and stream rescue), and
//! `GET`/`DELETE /v1/responses/{id}` for the answers it stored. Answers are kept in a
//! [`ResponseStore`] (the state layer's SQLite or Redis store, or this process's memory),
//! bounded by `[responses] ttl` and `max_bytes`, and only the client key that created one can
//! read, continue or delete it. A store that does not answer makes a read, a deletion or a
//! `previous_response_id` a 503; an answer already produced is given anyway, its storing
//! logged and counted in `backstop_responses_store_errors_total`.

mod echo;
mod items;
mod ledger;
mod metrics;
mod queued;
mod shared;
mod store;
mod stream;

pub use metrics::ResponsesMetrics;
pub use queued::finish_queued;
pub use store::{Limits, MemoryStore, ResponseStore, SharedStore, Stored};

use crate::config::Config;
use crate::http::{check_client_key, identify_client, read_client_body, ApiError, ErrorKind};
use crate::pipeline::{ClientRequest, Gateway};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backstop_protocol::Protocol;
use backstop_state::{State as StateLayer, StateError, StateSpec};
use futures_util::StreamExt;
use std::sync::{Arc, OnceLock};

/// The gateway's stores of responses: its memory, and the state layer's once attached.
#[derive(Default)]
pub struct Stores {
    memory: Arc<MemoryStore>,
    shared: OnceLock<Arc<SharedStore>>,
}

impl Stores {
    /// The store in use with `state`: the state layer's unless there is none or it is memory.
    pub fn resolve(&self, state: Option<&Arc<StateLayer>>) -> ResponseStore {
        match state {
            Some(state) if !matches!(state.store().spec(), StateSpec::Memory) => {
                ResponseStore::Shared(
                    self.shared
                        .get_or_init(|| Arc::new(SharedStore::new(state.store().clone())))
                        .clone(),
                )
            }
            _ => ResponseStore::Memory(self.memory.clone()),
        }
    }
}

/// The state the routes share.
#[derive(Clone)]
struct Shared {
    gateway: Arc<Gateway>,
}

impl Shared {
    fn store(&self) -> ResponseStore {
        self.gateway.response_store()
    }
}

/// The Responses API routes over `gateway`, keeping answers in its response store.
pub fn router<S>(gateway: Arc<Gateway>) -> Router<S> {
    Router::new()
        .route("/v1/responses", post(create))
        .route("/v1/responses/{id}", get(read).delete(remove))
        .with_state(Shared { gateway })
}

fn limits(config: &Config) -> Limits {
    Limits {
        ttl: config.responses.ttl,
        max_bytes: config.responses.max_bytes,
    }
}

/// Who asks: the hash of the client's key, what a record's owner is compared with.
fn owner(headers: &HeaderMap) -> String {
    crate::keep::key::client_id(headers)
}

/// The 503 for a store that did not answer while `doing` something.
fn store_down(doing: &str, error: &StateError) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("the store of responses did not answer while {doing} ({error}): try again shortly"),
    )
    .with_retry_after(Some(std::time::Duration::from_secs(1)))
}

/// Stores `record` under `id`; a store that fails is logged and counted, never the client's
/// problem (the answer was already produced).
async fn keep(store: &ResponseStore, gateway: &Gateway, id: &str, record: Stored, limits: Limits) {
    match store.put(id, record, limits).await {
        Ok(true) => {}
        Ok(false) => tracing::info!(id, "response larger than responses.max_bytes: not stored"),
        Err(error) => {
            gateway.metrics().responses().error("put");
            tracing::warn!(id, "the response was given but not stored: {error}");
        }
    }
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
    let body = read_client_body(&parts.headers, body, &config).await?;
    let owner = owner(&parts.headers);
    let store = shared.store();
    let (body, echo) = match echo::prepare(body, &store, &owner).await {
        Ok(prepared) => prepared,
        Err(echo::Refused::Invalid(error)) => return Err(error),
        Err(echo::Refused::Store(error)) => {
            shared.gateway.metrics().responses().error("get");
            return Err(store_down("reading previous_response_id", &error));
        }
    };
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
        let id = echo.id.clone();
        let patcher = stream::Patcher::new(echo, owner);
        let gateway = shared.gateway.clone();
        let state = (body.into_data_stream(), patcher);
        let patched = futures_util::stream::unfold(state, move |(mut body, mut patcher)| {
            let (store, gateway, id) = (store.clone(), gateway.clone(), id.clone());
            async move {
                let chunk = body.next().await?;
                let out = match chunk {
                    Ok(bytes) => {
                        let out = patcher.feed(&bytes);
                        if let Some(record) = patcher.take_record() {
                            keep(&store, &gateway, &id, record, limits).await;
                        }
                        Ok(out)
                    }
                    Err(error) => Err(error),
                };
                Some((out, (body, patcher)))
            }
        });
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
        keep(&store, &shared.gateway, &echo.id, record, limits).await;
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
    match shared.store().get(&id, &owner(&headers)).await {
        Ok(Some(stored)) => Json(stored.response).into_response(),
        Ok(None) => not_found(&id),
        Err(error) => {
            shared.gateway.metrics().responses().error("get");
            failed(&store_down("reading it", &error))
        }
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
    match shared.store().delete(&id, &owner(&headers)).await {
        Ok(true) => Json(serde_json::json!({"id": id, "object": "response", "deleted": true}))
            .into_response(),
        Ok(false) => not_found(&id),
        Err(error) => {
            shared.gateway.metrics().responses().error("delete");
            failed(&store_down("deleting it", &error))
        }
    }
}
