//! What the engine needs from the gateway to serve one request: the call, the
//! classification, the one recording function, the hedge delay, the request's deadline,
//! and the metrics and logs of retries and hedges.

use super::attempt::{call, Answer, AttemptError};
use super::hedge::hedge_delay;
use super::plan::Route;
use super::record::{record_attempt, Ended};
use super::request::ClientRequest;
use super::Gateway;
use crate::metrics::Metrics;
use crate::telemetry::{traced_call, CallKind};
use backstop_core::{Attempt, Attempts, Candidate, FailureClass, Observer, Verdict};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The gateway's side of the engine for one client request.
pub struct RequestAttempts<'a> {
    gateway: &'a Gateway,
    request: &'a ClientRequest,
    events: Events,
}

impl<'a> RequestAttempts<'a> {
    /// The attempts of `request`.
    pub fn new(gateway: &'a Gateway, request: &'a ClientRequest) -> Self {
        Self {
            gateway,
            request,
            events: Events(gateway.metrics().clone()),
        }
    }
}

/// When no more work may start for `request`: its total deadline, or the end of a
/// shutdown's grace when that comes first.
pub fn request_deadline(gateway: &Gateway, request: &ClientRequest) -> Instant {
    gateway
        .drain_deadline()
        .map_or(request.deadline, |drain| drain.min(request.deadline))
}

/// The engine's classification of an attempt's error.
pub fn verdict(error: &AttemptError) -> Verdict {
    match error {
        AttemptError::Failed(failure) => Verdict::Failure {
            class: failure.class,
            retry_after: failure.retry_after,
        },
        AttemptError::Unsendable(_) => Verdict::failure(FailureClass::Permanent),
    }
}

impl Attempts for RequestAttempts<'_> {
    type Target = Route;
    type Output = Answer;
    type Error = AttemptError;

    fn call(
        &self,
        candidate: &Candidate<Route>,
        attempt: u32,
    ) -> impl Future<Output = Result<Answer, AttemptError>> + Send {
        let deadline = request_deadline(self.gateway, self.request);
        let route = &candidate.inner;
        let (gateway, request) = (self.gateway, self.request);
        let call = move || call(gateway, request, route, deadline);
        traced_call(route, attempt, CallKind::Attempt, call)
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
            let metrics = self.gateway.metrics();
            record_attempt(metrics, &candidate.inner, attempt, Ended::Failed(failure));
        }
    }

    fn not_sent(&self, error: &AttemptError) -> bool {
        matches!(error, AttemptError::Unsendable(_))
    }

    fn hedge_delay(&self, candidate: &Candidate<Route>) -> Option<Duration> {
        hedge_delay(&candidate.inner)
    }

    fn prompt_tokens(&self) -> Option<u64> {
        // The estimate is rough: a window is ruled out only when a fifth less would not fit.
        Some(self.request.estimated_tokens() / 5 * 4)
    }

    fn deadline(&self) -> Option<Instant> {
        Some(request_deadline(self.gateway, self.request))
    }

    fn observer(&self) -> &dyn Observer {
        &self.events
    }
}

/// Retries and hedges as metrics and log lines.
pub struct Events(pub Arc<Metrics>);

impl Observer for Events {
    fn retry(&self, target: &str, _attempt: u32, _class: FailureClass, delay: Duration) {
        self.0.retry(target);
        tracing::info!(target = %target, delay_ms = delay.as_millis() as u64, "retrying");
    }

    fn hedge(&self, target: &str, hedge: &str, delay: Duration) {
        self.0.hedge(target);
        tracing::info!(target = %target, hedge = %hedge, delay_ms = delay.as_millis() as u64, "no first byte yet: hedging");
    }
}
