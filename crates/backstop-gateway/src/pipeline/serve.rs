//! Serving one client request: plan the candidates, run them through the engine
//! (retries, other channels, hedges, fallbacks: see `backstop_core::engine`), commit the
//! answer that is served, or answer with a clear error naming every target tried; then
//! the request's metrics and its one log line.

use super::attempt::{notes, upstream_error_for_caller, Answer, AttemptError};
use super::attempts::RequestAttempts;
use super::fallback_tier::static_answer;
use super::plan::{Plan, Route};
use super::request::ClientRequest;
use super::rescue::RescueContext;
use super::Gateway;
use crate::config::Model;
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::keep::tiers::{Start, Tiers};
use crate::metrics::RequestLabels;
use crate::telemetry::RequestTrace;
use axum::response::Response;
use backstop_core::{engine, Exhausted, FailureClass, Policy, Served, StopReason};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Gateway {
    /// Serves one client request: the attempt loop, then metrics and one log line.
    pub async fn serve(
        self: &Arc<Self>,
        request: Arc<ClientRequest>,
    ) -> Result<Response, ApiError> {
        let started = Instant::now();
        let trace = self
            .telemetry()
            .and_then(|telemetry| RequestTrace::start(telemetry, &request));
        let mut result = self.serve_inner(&request, trace.as_ref()).await;
        crate::governance::stamp_cost(&request, &mut result);
        let (status, meta) = match &result {
            Ok(response) => (
                response.status(),
                ServedMeta::from_headers(response.headers()),
            ),
            Err(error) => (error.status, error.meta.as_deref().cloned()),
        };
        let requested = &request.envelope.model;
        let tier = meta
            .as_ref()
            .filter(|_| status.is_success())
            .map_or("none", ServedMeta::tier);
        if let Some(trace) = &trace {
            trace.answered(status.as_u16(), tier, meta.as_ref());
        }
        if let Some(meta) = meta.as_ref().filter(|m| m.fallback && status.is_success()) {
            self.metrics().fallback(requested, &meta.model);
        }
        let labelled = match meta {
            Some(_) => requested.clone(),
            None => "unknown".to_string(),
        };
        self.metrics().request(
            RequestLabels {
                model: labelled,
                tier: tier.to_string(),
                status: status.as_str().to_string(),
            },
            started.elapsed(),
        );
        tracing::info!(
            request_id = request.request_id(),
            model = %requested,
            served_by = meta.as_ref().and_then(|m| m.target.as_deref()).unwrap_or("-"),
            key = request.tab.as_ref().and_then(|tab| tab.key()).map_or("-", |key| key.name.as_str()),
            attempts = meta.as_ref().map_or(0, |m| m.attempts),
            fallback = meta.as_ref().is_some_and(|m| m.fallback),
            tier,
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            stream = request.envelope.stream,
            "request"
        );
        result
    }

    async fn serve_inner(
        self: &Arc<Self>,
        request: &Arc<ClientRequest>,
        trace: Option<&Arc<RequestTrace>>,
    ) -> Result<Response, ApiError> {
        let model = self.resolve(&request.config, &request.envelope.model)?;
        let tiers = match Tiers::start(self, request, &model).await? {
            Start::Answered(response) => return Ok(response),
            Start::Serve(tiers) => tiers,
        };
        let plan = Plan::new(self, request, &model, trace)?;
        let policy = Policy {
            budget: Some(self.budget()),
            ..Policy::default()
        };
        let attempts = RequestAttempts::new(self, request);
        match engine::run(&policy, &plan, &attempts).await {
            Ok(served) => self.served(request, &model, &plan, served, tiers).await,
            Err(exhausted) if !request_at_fault(&exhausted) => {
                let calls = exhausted.calls;
                match tiers
                    .degraded(calls, || static_answer(request, &model, calls))
                    .await
                {
                    Ok(answer) => Ok(answer),
                    Err(Some(held)) => Err(held),
                    Err(None) => {
                        let error = self.exhausted_error(request, &model, &plan, exhausted);
                        // Boxed: queueing after a failure is rare, and every request's future
                        // would otherwise keep room for it.
                        Box::pin(crate::queue::after_failure(self, request, &model, error)).await
                    }
                }
            }
            Err(exhausted) => Err(self.exhausted_error(request, &model, &plan, exhausted)),
        }
    }

    /// Hands the answer served by `route` to the client, with the headers that say who
    /// served it; a stream that breaks is continued on the candidates of `plan` after it.
    pub(super) fn commit(
        self: &Arc<Self>,
        request: &Arc<ClientRequest>,
        plan: &Plan,
        route: &Route,
        served: Served<Answer>,
    ) -> Response {
        let later = || plan.after(served.served_by);
        let rescue = || RescueContext::new(self.clone(), request.clone(), later());
        let mut response = served
            .value
            .commit(self.metrics(), route, served.attempt, rescue);
        meta_of(route, served.calls).apply(response.headers_mut());
        response
    }

    /// The error once the engine has given up: the upstream's own answer when the request
    /// is at fault, else a 503 naming every target tried.
    fn exhausted_error(
        &self,
        request: &ClientRequest,
        model: &Model,
        plan: &Plan,
        exhausted: Exhausted<AttemptError>,
    ) -> ApiError {
        let last = exhausted.attempts.last();
        let last_failure = last.and_then(|record| match &record.error {
            AttemptError::Failed(failure) => Some(failure),
            AttemptError::Unsendable(_) => None,
        });
        let last_route = last.and_then(|record| plan.route(record.candidate));
        if let (StopReason::Permanent, Some(failure), Some(route)) =
            (exhausted.reason, last_failure, last_route)
        {
            // Without an upstream error body to pass on (a refusal that came as a 200, such
            // as Azure's output filter), the refusal is the request's own answer: a 400.
            let kind = if matches!(failure.class, FailureClass::ContentFilter) {
                ErrorKind::InvalidRequest
            } else {
                ErrorKind::Upstream
            };
            let mut error = upstream_error_for_caller(request.protocol, failure)
                .unwrap_or_else(|| ApiError::new(kind, failure.message.clone()));
            error.meta = Some(Box::new(meta_of(route, exhausted.calls)));
            return error;
        }
        let mut tried = notes(plan, &exhausted);
        if exhausted.reason == StopReason::Deadline {
            tried.push(self.why_out_of_time().into());
        }
        let summary = if tried.is_empty() {
            "no target could be tried".to_string()
        } else {
            tried.join("; ")
        };
        let unsendable = exhausted.not_sent.last().and_then(|(_, e)| match e {
            AttemptError::Unsendable(error) => Some(error.clone()),
            AttemptError::Failed(_) => None,
        });
        let mut error = match (last_failure, unsendable) {
            (None, Some(unsendable)) => unsendable,
            (Some(failure), _)
                if matches!(
                    failure.class,
                    FailureClass::ContextLength | FailureClass::ContentFilter
                ) =>
            {
                let mut error = upstream_error_for_caller(request.protocol, failure)
                    .unwrap_or_else(|| {
                        ApiError::new(ErrorKind::InvalidRequest, failure.message.clone())
                    });
                error.body = None;
                error.kind = ErrorKind::InvalidRequest;
                error
            }
            _ => {
                let retry_after = exhausted
                    .retry_at
                    .map(|at| at.saturating_duration_since(Instant::now()))
                    .or_else(|| last_failure.and_then(|f| f.retry_after))
                    .or(Some(Duration::from_secs(1)));
                ApiError::new(ErrorKind::Unavailable, String::new()).with_retry_after(retry_after)
            }
        };
        error.message = format!("model `{}` could not be served: {summary}", model.name);
        error.meta = Some(Box::new(ServedMeta {
            model: model.name.clone(),
            target: last_route.map(|route| route.target.label.to_string()),
            attempts: exhausted.calls,
            fallback: false,
            degraded: None,
        }));
        error
    }

    /// Why the engine stopped for time: a shutdown's grace is over, or the request's total
    /// deadline passed.
    fn why_out_of_time(&self) -> &'static str {
        if self
            .drain_deadline()
            .is_some_and(|drain| Instant::now() >= drain)
        {
            "the gateway is shutting down"
        } else {
            "total deadline reached"
        }
    }
}

/// Whether the engine stopped because of the request itself (the upstream rejected it, its
/// prompt is too long, the content filter stopped it, or no target could take it at all):
/// no degraded tier answers that.
fn request_at_fault(exhausted: &Exhausted<AttemptError>) -> bool {
    if exhausted.reason == StopReason::Permanent {
        return true;
    }
    match exhausted.attempts.last() {
        Some(last) => matches!(
            last.class,
            FailureClass::ContextLength | FailureClass::ContentFilter
        ),
        None => !exhausted.not_sent.is_empty() && exhausted.skipped.is_empty(),
    }
}

fn meta_of(route: &Route, attempts: u32) -> ServedMeta {
    ServedMeta {
        model: route.model.name.clone(),
        target: Some(route.target.label.to_string()),
        attempts,
        fallback: route.is_fallback,
        degraded: None,
    }
}
