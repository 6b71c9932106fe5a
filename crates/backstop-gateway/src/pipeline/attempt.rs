//! The engine's call for one attempt on one target: send, wait for the whole answer (for
//! a stream, its first event), classify; then the commit of the answer that is served.

use super::buffers::Held;
use super::call::{read_body, send};
use super::failure::Failure;
use super::plan::Route;
use super::record::{record_attempt, Ended};
use super::relay::Relay;
use super::request::ClientRequest;
use super::rescue::RescueContext;
use super::Gateway;
use crate::http::ApiError;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::response::Response;
use backstop_core::{Attempt, Candidate, Exhausted, FailureClass};
use backstop_protocol::{translate_error, Protocol, Usage};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

/// Largest non-streaming upstream answer read into memory (within the gateway-wide
/// `server.max_buffered_bytes`).
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// Why an attempt gave no answer.
pub enum AttemptError {
    /// The request cannot be sent to this target at all (e.g. untranslatable); no call was made.
    Unsendable(ApiError),
    /// The upstream call failed.
    Failed(Failure),
}

/// What happened to each candidate, in plan order: its last failure, why it could not be
/// sent, or why it was skipped.
pub fn notes(candidates: &[Candidate<Route>], exhausted: &Exhausted<AttemptError>) -> Vec<String> {
    let mut notes = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let label = &candidate.name;
        let failed = exhausted.attempts.iter().rfind(|a| a.candidate == index);
        let not_sent = exhausted.not_sent.iter().find(|(i, _)| *i == index);
        let skipped = exhausted.skipped.iter().find(|(i, _)| *i == index);
        let why = match (failed, not_sent, skipped) {
            (Some(record), _, _) => describe(&record.error),
            (None, Some((_, error)), _) => describe(error),
            (None, None, Some((_, reason))) => reason.to_string(),
            (None, None, None) => continue,
        };
        notes.push(format!("{label}: {why}"));
    }
    notes
}

/// An attempt's error in words.
fn describe(error: &AttemptError) -> String {
    match error {
        AttemptError::Failed(failure) => failure.to_string(),
        AttemptError::Unsendable(error) => error.message.clone(),
    }
}

/// An answer at the commit point, not yet handed to the client.
pub enum Answer {
    /// A whole answer: the body for the caller, its hold on the buffer budget, its usage.
    Whole {
        body: Bytes,
        held: Held,
        usage: Option<Usage>,
    },
    /// A stream whose first event is ready.
    Stream(Box<Relay>),
}

/// Sends `request` to `route` and waits for a whole answer or, for a stream, its first event.
pub async fn call(
    gateway: &Gateway,
    request: &ClientRequest,
    route: &Route,
    deadline: Instant,
) -> Result<Answer, AttemptError> {
    let body = request
        .body_for(&route.target)
        .map_err(AttemptError::Unsendable)?;
    exchange(gateway, request, route, body, deadline)
        .await
        .map_err(|mut failure| {
            if !route.model.retry.respect_retry_after {
                failure.retry_after = None;
            }
            AttemptError::Failed(failure)
        })
}

async fn exchange(
    gateway: &Gateway,
    request: &ClientRequest,
    route: &Route,
    body: Bytes,
    deadline: Instant,
) -> Result<Answer, Failure> {
    let target = &route.target;
    let stream = request.envelope.stream;
    let started = Instant::now();
    let first_byte_deadline = deadline.min(started + request.config.timeouts.first_byte);
    let response = send(gateway, request, target, stream, body, first_byte_deadline).await?;
    if stream {
        let mut relay = Relay::new(gateway, request, route, response, deadline);
        relay.prime(first_byte_deadline).await?;
        observe_first_byte(gateway, route, started.elapsed());
        return Ok(Answer::Stream(Box::new(relay)));
    }
    let (bytes, held) =
        read_body(response, deadline, MAX_UPSTREAM_BODY, &gateway.buffers()).await?;
    if let Some(refused) = crate::channels::refused_answer(target, &bytes) {
        return Err(refused);
    }
    let (body, usage) = render_success(request.protocol, target.spec().protocol, &bytes)?;
    observe_first_byte(gateway, route, started.elapsed());
    Ok(Answer::Whole { body, held, usage })
}

impl Answer {
    /// Hands the answer to the client: a whole answer's attempt is recorded now, a stream's
    /// when it ends (continued, if it breaks, with `rescue`).
    pub fn commit(
        self,
        metrics: &Metrics,
        route: &Route,
        attempt: Attempt,
        rescue: impl FnOnce() -> RescueContext,
    ) -> Response {
        let (body, content_type) = match self {
            Answer::Whole { body, held, usage } => {
                record_attempt(metrics, route, attempt, Ended::Answered(usage.as_ref()));
                (held_body(body, held), "application/json")
            }
            Answer::Stream(mut relay) => {
                relay.commit(attempt, rescue());
                (Body::from_stream(relay.into_stream()), "text/event-stream")
            }
        };
        let mut out = Response::new(body);
        let headers = out.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if content_type == "text/event-stream" {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        out
    }
}

/// A body that gives its bytes back to the budget of buffered bytes once it is dropped,
/// that is once the client has it (or went away).
fn held_body(bytes: Bytes, held: Held) -> Body {
    Body::new(Full::new(bytes).map_frame(move |frame| {
        let _held = &held;
        frame
    }))
}

fn observe_first_byte(gateway: &Gateway, route: &Route, elapsed: std::time::Duration) {
    route.health.latency.observe(elapsed);
    gateway.metrics().first_byte(&route.target.label, elapsed);
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
