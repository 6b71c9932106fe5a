//! The durable queue at the edge: requests that ask with `Prefer: respond-async`, or that a model with
//! `queue = "on_failure"` could not serve at any tier, are stored as jobs and answered `202 {"id", "status":
//! "queued"}` with `Location: /v1/backstop/jobs/{id}` and `x-backstop-tier: queued` — only once the job is
//! committed; a job that cannot be stored is a 503, never a 202. `GET /v1/backstop/jobs/{id}` reads a job,
//! `DELETE` cancels it while it waits; only the client key that created a job sees it (others get the 404 of
//! an unknown id). A worker in every replica replays jobs through the same engine (see [`worker`]).
//!
//! A streaming request that is queued runs as a non-streaming one: its result is the whole answer in the
//! caller's protocol.

pub mod callback;
pub mod job;
pub mod prefer;
pub mod worker;

pub use worker::start;

use crate::config::Model;
use crate::http::{check_client_key, ApiError, ErrorKind, ServedMeta};
use crate::metrics::RequestLabels;
use crate::pipeline::{ClientRequest, Gateway};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use backstop_protocol::Protocol;
use backstop_state::queue::{Enqueued, Job, JobStatus, NewJob};
use http::HeaderValue;
use std::sync::Arc;

/// The job routes.
pub fn router<S>(gateway: Arc<Gateway>) -> Router<S> {
    Router::new()
        .route("/v1/backstop/jobs/{id}", get(read).delete(cancel))
        .with_state(gateway)
}

/// With `Prefer: respond-async`, queues `request` and answers 202 (`None` when it did not ask; a malformed
/// `Prefer` is a 400, an unknown model the usual 404), counted in `backstop_requests_total` at tier `queued`.
pub async fn respond_async(
    gateway: &Arc<Gateway>,
    request: &ClientRequest,
) -> Result<Option<Response>, ApiError> {
    if !prefer::respond_async(&request.headers)? {
        return Ok(None);
    }
    let started = tokio::time::Instant::now();
    let model = gateway.resolve(&request.config, &request.envelope.model)?;
    let meta = ServedMeta {
        model: model.name.clone(),
        ..ServedMeta::default()
    };
    // Boxed: asking for an asynchronous answer is rare, and every request awaits this.
    let result = Box::pin(enqueue(gateway, request, meta)).await;
    let (tier, status) = match &result {
        Ok(response) => ("queued", response.status()),
        Err(error) => ("none", error.status),
    };
    gateway.metrics().request(
        RequestLabels {
            model: model.name.clone(),
            tier: tier.to_string(),
            status: status.as_str().to_string(),
        },
        started.elapsed(),
    );
    result.map(Some)
}

/// After every tier failed with `error`: a model with `queue = "on_failure"` queues the request (202) when
/// the failure is the providers' (a 503), else (or when the job cannot be stored) the error stands.
pub async fn after_failure(
    gateway: &Arc<Gateway>,
    request: &ClientRequest,
    model: &Model,
    error: ApiError,
) -> Result<Response, ApiError> {
    let queueable = model.queue_on_failure
        && !request.from_queue
        && error.status == StatusCode::SERVICE_UNAVAILABLE
        && matches!(
            request.protocol,
            Protocol::OpenAi | Protocol::Anthropic | Protocol::Responses
        );
    if !queueable {
        return Err(error);
    }
    let meta = ServedMeta {
        model: model.name.clone(),
        attempts: error.meta.as_ref().map_or(0, |m| m.attempts),
        ..ServedMeta::default()
    };
    match enqueue(gateway, request, meta).await {
        Ok(accepted) => Ok(accepted),
        Err(not_stored) => {
            tracing::warn!("could not queue a failed request: {}", not_stored.message);
            Err(error)
        }
    }
}

/// Stores `request` as a job and answers 202, or a 503 when it cannot be stored.
async fn enqueue(
    gateway: &Arc<Gateway>,
    request: &ClientRequest,
    mut meta: ServedMeta,
) -> Result<Response, ApiError> {
    let settings = &request.config.queue;
    let callback = callback::requested(&request.headers, settings)?;
    let metrics = gateway.metrics().queue();
    let unavailable = |why: String| {
        metrics.job("rejected");
        ApiError::new(ErrorKind::Unavailable, why)
            .with_retry_after(Some(std::time::Duration::from_secs(5)))
    };
    let Some(state) = gateway.state() else {
        return Err(unavailable(
            "the request cannot be queued: no state store is attached".into(),
        ));
    };
    let payload = job::Payload::of(request)?;
    let id = job::new_id();
    let new = NewJob {
        id: id.clone(),
        owner: job::owner(&request.headers),
        payload: payload.encode(),
        callback,
        ttl: settings.ttl,
        max_attempts: settings.max_attempts,
    };
    match state.queue().enqueue(new, settings.max_jobs).await {
        Ok(Enqueued::Stored) => {}
        Ok(Enqueued::Full) => {
            return Err(unavailable(format!(
                "the queue is full ({} jobs waiting or running, `queue.max_jobs`): try again later",
                settings.max_jobs
            )))
        }
        Err(error) => {
            return Err(unavailable(format!(
                "the request could not be stored in the queue ({error}): try again later"
            )))
        }
    }
    metrics.job("queued");
    tracing::info!(job = %id, model = %meta.model, request_id = request.request_id(), "request queued");
    meta.degraded = Some("queued");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "status": "queued"})),
    )
        .into_response();
    let headers = response.headers_mut();
    meta.apply(headers);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/backstop/jobs/{id}")) {
        headers.insert(http::header::LOCATION, location);
    }
    Ok(response)
}

/// The job as its owner reads it: `{"id", "status", "result", "status_code"}`, the result being the answer
/// (or final error) body in the caller's protocol once done or failed.
pub fn view(job: &Job) -> serde_json::Value {
    let finished = matches!(job.status, JobStatus::Done | JobStatus::Failed);
    let result =
        job.result.as_deref().filter(|_| finished).map(|text| {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text))
        });
    serde_json::json!({
        "id": job.id,
        "status": job.status.as_str(),
        "result": result,
        "status_code": job.status_code.filter(|_| finished),
    })
}

/// The job `id` if the caller owns it.
async fn owned(gateway: &Gateway, id: &str, headers: &HeaderMap) -> Result<Job, ApiError> {
    check_client_key(gateway.config().auth.as_ref(), headers)?;
    let queue = gateway
        .state()
        .map(|state| state.queue().clone())
        .ok_or_else(|| job::not_found(id))?;
    let found = queue.get(id).await.map_err(|error| {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("the job store did not answer: {error}"),
        )
    })?;
    found
        .filter(|job| job.owner == job::owner(headers))
        .ok_or_else(|| job::not_found(id))
}

async fn read(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match owned(&gateway, &id, &headers).await {
        Ok(job) => Json(view(&job)).into_response(),
        Err(error) => error.render(Protocol::OpenAi),
    }
}

async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let cancelled = async {
        owned(&gateway, &id, &headers).await?;
        let queue = gateway
            .state()
            .map(|state| state.queue().clone())
            .ok_or_else(|| job::not_found(&id))?;
        let job = queue
            .cancel(&id)
            .await
            .map_err(|error| {
                ApiError::new(
                    ErrorKind::Unavailable,
                    format!("the job store did not answer: {error}"),
                )
            })?
            .ok_or_else(|| job::not_found(&id))?;
        if job.status == JobStatus::Cancelled {
            gateway.metrics().queue().job("cancelled");
            return Ok(Json(view(&job)).into_response());
        }
        let mut error = ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "job `{id}` is {} and can no longer be cancelled",
                job.status.as_str()
            ),
        );
        error.status = StatusCode::CONFLICT;
        Err(error)
    };
    match cancelled.await {
        Ok(response) => response,
        Err(error) => error.render(Protocol::OpenAi),
    }
}
