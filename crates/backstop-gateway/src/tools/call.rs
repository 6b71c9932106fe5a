//! The engine's side of a tool call: send the client's call to one tool, classify what came
//! back like a model call's answer, and record every attempt on the tool's breaker, in
//! `backstop_tool_calls_total` and in the log (never its headers: they may carry the tool's
//! credentials).

use super::health::ToolHealth;
use super::read_bounded;
use crate::config::ToolUpstream;
use crate::metrics::Metrics;
use crate::pipeline::class_of_status;
use crate::telemetry::{tool_attempt, RequestTrace};
use backstop_core::{Attempt, Attempts, Candidate, FailureClass, Observer, Verdict};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The most bytes of an error answer kept to hand back to the client.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// One tool a call may go to.
#[derive(Clone)]
pub struct ToolRoute {
    /// Its metric and log label: `NAME`, or `mcp/NAME`.
    pub label: String,
    /// The URL the call goes to.
    pub url: reqwest::Url,
    /// How it is reached.
    pub upstream: ToolUpstream,
    /// Its breaker and client.
    pub health: Arc<ToolHealth>,
}

/// The client's call, as it is sent to every tool tried.
pub struct Outgoing {
    /// The HTTP method.
    pub method: Method,
    /// The client's headers to forward (hop-by-hop ones and the gateway's key removed).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Whether an answer is handed back as a stream (MCP) rather than read whole.
    pub stream: bool,
}

/// A tool's answer (any status the engine did not take for a failure).
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: ReplyBody,
}

/// The body of a [`Reply`].
pub enum ReplyBody {
    /// Read whole, within `max_response_bytes`.
    Whole(Bytes),
    /// To be relayed as it comes (an MCP event stream).
    Stream(reqwest::Response),
}

/// Why a call to a tool failed.
#[derive(Debug, Clone)]
pub struct ToolFailure {
    /// Its class.
    pub class: FailureClass,
    /// What went wrong, in a few words (no header, no credential).
    pub reason: String,
    /// What the server asked to wait before calling again.
    pub retry_after: Option<Duration>,
    /// The tool's own error answer, when it sent one.
    pub answer: Option<(StatusCode, HeaderMap, Bytes)>,
}

impl ToolFailure {
    fn new(class: FailureClass, reason: impl Into<String>) -> Self {
        Self {
            class,
            reason: reason.into(),
            retry_after: None,
            answer: None,
        }
    }
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The gateway's side of the engine for one client call to a tool.
pub struct ToolAttempts<'a> {
    call: &'a Outgoing,
    deadline: Instant,
    metrics: &'a Arc<Metrics>,
    events: CallEvents,
    trace: Option<Arc<RequestTrace>>,
}

impl<'a> ToolAttempts<'a> {
    /// The attempts of `call`, all to end by `deadline`.
    pub fn new(call: &'a Outgoing, deadline: Instant, metrics: &'a Arc<Metrics>) -> Self {
        Self {
            call,
            deadline,
            metrics,
            events: CallEvents(metrics.clone()),
            trace: None,
        }
    }

    /// Traces each attempt as a child of `trace` and carries it to the tool.
    pub fn traced(mut self, trace: Option<Arc<RequestTrace>>) -> Self {
        self.trace = trace;
        self
    }

    /// Sends attempt `number` to `route`, in its own span when the call is traced.
    async fn attempt(&self, route: &ToolRoute, number: u32) -> Result<Reply, ToolFailure> {
        let Some(trace) = &self.trace else {
            return self.send(route, HeaderMap::new()).await;
        };
        let (span, carried) = tool_attempt(trace, &route.label, number);
        let result = self.send(route, carried).await;
        match &result {
            Ok(reply) => span.end(Some(reply.status.as_u16()), None),
            Err(failure) => span.end(
                failure
                    .answer
                    .as_ref()
                    .map(|(status, _, _)| status.as_u16()),
                Some(failure.class),
            ),
        }
        result
    }

    /// Sends the call to `route`, with `trace` (the attempt's `traceparent`, if traced) in
    /// place of the client's own trace headers.
    async fn send(&self, route: &ToolRoute, trace: HeaderMap) -> Result<Reply, ToolFailure> {
        let mut request = route
            .health
            .client
            .request(self.call.method.clone(), route.url.clone())
            .headers(self.call.headers.clone())
            .headers(trace);
        for (name, value) in &route.upstream.headers {
            let mut value = http::HeaderValue::from_str(value.expose()).map_err(|_| {
                ToolFailure::new(FailureClass::Permanent, "a configured header is not valid")
            })?;
            value.set_sensitive(true);
            request = request.header(name, value);
        }
        let request = request.body(self.call.body.clone());
        let left = self.deadline.saturating_duration_since(Instant::now());
        let wait = route.upstream.timeouts.first_byte.min(left);
        let response = match tokio::time::timeout(wait, request.send()).await {
            Err(_) => {
                return Err(ToolFailure::new(
                    FailureClass::Unavailable,
                    format!("no answer within {wait:?}"),
                ))
            }
            Ok(Err(error)) => {
                let what = if error.is_connect() {
                    "cannot connect"
                } else {
                    "the call broke off"
                };
                return Err(ToolFailure::new(
                    FailureClass::Transient,
                    format!("{what}: {}", error.without_url()),
                ));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_client_error() || status.is_server_error() {
            let retry_after = backstop_core::retry_hint(
                headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
                SystemTime::now(),
            )
            .filter(|_| route.upstream.retry.respect_retry_after);
            let body = read_bounded(response, MAX_ERROR_BODY)
                .await
                .unwrap_or_default();
            return Err(ToolFailure {
                class: class_of_status(status.as_u16()),
                reason: format!("status {}", status.as_u16()),
                retry_after,
                answer: Some((status, headers, body)),
            });
        }
        if self.call.stream {
            return Ok(Reply {
                status,
                headers,
                body: ReplyBody::Stream(response),
            });
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        let limit = route.upstream.max_response_bytes;
        match tokio::time::timeout(left, read_bounded(response, limit)).await {
            Ok(Ok(body)) => Ok(Reply {
                status,
                headers,
                body: ReplyBody::Whole(body),
            }),
            Ok(Err(reason)) if reason.starts_with("the body is longer") => Err(ToolFailure::new(
                FailureClass::Permanent,
                format!("{reason} (max_response_bytes)"),
            )),
            Ok(Err(reason)) => Err(ToolFailure::new(FailureClass::Transient, reason)),
            Err(_) => Err(ToolFailure::new(
                FailureClass::Unavailable,
                "the body did not end before the call's total timeout",
            )),
        }
    }
}

impl Attempts for ToolAttempts<'_> {
    type Target = ToolRoute;
    type Output = Reply;
    type Error = ToolFailure;

    fn call(
        &self,
        candidate: &Candidate<ToolRoute>,
        attempt: u32,
    ) -> impl Future<Output = Result<Reply, ToolFailure>> + Send {
        self.attempt(&candidate.inner, attempt)
    }

    fn classify(&self, error: &ToolFailure) -> Verdict {
        Verdict::Failure {
            class: error.class,
            retry_after: error.retry_after,
        }
    }

    fn record_failure(
        &self,
        candidate: &Candidate<ToolRoute>,
        attempt: Attempt,
        class: FailureClass,
        error: &ToolFailure,
    ) {
        let number = attempt.number();
        attempt.finish(Some(class));
        record(self.metrics, &candidate.inner.label, Some(class));
        tracing::info!(
            tool = %candidate.inner.label,
            class = class.as_str(),
            attempt = number,
            "tool call failed: {}",
            error.reason
        );
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn observer(&self) -> &dyn Observer {
        &self.events
    }
}

/// Counts one call to `tool`: `None` for a success.
pub fn record(metrics: &Metrics, tool: &str, class: Option<FailureClass>) {
    match class {
        None => metrics.tool_call(tool, "success", "none"),
        Some(class) => metrics.tool_call(tool, "failure", class.as_str()),
    }
}

/// Retries of tool calls as log lines.
struct CallEvents(Arc<Metrics>);

impl Observer for CallEvents {
    fn retry(&self, target: &str, _attempt: u32, _class: FailureClass, delay: Duration) {
        self.0.retry(target);
        tracing::info!(tool = %target, delay_ms = delay.as_millis() as u64, "retrying the tool call");
    }
}
