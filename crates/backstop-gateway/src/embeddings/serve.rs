//! An embeddings request through the engine: the model's targets, then its fallbacks of the
//! same `embedding_space`, with the breakers, retries, other channels first and the retry
//! budget of every other request. One attempt may be several upstream calls (Gemini takes at
//! most 100 inputs a call); its answer is whole when the attempt ends.

use crate::channels::transport_failure;
use crate::config::{Config, Target};
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::metrics::RequestLabels;
use crate::pipeline::{
    notes, plan, read_body, read_failure, record_attempt, upstream_error_for_caller, verdict,
    Answered, AttemptError, Ended, Events, Failure, Gateway, Route,
};
use crate::upstream::UpstreamClient;
use axum::body::Body;
use axum::response::Response;
use backstop_core::{
    engine, Attempt, Attempts, Candidate, FailureClass, Observer, Policy, StopReason, Verdict,
};
use backstop_protocol::{EmbeddingsRequest, Protocol, ProtocolError, Usage};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// Largest embeddings answer read (2048 vectors of 3072 floats as JSON fit well within it).
const MAX_ANSWER: usize = 256 << 20;

/// Serves `req` (the client's `body`, sent with `headers`) under `config`, charging what it costs to `tab`.
pub async fn serve(
    gateway: &Gateway,
    config: &Config,
    req: &EmbeddingsRequest,
    body: Bytes,
    tab: Arc<crate::governance::Tab>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let model = gateway.resolve(config, &req.model)?;
    let mut candidates: Vec<Candidate<Route>> =
        plan(gateway, config, &model, Protocol::OpenAi, None)
            .into_iter()
            .filter(|c| {
                c.inner.model.name == model.name
                    || (model.embedding_space.is_some()
                        && c.inner.model.embedding_space == model.embedding_space)
            })
            .map(|mut c| {
                c.inner.tab = Some(tab.clone());
                c
            })
            .collect();
    let asked = crate::governance::regions::Asked::new(tab.key(), headers);
    crate::governance::regions::restrict_for(&asked, &model, &mut candidates)?;
    let attempts = EmbeddingAttempts {
        gateway,
        req,
        body: &body,
        deadline: started + config.timeouts.total,
        first_byte: config.timeouts.first_byte,
        events: Events(gateway.metrics().clone()),
    };
    let policy = Policy {
        budget: Some(gateway.budget()),
        ..Policy::default()
    };
    let (result, calls) = match engine::run(&policy, &candidates, &attempts).await {
        Ok(served) => {
            let route = &candidates[served.served_by].inner;
            let (bytes, usage) = served.value;
            record_attempt(
                gateway.metrics(),
                route,
                served.attempt,
                Ended::Answered(Answered::with_usage(Some(&usage))),
            );
            (Ok(answer(bytes, route, served.calls)), served.calls)
        }
        Err(exhausted) => {
            let calls = exhausted.calls;
            let last = exhausted.attempts.last();
            let last_route = last.map(|record| &candidates[record.candidate].inner);
            let last_failure = last.and_then(|record| match &record.error {
                AttemptError::Failed(failure) => Some(failure),
                AttemptError::Unsendable(_) => None,
            });
            let mut error = match (exhausted.reason, last_failure, last_route) {
                (StopReason::Permanent, Some(failure), Some(route)) => {
                    let mut error = upstream_error_for_caller(Protocol::OpenAi, failure)
                        .unwrap_or_else(|| {
                            ApiError::new(ErrorKind::Upstream, failure.message.clone())
                        });
                    error.meta = Some(Box::new(meta(route, calls)));
                    return finish(gateway, &model.name, started, Err(error), calls);
                }
                _ => {
                    let mut tried = notes(&candidates, &exhausted);
                    if exhausted.reason == StopReason::Deadline {
                        tried.push("total deadline reached".into());
                    }
                    let summary = if tried.is_empty() {
                        "no target could be tried".to_string()
                    } else {
                        tried.join("; ")
                    };
                    if calls == 0 && exhausted.skipped.is_empty() && !exhausted.not_sent.is_empty()
                    {
                        ApiError::new(
                            ErrorKind::InvalidRequest,
                            format!(
                                "model `{}` cannot serve this embeddings request: {summary}",
                                model.name
                            ),
                        )
                    } else {
                        let retry_after = exhausted
                            .retry_at
                            .map(|at| at.saturating_duration_since(Instant::now()))
                            .or_else(|| last_failure.and_then(|f| f.retry_after))
                            .or(Some(Duration::from_secs(1)));
                        ApiError::new(
                            ErrorKind::Unavailable,
                            format!("model `{}` could not be served: {summary}", model.name),
                        )
                        .with_retry_after(retry_after)
                    }
                }
            };
            error.meta = Some(Box::new(ServedMeta {
                model: model.name.clone(),
                target: last_route.map(|route| route.target.label.to_string()),
                attempts: calls,
                fallback: false,
                degraded: None,
            }));
            (Err(error), calls)
        }
    };
    finish(gateway, &model.name, started, result, calls)
}

/// The request's metrics and log line.
fn finish(
    gateway: &Gateway,
    model: &str,
    started: Instant,
    result: Result<Response, ApiError>,
    calls: u32,
) -> Result<Response, ApiError> {
    let served = result
        .as_ref()
        .ok()
        .and_then(|response| ServedMeta::from_headers(response.headers()));
    if let Some(meta) = served.as_ref().filter(|m| m.fallback) {
        gateway.metrics().fallback(model, &meta.model);
    }
    let (status, tier) = match &result {
        Ok(response) => (
            response.status(),
            served.as_ref().map_or("full", ServedMeta::tier),
        ),
        Err(error) => (error.status, "none"),
    };
    gateway.metrics().request(
        RequestLabels {
            model: model.to_string(),
            tier: tier.to_string(),
            status: status.as_str().to_string(),
        },
        started.elapsed(),
    );
    tracing::info!(
        model = %model,
        attempts = calls,
        status = status.as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "embeddings request"
    );
    result
}

/// The engine's side of one embeddings request.
struct EmbeddingAttempts<'a> {
    gateway: &'a Gateway,
    req: &'a EmbeddingsRequest,
    body: &'a Bytes,
    deadline: Instant,
    first_byte: Duration,
    events: Events,
}

impl Attempts for EmbeddingAttempts<'_> {
    type Target = Route;
    type Output = (Bytes, Usage);
    type Error = AttemptError;

    fn call(
        &self,
        candidate: &Candidate<Route>,
        _attempt: u32,
    ) -> impl Future<Output = Result<(Bytes, Usage), AttemptError>> + Send {
        let route = &candidate.inner;
        async move {
            let target = &route.target;
            let spec = target.spec();
            let unsendable = |message: String| {
                AttemptError::Unsendable(ApiError::new(ErrorKind::InvalidRequest, message))
            };
            let Some(url) = spec.embeddings_endpoint(&target.provider.base_url, &target.model)
            else {
                return Err(unsendable(format!(
                    "{} providers have no embeddings API",
                    spec.name
                )));
            };
            let bodies = upstream_bodies(
                spec.protocol,
                spec.max_embeddings_batch,
                self.req,
                self.body,
                &target.model,
            )
            .map_err(|error| unsendable(error.to_string()))?;
            call(self, target, &url, &bodies)
                .await
                .map_err(|mut failure| {
                    if !route.model.retry.respect_retry_after {
                        failure.retry_after = None;
                    }
                    AttemptError::Failed(failure)
                })
        }
    }

    fn classify(&self, error: &AttemptError) -> Verdict {
        verdict(error)
    }

    fn record_failure(
        &self,
        candidate: &Candidate<Route>,
        attempt: Attempt,
        _class: FailureClass,
        error: &AttemptError,
    ) {
        if let AttemptError::Failed(failure) = error {
            record_attempt(
                self.gateway.metrics(),
                &candidate.inner,
                attempt,
                Ended::Failed(failure),
            );
        }
    }

    fn not_sent(&self, error: &AttemptError) -> bool {
        matches!(error, AttemptError::Unsendable(_))
    }

    fn deadline(&self) -> Option<Instant> {
        Some(
            self.gateway
                .drain_deadline()
                .map_or(self.deadline, |drain| drain.min(self.deadline)),
        )
    }

    fn observer(&self) -> &dyn Observer {
        &self.events
    }
}

/// The calls to make to an upstream of `protocol`, each a body and its number of inputs: the
/// client's own body for an OpenAI-compatible one (with the model renamed), `batchEmbedContents`
/// bodies for Gemini, split to fit its batch limit (`max_batch`).
fn upstream_bodies(
    protocol: Protocol,
    max_batch: usize,
    req: &EmbeddingsRequest,
    body: &Bytes,
    upstream_model: &str,
) -> Result<Vec<(Bytes, usize)>, ProtocolError> {
    match protocol {
        Protocol::Gemini => req
            .split(max_batch)
            .iter()
            .map(|part| {
                let body = backstop_protocol::encode_gemini_embeddings(part, upstream_model)?;
                Ok((Bytes::from(body), part.input.len()))
            })
            .collect(),
        _ => Ok(vec![(
            backstop_protocol::rewrite_model(body, upstream_model)?,
            req.input.len(),
        )]),
    }
}

/// One attempt: every call of `bodies` in turn, their answers joined in order into one answer in
/// OpenAI's shape with its usage, or the first failure.
async fn call(
    attempts: &EmbeddingAttempts<'_>,
    target: &Target,
    url: &str,
    bodies: &[(Bytes, usize)],
) -> Result<(Bytes, Usage), Failure> {
    let (gateway, req) = (attempts.gateway, attempts.req);
    let deadline = attempts.deadline().unwrap_or(attempts.deadline);
    let first_byte = attempts.first_byte;
    let malformed = |error: ProtocolError| {
        Failure::local(
            FailureClass::Transient,
            format!("malformed embeddings answer: {error}"),
        )
    };
    if target.spec().protocol != Protocol::Gemini {
        let (body, count) = bodies.first().cloned().unwrap_or_default();
        let bytes = exchange(gateway, target, url, body, deadline, first_byte).await?;
        let usage = backstop_protocol::read_openai_embeddings(&bytes, count).map_err(malformed)?;
        return Ok((bytes, usage));
    }
    let mut vectors = Vec::with_capacity(req.input.len());
    for (body, count) in bodies {
        let bytes = exchange(gateway, target, url, body.clone(), deadline, first_byte).await?;
        let part =
            backstop_protocol::decode_gemini_embeddings(&bytes, *count).map_err(malformed)?;
        vectors.extend(part);
    }
    let usage = Usage::default();
    let body =
        backstop_protocol::encode_openai_embeddings(&vectors, &target.model, req.base64, &usage);
    Ok((Bytes::from(body), usage))
}

/// One upstream call: its 2xx body, or the failure.
async fn exchange(
    gateway: &Gateway,
    target: &Target,
    url: &str,
    body: Bytes,
    deadline: Instant,
    first_byte: Duration,
) -> Result<Bytes, Failure> {
    let first_byte = (Instant::now() + first_byte).min(deadline);
    if let Some(fault) = gateway.injected(&target.label) {
        return Err(fault.play(first_byte).await);
    }
    let request = UpstreamClient::uri(url)
        .and_then(|uri| UpstreamClient::post_json(&target.provider, target.spec(), uri, body))
        .map_err(|error| transport_failure(&error))?;
    let client = gateway.client();
    let response = match timeout_at(first_byte, client.execute(request)).await {
        Err(_) => {
            return Err(Failure::local(
                FailureClass::Unavailable,
                "no response headers before the first_byte timeout",
            ))
        }
        Ok(Err(error)) => return Err(transport_failure(&error)),
        Ok(Ok(response)) => response,
    };
    if !response.status().is_success() {
        return Err(read_failure(gateway, target, response, deadline).await);
    }
    let (bytes, _held) = read_body(response, deadline, MAX_ANSWER, &gateway.buffers()).await?;
    Ok(bytes)
}

fn meta(route: &Route, attempts: u32) -> ServedMeta {
    ServedMeta {
        model: route.model.name.clone(),
        target: Some(route.target.label.to_string()),
        attempts,
        fallback: route.is_fallback,
        degraded: None,
    }
}

fn answer(body: Bytes, route: &Route, attempts: u32) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    meta(route, attempts).apply(response.headers_mut());
    response
}
