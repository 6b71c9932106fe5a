//! One attempt against one target: send, wait for the first byte (for a stream, its
//! first event), classify. A successful attempt returns the response to commit.

use super::buffers::Held;
use super::call::{read_body, record_usage, send};
use super::failure::Failure;
use super::plan::Candidate;
use super::relay::Relay;
use super::request::ClientRequest;
use super::rescue::RescueContext;
use super::Gateway;
use crate::http::ApiError;
use crate::upstream_body::UpstreamBody;
use axum::body::Body;
use axum::response::Response;
use backstop_core::{FailureClass, Permit};
use backstop_protocol::{translate_error, Protocol, Usage};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use tokio::time::Instant;

/// Largest non-streaming upstream answer read into memory (within the gateway-wide
/// `server.max_buffered_bytes`).
const MAX_UPSTREAM_BODY: usize = 64 << 20;

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

/// The call itself. The permit is taken out of `permit` once the outcome is recorded
/// (a success, or a stream handed to the relay); on an error it is left for the caller.
async fn exchange(
    gateway: &Arc<Gateway>,
    request: &Arc<ClientRequest>,
    candidate: &Candidate,
    later: &[Candidate],
    body: UpstreamBody,
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
