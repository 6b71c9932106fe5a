//! The engine's call for one attempt on one target: send, wait for the whole answer (for
//! a stream, its first event), classify; then the commit of the answer that is served.

use super::buffers::Held;
use super::call::{read_body, send};
use super::failure::Failure;
use super::outgoing::Outgoing;
use super::plan::Route;
use super::record::{record_attempt, record_usage, Ended, Reported};
use super::relay::Relay;
use super::request::ClientRequest;
use super::rescue::RescueContext;
use super::structured::{correction, places, Shape};
use super::Gateway;
use crate::config::Target;
use crate::http::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use axum::body::Body;
use axum::response::Response;
use backstop_core::{Attempt, Candidates, Exhausted, FailureClass};
use backstop_protocol::{translate_error, ChatRequest, Protocol, StreamEncoder, Usage};
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

/// What happened to each candidate built, in plan order: its last failure, why it could not be
/// sent, or why it was skipped.
pub fn notes<C: Candidates<Route> + ?Sized>(
    candidates: &C,
    exhausted: &Exhausted<AttemptError>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let built = (0..).map_while(|index| Some((index, candidates.built(index)?)));
    for (index, candidate) in built {
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
    /// A whole answer: the body for the caller, its hold on the buffer budget, its usage, the
    /// corrections it took when its shape was checked, and whether the body is a whole stream
    /// (a streaming request whose answer was checked before any of it was sent).
    Whole {
        body: Bytes,
        held: Held,
        reported: Reported,
        corrections: Option<u32>,
        stream: bool,
    },
    /// A stream whose first event is ready.
    Stream(Box<Relay>),
}

/// Sends `request` to `route` and waits for a whole answer (checked and corrected when the
/// request asks for structured output) or, for a stream, its first event.
pub async fn call(
    gateway: &Gateway,
    request: &ClientRequest,
    route: &Route,
    deadline: Instant,
) -> Result<Answer, AttemptError> {
    let body = request
        .body_for(&route.target)
        .map_err(AttemptError::Unsendable)?;
    let checked = route
        .model
        .max_corrections
        .and_then(|max| Some((request.shape()?, max)));
    let result = match checked {
        Some((shape, max)) if !request.envelope.stream => {
            corrected(gateway, request, route, body, deadline, shape, max).await
        }
        // A stream that must be JSON is checked whole: asked for whole, replayed as a stream.
        Some((shape, max)) if shape.asks_for_json() => {
            let body = whole_body(request, &route.target).map_err(AttemptError::Unsendable)?;
            corrected(gateway, request, route, body, deadline, shape, max).await
        }
        _ => exchange(gateway, request, route, body, deadline).await,
    };
    result.map_err(|mut failure| {
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
    body: Outgoing,
    deadline: Instant,
) -> Result<Answer, Failure> {
    let target = &route.target;
    if !request.envelope.stream {
        let (bytes, held) = whole(gateway, request, route, body, deadline).await?;
        let upstream = target.spec().protocol;
        let (body, usage) = render_success(request.protocol, upstream, &bytes)?;
        // The finish reason and model are read for the trace only, and nothing else of the answer.
        let reported = match route.trace {
            Some(_) => Reported::summary(upstream, &bytes),
            None => Reported::default(),
        };
        return Ok(Answer::Whole {
            body,
            held,
            reported: Reported { usage, ..reported },
            corrections: None,
            stream: false,
        });
    }
    let started = Instant::now();
    let first_byte_deadline = deadline.min(started + request.config.timeouts.first_byte);
    let response = send(gateway, request, target, true, body, first_byte_deadline).await?;
    // Boxed before it is primed, not after: the handler's future then keeps no room for a
    // relay while it waits for the stream's first event, as every stream's does.
    let mut relay = Box::new(Relay::new(gateway, request, route, response, deadline));
    relay.prime(first_byte_deadline).await?;
    observe_first_byte(gateway, route, started.elapsed());
    Ok(Answer::Stream(relay))
}

/// The canonical form of `request` asking for a whole answer.
fn whole_request(request: &ClientRequest) -> Result<ChatRequest, ApiError> {
    let mut whole = request.canonical()?.clone();
    whole.stream = false;
    Ok(whole)
}

/// `request` for `target` as a non-streaming call, whatever the client asked.
fn whole_body(request: &ClientRequest, target: &Target) -> Result<Outgoing, ApiError> {
    let invalid =
        |error: &dyn std::fmt::Display| ApiError::new(ErrorKind::InvalidRequest, error.to_string());
    let encoded = backstop_protocol::encode_request(
        target.spec().protocol,
        &whole_request(request)?,
        &target.model,
    )
    .map_err(|e| invalid(&e))?;
    target
        .adapt_body(Bytes::from(encoded.body))
        .map(Outgoing::from)
        .map_err(|e| invalid(&e))
}

/// One non-streaming call: the upstream's whole 2xx body, held against the buffer budget.
async fn whole(
    gateway: &Gateway,
    request: &ClientRequest,
    route: &Route,
    body: Outgoing,
    deadline: Instant,
) -> Result<(Bytes, Held), Failure> {
    let target = &route.target;
    let started = Instant::now();
    let first_byte_deadline = deadline.min(started + request.config.timeouts.first_byte);
    let response = send(gateway, request, target, false, body, first_byte_deadline).await?;
    let (bytes, held) =
        read_body(response, deadline, MAX_UPSTREAM_BODY, &gateway.buffers()).await?;
    if let Some(refused) = crate::channels::refused_answer(target, &bytes) {
        return Err(refused);
    }
    let drifts = &gateway.governance().drifts;
    crate::governance::drift::check_answer(drifts, gateway.metrics(), route, &bytes)?;
    observe_first_byte(gateway, route, started.elapsed());
    Ok((bytes, held))
}

/// A whole answer whose shape is checked: an invalid one is sent back to the same target with
/// what is wrong, up to the model's `structured.max_corrections` times; still invalid, the
/// target has failed (unavailable: the engine moves on to the next candidate). Every call's
/// usage is counted.
async fn corrected(
    gateway: &Gateway,
    request: &ClientRequest,
    route: &Route,
    mut body: Outgoing,
    deadline: Instant,
    shape: &Shape,
    max_corrections: u32,
) -> Result<Answer, Failure> {
    let target = &route.target;
    let upstream = target.spec().protocol;
    let metrics = gateway.metrics();
    let malformed = |error: &dyn std::fmt::Display| {
        Failure::local(
            FailureClass::Transient,
            format!("malformed response body: {error}"),
        )
    };
    let mut conversation: Option<ChatRequest> = None;
    let mut corrections = 0;
    loop {
        let (bytes, held) = whole(gateway, request, route, body, deadline).await?;
        let decoded =
            backstop_protocol::decode_response(upstream, &bytes).map_err(|e| malformed(&e))?;
        let errors = match shape.check(&decoded) {
            Ok(()) => {
                let outcome = if corrections == 0 {
                    "valid"
                } else {
                    "corrected"
                };
                metrics.correction(&route.model.name, outcome);
                if request.envelope.stream {
                    let stream = StreamEncoder::encode_whole(
                        request.protocol,
                        request.envelope.include_usage,
                        &decoded,
                    );
                    return Ok(Answer::Whole {
                        body: stream.freeze(),
                        held,
                        reported: Reported::of(&decoded),
                        corrections: Some(corrections),
                        stream: true,
                    });
                }
                let (body, usage) = render_success(request.protocol, upstream, &bytes)?;
                return Ok(Answer::Whole {
                    body,
                    held,
                    reported: Reported {
                        usage,
                        ..Reported::of(&decoded)
                    },
                    corrections: Some(corrections),
                    stream: false,
                });
            }
            Err(errors) => errors,
        };
        record_usage(metrics, route, &decoded.usage);
        tracing::info!(target = %target.label, corrections, "the answer does not match the requested shape: {}", places(&errors));
        if corrections >= max_corrections {
            metrics.correction(&route.model.name, "exhausted");
            return Err(Failure::local(
                FailureClass::Unavailable,
                format!(
                    "the answer did not match the requested shape after {corrections} corrections: {}",
                    places(&errors)
                ),
            ));
        }
        corrections += 1;
        let base = match conversation.take() {
            Some(base) => base,
            None => whole_request(request)
                .map_err(|e| Failure::local(FailureClass::Permanent, e.message))?,
        };
        let next = correction(&base, &decoded, &errors);
        let encoded = backstop_protocol::encode_request(upstream, &next, &target.model)
            .map_err(|e| Failure::local(FailureClass::Permanent, e.to_string()))?;
        body = target
            .adapt_body(Bytes::from(encoded.body))
            .map_err(|e| Failure::local(FailureClass::Permanent, e.to_string()))?
            .into();
        conversation = Some(next);
    }
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
        let mut out = match self {
            Answer::Whole {
                body,
                held,
                reported,
                corrections,
                stream,
            } => {
                record_attempt(
                    metrics,
                    route,
                    attempt,
                    Ended::Answered(reported.answered()),
                );
                let mut out = Response::new(held_body(body, held));
                let headers = out.headers_mut();
                let content_type = if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                };
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                if let Some(corrections) = corrections {
                    headers.insert("x-backstop-corrections", HeaderValue::from(corrections));
                }
                return out;
            }
            Answer::Stream(mut relay) => {
                relay.commit(attempt, rescue());
                Response::new(Body::from_stream(relay.into_stream()))
            }
        };
        let headers = out.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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
    let metrics = gateway.metrics();
    metrics.first_byte(route.health.series(metrics), elapsed);
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
