//! One attempt against one target: send, wait for the first byte (for a stream, its
//! first event), classify. A successful attempt returns the response to commit.

use super::buffers::{BufferBudget, Held};
use super::classify::{class_of, class_of_status};
use super::failure::{describe_transport, transport_class, Failure};
use super::plan::Candidate;
use super::relay::Relay;
use super::request::ClientRequest;
use super::rescue::RescueContext;
use super::Gateway;
use crate::config::Target;
use crate::http::ApiError;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::response::Response;
use backstop_core::{FailureClass, Permit};
use backstop_protocol::{translate_error, Protocol, ProviderSpec, Usage};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::{timeout_at, Instant};

/// Largest non-streaming upstream answer read into memory (within the gateway-wide
/// `server.max_buffered_bytes`).
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// Largest upstream error body read; a longer one is classified by its status alone.
const MAX_ERROR_BODY: usize = 1 << 20;

/// The outcome of one attempt.
pub enum AttemptError {
    /// The request cannot be sent to this target at all (e.g. untranslatable); no call was made.
    Unsendable(ApiError),
    /// The upstream call failed.
    Failed(Failure),
}

/// Sends `request` to `candidate`, holding `permit` until the answer (or stream) ends.
pub async fn attempt(
    gateway: &Arc<Gateway>,
    request: &Arc<ClientRequest>,
    candidate: &Candidate,
    later: &[Candidate],
    permit: Permit,
    deadline: Instant,
) -> Result<Response, AttemptError> {
    let body = request
        .body_for(&candidate.target)
        .map_err(AttemptError::Unsendable)?;
    let mut permit = Some(permit);
    match exchange(
        gateway,
        request,
        candidate,
        later,
        body,
        &mut permit,
        deadline,
    )
    .await
    {
        Ok(response) => Ok(response),
        Err(failure) => {
            if let Some(permit) = permit.take() {
                record(permit, &failure);
            }
            Err(AttemptError::Failed(failure))
        }
    }
}

/// Sends `body` to `target` and waits for its response headers until `first_byte_deadline`.
/// An operator's injected fault plays out instead of the call; a non-2xx answer is read and
/// classified. Shared by attempts and stream continuations.
pub async fn send(
    gateway: &Gateway,
    request: &ClientRequest,
    target: &Target,
    stream: bool,
    body: Bytes,
    first_byte_deadline: Instant,
) -> Result<reqwest::Response, Failure> {
    if let Some(fault) = gateway.injected(&target.label) {
        return Err(fault.play(first_byte_deadline).await);
    }
    let call = gateway
        .client()
        .request(target, stream, body, request.protocol, &request.headers)
        .send();
    let response = match timeout_at(first_byte_deadline, call).await {
        Err(_) => {
            let message = "no response headers before the first_byte timeout";
            return Err(Failure::local(FailureClass::Unavailable, message));
        }
        Ok(Err(error)) => {
            return Err(Failure::local(
                transport_class(&error),
                describe_transport(&error),
            ))
        }
        Ok(Ok(response)) => response,
    };
    if !response.status().is_success() {
        let failure = upstream_failure(
            target.provider.spec(),
            response,
            first_byte_deadline,
            &gateway.buffers(),
        )
        .await;
        return Err(failure.redacted(&gateway.redactor()));
    }
    Ok(response)
}

/// The call itself. The permit is taken out of `permit` once the outcome is recorded
/// (a success, or a stream handed to the relay); on an error it is left for the caller.
async fn exchange(
    gateway: &Arc<Gateway>,
    request: &Arc<ClientRequest>,
    candidate: &Candidate,
    later: &[Candidate],
    body: Bytes,
    permit: &mut Option<Permit>,
    deadline: Instant,
) -> Result<Response, Failure> {
    let target = &candidate.target;
    let stream = request.envelope.stream;
    let started = Instant::now();
    let first_byte_deadline = deadline.min(started + request.config.timeouts.first_byte);
    let response = send(gateway, request, target, stream, body, first_byte_deadline).await?;
    if stream {
        let Some(permit) = permit.take() else {
            return Err(Failure::local(
                FailureClass::Transient,
                "attempt without a permit",
            ));
        };
        let rescue = RescueContext::new(gateway.clone(), request.clone(), later.to_vec(), deadline);
        let mut relay = Relay::new(
            gateway, request, candidate, response, permit, deadline, rescue,
        );
        relay.prime(first_byte_deadline).await?;
        observe_first_byte(gateway, candidate, started.elapsed());
        let mut out = Response::new(Body::from_stream(relay.into_stream()));
        let headers = out.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(out);
    }
    let (bytes, held) =
        read_body(response, deadline, MAX_UPSTREAM_BODY, &gateway.buffers()).await?;
    let (body, usage) = render_success(request.protocol, target.provider.protocol(), &bytes)?;
    observe_first_byte(gateway, candidate, started.elapsed());
    if let Some(permit) = permit.take() {
        permit.record_success();
    }
    let metrics = gateway.metrics();
    metrics.attempt(&target.label, None);
    if let Some(usage) = usage {
        record_usage(metrics, candidate, &usage);
    }
    let mut out = Response::new(held_body(body, held));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(out)
}

/// A body that gives its bytes back to the budget of buffered bytes once it is dropped,
/// that is once the client has it (or went away).
fn held_body(bytes: Bytes, held: Held) -> Body {
    Body::new(Full::new(bytes).map_frame(move |frame| {
        let _held = &held;
        frame
    }))
}

fn observe_first_byte(gateway: &Gateway, candidate: &Candidate, elapsed: std::time::Duration) {
    candidate.health.latency.observe(elapsed);
    gateway
        .metrics()
        .first_byte(&candidate.target.label, elapsed);
}

/// Counts the tokens and cost of a successful attempt.
pub fn record_usage(metrics: &Metrics, candidate: &Candidate, usage: &Usage) {
    let cost = candidate.model.price.map(|price| {
        (price.input * usage.input_tokens as f64 + price.output * usage.output_tokens as f64) / 1e6
    });
    metrics.usage(
        &candidate.target.label,
        usage.input_tokens,
        usage.output_tokens,
        cost,
    );
}

fn record(permit: Permit, failure: &Failure) {
    if failure.class.is_target_failure() {
        permit.record_failure(failure.class);
    } else {
        permit.record_success();
    }
}

/// The body for the caller and its usage: the upstream's bytes when the protocols match
/// (checked to be whole JSON), else a translation. A malformed or truncated body is a
/// transient failure.
fn render_success(
    caller: Protocol,
    upstream: Protocol,
    bytes: &Bytes,
) -> Result<(Bytes, Option<Usage>), Failure> {
    let malformed = |error: &dyn std::fmt::Display| {
        Failure::local(
            FailureClass::Transient,
            format!("malformed response body: {error}"),
        )
    };
    if caller == upstream {
        let usage = backstop_protocol::read_usage(upstream, bytes).map_err(|e| malformed(&e))?;
        return Ok((bytes.clone(), usage));
    }
    let decoded = backstop_protocol::decode_response(upstream, bytes).map_err(|e| malformed(&e))?;
    let usage = Some(decoded.usage);
    Ok((
        Bytes::from(backstop_protocol::encode_response(caller, &decoded)),
        usage,
    ))
}

/// Reads a whole upstream body of at most `limit` bytes, its memory taken from `budget`
/// as it grows. Past the limit, or when the budget has no room, the answer is too large:
/// a failure of the request (no retry, no fallback, not counted against the target), a 502.
async fn read_body(
    mut response: reqwest::Response,
    deadline: Instant,
    limit: usize,
    budget: &BufferBudget,
) -> Result<(Bytes, Held), Failure> {
    let too_large = |why: String| {
        Failure::local(
            FailureClass::Permanent,
            format!("the upstream's answer is too large: {why}"),
        )
    };
    let over_limit = || too_large(format!("it passed the limit of {limit} bytes"));
    let no_room = || {
        too_large(format!(
            "the gateway's {} bytes for buffered answers (server.max_buffered_bytes) are in use",
            budget.limit()
        ))
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(over_limit());
    }
    let mut held = Held::default();
    let initial = (announced as usize).clamp(4096.min(limit), limit);
    budget.take(&mut held, initial).map_err(|_| no_room())?;
    let mut buffer = Vec::with_capacity(initial);
    loop {
        let chunk = match timeout_at(deadline, response.chunk()).await {
            Err(_) => {
                return Err(Failure::local(
                    FailureClass::Unavailable,
                    "response body not finished before the total deadline",
                ))
            }
            Ok(Err(error)) => {
                return Err(Failure::local(
                    FailureClass::Transient,
                    describe_transport(&error),
                ))
            }
            Ok(Ok(None)) => return Ok((Bytes::from(buffer), held)),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let needed = buffer.len() + chunk.len();
        if needed > limit {
            return Err(over_limit());
        }
        if needed > buffer.capacity() {
            let grown = needed.max(buffer.capacity() * 2).min(limit);
            let more = grown.saturating_sub(held.bytes());
            budget.take(&mut held, more).map_err(|_| no_room())?;
            buffer.reserve_exact(grown - buffer.len());
        }
        buffer.extend_from_slice(&chunk);
    }
}

/// Reads and classifies a non-2xx upstream answer.
async fn upstream_failure(
    spec: &ProviderSpec,
    response: reqwest::Response,
    deadline: Instant,
    budget: &BufferBudget,
) -> Failure {
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let retry_after = backstop_core::retry_hint(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SystemTime::now(),
    );
    let body = read_body(response, deadline, MAX_ERROR_BODY, budget)
        .await
        .map(|(body, _held)| body)
        .unwrap_or_default();
    let error = spec.classify_error(status, &body);
    let class = if body.is_empty() {
        class_of_status(status)
    } else {
        class_of(error.kind, status)
    };
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    let message = if error.message.is_empty() {
        reason.to_string()
    } else {
        error.message.clone()
    };
    Failure {
        class,
        status: Some(status),
        message,
        retry_after,
        upstream_body: Some((spec.protocol, body)),
    }
}

/// The upstream's error re-rendered in the caller's protocol, keeping its status and message.
pub fn upstream_error_for_caller(caller: Protocol, failure: &Failure) -> Option<ApiError> {
    let (kind, body) = failure.upstream_body.as_ref()?;
    let status = StatusCode::from_u16(failure.status?).ok()?;
    let body = if *kind == caller {
        body.clone()
    } else {
        Bytes::from(translate_error(*kind, caller, status.as_u16(), body))
    };
    let mut error = ApiError::new(crate::http::ErrorKind::Upstream, failure.message.clone());
    error.status = status;
    error.body = Some(body);
    Some(error)
}
