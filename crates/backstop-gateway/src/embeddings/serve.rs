//! The attempt loop of an embeddings request: the model's targets, then its fallbacks of the
//! same `embedding_space`; per target a breaker permit, the call, its classification, and a
//! retry with backoff for a transient failure while attempts and the retry budget allow.

use crate::config::{Config, Target};
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::metrics::RequestLabels;
use crate::pipeline::{
    plan, read_body, read_failure, record_usage, upstream_error_for_caller, Candidate, Failure,
    Gateway,
};
use axum::body::Body;
use axum::response::Response;
use backstop_core::{Backoff, FailureClass};
use backstop_protocol::{EmbeddingsRequest, Protocol, ProtocolError, Usage};
use bytes::Bytes;
use http::{header, HeaderValue};
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// Largest embeddings answer read (2048 vectors of 3072 floats as JSON fit well within it).
const MAX_ANSWER: usize = 256 << 20;

/// What the loop has seen so far.
#[derive(Default)]
struct Tally {
    attempts: u32,
    tried: Vec<String>,
    last_target: Option<String>,
    retry_after: Option<Duration>,
    /// Some candidate could take the request (it has an embeddings API and the input fits it).
    servable: bool,
}

/// Serves `req` (the client's `body`) under `config`.
pub async fn serve(
    gateway: &Gateway,
    config: &Config,
    req: &EmbeddingsRequest,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let model = gateway.resolve(config, &req.model)?;
    let deadline = started + config.timeouts.total;
    let candidates: Vec<Candidate> = plan(gateway, config, &model)
        .into_iter()
        .filter(|c| {
            c.model.name == model.name
                || (model.embedding_space.is_some()
                    && c.model.embedding_space == model.embedding_space)
        })
        .collect();
    gateway.budget().deposit();
    let mut tally = Tally::default();
    let mut result = None;
    for (index, candidate) in candidates.iter().enumerate() {
        if Instant::now() >= deadline {
            tally.tried.push("total deadline reached".into());
            break;
        }
        let later = candidates.get(index + 1..).unwrap_or_default();
        let attempt = try_candidate(gateway, req, &body, candidate, later, deadline, &mut tally);
        if let Some(answer) = attempt.await {
            result = Some(answer);
            break;
        }
    }
    let result = result.unwrap_or_else(|| {
        let summary = if tally.tried.is_empty() {
            "no target could be tried".to_string()
        } else {
            tally.tried.join("; ")
        };
        let mut error = if tally.servable {
            ApiError::new(
                ErrorKind::Unavailable,
                format!("model `{}` could not be served: {summary}", model.name),
            )
            .with_retry_after(tally.retry_after.or(Some(Duration::from_secs(1))))
        } else {
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "model `{}` cannot serve this embeddings request: {summary}",
                    model.name
                ),
            )
        };
        error.meta = Some(Box::new(ServedMeta {
            model: model.name.clone(),
            target: tally.last_target.clone(),
            attempts: tally.attempts,
            fallback: false,
        }));
        Err(error)
    });
    let served = result
        .as_ref()
        .ok()
        .and_then(|response| ServedMeta::from_headers(response.headers()));
    if let Some(meta) = served.as_ref().filter(|m| m.fallback) {
        gateway.metrics().fallback(&model.name, &meta.model);
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
            model: model.name.clone(),
            tier: tier.to_string(),
            status: status.as_str().to_string(),
        },
        started.elapsed(),
    );
    tracing::info!(
        model = %model.name,
        attempts = tally.attempts,
        status = status.as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "embeddings request"
    );
    result
}

/// Attempts on one candidate: `Some` is the final answer, `None` means "next candidate".
async fn try_candidate(
    gateway: &Gateway,
    req: &EmbeddingsRequest,
    body: &Bytes,
    candidate: &Candidate,
    later: &[Candidate],
    deadline: Instant,
    tally: &mut Tally,
) -> Option<Result<Response, ApiError>> {
    let target = &candidate.target;
    let label = &target.label;
    let spec = target.provider.spec();
    let Some(url) = spec.embeddings_endpoint(&target.provider.base_url, &target.model) else {
        tally.tried.push(format!(
            "{label}: {} providers have no embeddings API",
            spec.name
        ));
        return None;
    };
    let bodies = upstream_bodies(
        spec.protocol,
        spec.max_embeddings_batch,
        req,
        body,
        &target.model,
    );
    let bodies = match bodies {
        Ok(bodies) => bodies,
        Err(error) => {
            tally.tried.push(format!("{label}: {error}"));
            return None;
        }
    };
    tally.servable = true;
    let retry = &candidate.model.retry;
    let backoff = Backoff {
        base: retry.base_delay,
        max: retry.max_delay,
    };
    let mut attempt_no = 0;
    loop {
        attempt_no += 1;
        let Ok(permit) = candidate.health.breaker.try_acquire() else {
            tally.tried.push(format!("{label}: circuit open"));
            return None;
        };
        tally.attempts += 1;
        tally.last_target = Some(label.clone());
        let outcome = call(gateway, req, target, &url, &bodies, deadline).await;
        let failure = match outcome {
            Ok((bytes, usage)) => {
                permit.record_success();
                gateway.metrics().attempt(label, None);
                record_usage(gateway.metrics(), candidate, &usage);
                return Some(Ok(answer(bytes, candidate, tally.attempts)));
            }
            Err(failure) => failure,
        };
        if failure.class.is_target_failure() {
            permit.record_failure(failure.class);
        } else {
            permit.record_success();
        }
        gateway
            .metrics()
            .attempt(label, Some(failure.class.as_str()));
        tracing::info!(target = %label, class = failure.class.as_str(), status = failure.status,
            attempt = attempt_no, "embeddings attempt failed: {}", failure.message);
        tally.tried.push(format!("{label}: {failure}"));
        tally.retry_after = failure.retry_after.or(tally.retry_after);
        match failure.class {
            FailureClass::Permanent => {
                let mut error = upstream_error_for_caller(Protocol::OpenAi, &failure)
                    .unwrap_or_else(|| ApiError::new(ErrorKind::Upstream, failure.message.clone()));
                error.meta = Some(Box::new(meta(candidate, tally.attempts)));
                return Some(Err(error));
            }
            FailureClass::Transient if !another_channel_ahead(candidate, later) => {}
            _ => return None,
        }
        if attempt_no >= retry.max_attempts || !gateway.budget().try_withdraw() {
            return None;
        }
        let hint = failure.retry_after.filter(|_| retry.respect_retry_after);
        let delay = backoff.delay(attempt_no, hint, &mut rand::rng())?;
        if Instant::now() + delay >= deadline {
            return None;
        }
        tally.tried.pop();
        gateway.metrics().retry(label);
        tokio::time::sleep(delay).await;
    }
}

/// Whether another channel of the candidate's model comes next with its breaker not open: a
/// transient failure moves there before any retry in place, as chat requests do.
fn another_channel_ahead(candidate: &Candidate, later: &[Candidate]) -> bool {
    later.iter().any(|other| {
        other.model.name == candidate.model.name
            && other.health.breaker.state() != backstop_core::BreakerState::Open
    })
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
    gateway: &Gateway,
    req: &EmbeddingsRequest,
    target: &Target,
    url: &str,
    bodies: &[(Bytes, usize)],
    deadline: Instant,
) -> Result<(Bytes, Usage), Failure> {
    let malformed = |error: ProtocolError| {
        Failure::local(
            FailureClass::Transient,
            format!("malformed embeddings answer: {error}"),
        )
    };
    if target.provider.spec().protocol != Protocol::Gemini {
        let (body, count) = bodies.first().cloned().unwrap_or_default();
        let bytes = exchange(gateway, target, url, body, deadline).await?;
        let usage = backstop_protocol::read_openai_embeddings(&bytes, count).map_err(malformed)?;
        return Ok((bytes, usage));
    }
    let mut vectors = Vec::with_capacity(req.input.len());
    for (body, count) in bodies {
        let bytes = exchange(gateway, target, url, body.clone(), deadline).await?;
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
) -> Result<Bytes, Failure> {
    let first_byte = (Instant::now() + gateway.config().timeouts.first_byte).min(deadline);
    if let Some(fault) = gateway.injected(&target.label) {
        return Err(fault.play(first_byte).await);
    }
    let send = gateway.client().post(&target.provider, url, body).send();
    let response = match timeout_at(first_byte, send).await {
        Err(_) => {
            return Err(Failure::local(
                FailureClass::Unavailable,
                "no response headers before the first_byte timeout",
            ))
        }
        Ok(Err(error)) => {
            return Err(Failure::local(
                crate::pipeline::transport_class(&error),
                crate::pipeline::describe_transport(&error),
            ))
        }
        Ok(Ok(response)) => response,
    };
    if !response.status().is_success() {
        return Err(read_failure(gateway, target, response, deadline).await);
    }
    let (bytes, _held) = read_body(response, deadline, MAX_ANSWER, &gateway.buffers()).await?;
    Ok(bytes)
}

fn meta(candidate: &Candidate, attempts: u32) -> ServedMeta {
    ServedMeta {
        model: candidate.model.name.clone(),
        target: Some(candidate.target.label.clone()),
        attempts,
        fallback: candidate.is_fallback,
    }
}

fn answer(body: Bytes, candidate: &Candidate, attempts: u32) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    meta(candidate, attempts).apply(response.headers_mut());
    response
}
