//! One upstream call, shared by attempts and stream continuations: send, wait for the
//! response headers, read and classify a non-2xx answer.

use super::buffers::{BufferBudget, Held};
use super::classify::{class_of, class_of_status};
use super::failure::{describe_transport, Failure};
use super::outgoing::OutgoingBody;
use super::request::ClientRequest;
use super::Gateway;
use crate::channels::transport_failure;
use crate::config::Target;
use crate::upstream::{UpstreamClient, UpstreamResponse};
use backstop_core::FailureClass;
use backstop_protocol::ProviderSpec;
use bytes::Bytes;
use http::StatusCode;
use std::time::SystemTime;
use tokio::time::{timeout_at, Instant};

/// Largest upstream error body read; a longer one is classified by its status alone.
const MAX_ERROR_BODY: usize = 1 << 20;

/// Sends `body` to `target` and waits for its response headers until `first_byte_deadline`.
/// An operator's injected fault plays out instead of the call; a non-2xx answer is read and
/// classified. Shared by attempts and stream continuations.
pub async fn send(
    gateway: &Gateway,
    request: &ClientRequest,
    target: &Target,
    stream: bool,
    body: impl Into<OutgoingBody>,
    first_byte_deadline: Instant,
) -> Result<UpstreamResponse, Failure> {
    if let Some(fault) = gateway.injected(&target.label) {
        return Err(fault.play(first_byte_deadline).await);
    }
    let client = gateway.client();
    let call = {
        // In a block of its own: the built request is moved into the call, and the handler's
        // future keeps no room for it while the call is awaited.
        let mut built =
            UpstreamClient::request(target, stream, body, request.protocol, &request.headers)
                .map_err(|error| transport_failure(&error))?;
        if let Some(telemetry) = gateway.telemetry() {
            telemetry.inject_into(&opentelemetry::Context::current(), built.headers_mut());
        }
        crate::channels::send(&client, target.provider.channel_auth.as_ref(), built)
    };
    let response = match timeout_at(first_byte_deadline, call).await {
        Err(_) => {
            let message = "no response headers before the first_byte timeout";
            return Err(Failure::local(FailureClass::Unavailable, message));
        }
        Ok(Err(failure)) => return Err(failure.redacted(&gateway.redactor())),
        Ok(Ok(response)) => response,
    };
    if !response.status().is_success() {
        // Boxed: reading an error body is the rarer path, and every request's future would
        // otherwise keep room for it.
        return Err(Box::pin(read_failure(gateway, target, response, first_byte_deadline)).await);
    }
    gateway.governance().quotas.observe(
        &target.label,
        response.headers(),
        request.config.rate_limit.headroom,
    );
    Ok(response)
}

/// The failure a non-2xx answer of `target` stands for: its body read (bounded, until
/// `deadline`), classified by the provider's rules, secrets masked.
pub async fn read_failure(
    gateway: &Gateway,
    target: &Target,
    response: UpstreamResponse,
    deadline: Instant,
) -> Failure {
    let failure = upstream_failure(target.spec(), response, deadline, &gateway.buffers()).await;
    failure.redacted(&gateway.redactor())
}

/// Reads a whole upstream body of at most `limit` bytes, its memory taken from `budget`
/// as it grows. Past the limit, or when the budget has no room, the answer is too large:
/// a failure of the request (no retry, no fallback, not counted against the target), a 502.
pub async fn read_body(
    mut response: UpstreamResponse,
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
    response: UpstreamResponse,
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
