//! The attempt loop: one loop for every retry and fallback of a request. For each
//! candidate: breaker permit, send, classify, then retry the same target (backoff,
//! server hint, retry budget), move on, or stop; the first good answer is committed.
//! After a transient failure the model's other channels come before any retry in place,
//! and all of them before a fallback model.

use super::attempt::{upstream_error_for_caller, AttemptError};
use super::failure::Failure;
use super::hedge::race;
use super::plan::{self, Candidate};
use super::request::ClientRequest;
use super::Gateway;
use crate::config::{ContentFilterPolicy, Model};
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::metrics::RequestLabels;
use axum::response::Response;
use backstop_core::{Backoff, BreakerState, FailureClass};
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
        let result = self.serve_inner(&request).await;
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
    ) -> Result<Response, ApiError> {
        let model = self.resolve(&request.config, &request.envelope.model)?;
        let candidates = plan::plan(self, &request.config, &model);
        let total = request.deadline;
        self.budget().deposit();
        let mut tally = Tally::default();
        for (index, candidate) in candidates.iter().enumerate() {
            if let Some(why) = self.out_of_time(total) {
                tally.tried.push(why.into());
                break;
            }
            let deadline = self
                .drain_deadline()
                .map_or(total, |drain| drain.min(total));
            let later = candidates.get(index + 1..).unwrap_or_default();
            if let Some(answer) = self
                .try_candidate(request, candidate, later, deadline, &mut tally)
                .await
            {
                return answer;
            }
        }
        if let Some(why) = self.out_of_time(total) {
            if tally.tried.last().is_none_or(|last| last != why) {
                tally.tried.push(why.into());
            }
        }
        Err(tally.into_error(request, &model))
    }

    /// Why no more attempts may start: the request's total deadline has passed, or the
    /// gateway is shutting down and its grace is over.
    fn out_of_time(&self, total: Instant) -> Option<&'static str> {
        let now = Instant::now();
        if self.drain_deadline().is_some_and(|drain| now >= drain) {
            Some("the gateway is shutting down")
        } else if now >= total {
            Some("total deadline reached")
        } else {
            None
        }
    }

    /// Runs the attempts on one candidate. `Some` is the final answer (success, or an error
    /// for the caller); `None` means "go on with the next candidate".
    async fn try_candidate(
        self: &Arc<Self>,
        request: &Arc<ClientRequest>,
        candidate: &Candidate,
        later: &[Candidate],
        deadline: Instant,
        tally: &mut Tally,
    ) -> Option<Result<Response, ApiError>> {
        let label = &candidate.target.label;
        let estimate = request.estimated_tokens();
        if let Some(window) = candidate.model.context_window {
            if tally.context_floor.is_some_and(|floor| window <= floor) {
                return None;
            }
            if estimate / 5 * 4 > window {
                tally.tried.push(format!(
                    "{label}: skipped, the prompt (~{estimate} tokens) exceeds its context window of {window}"
                ));
                return None;
            }
        }
        let retry = &candidate.model.retry;
        let backoff = Backoff {
            base: retry.base_delay,
            max: retry.max_delay,
        };
        let mut attempt_no = 0u32;
        loop {
            attempt_no += 1;
            let permit = match candidate.health.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => {
                    let at = rejected.retry_at;
                    tally.earliest_open = Some(tally.earliest_open.map_or(at, |t| t.min(at)));
                    tally.tried.push(format!("{label}: circuit open"));
                    return None;
                }
            };
            tally.attempts += 1;
            tally.last_target = Some(label.clone());
            let raced = race(self, request, candidate, later, permit, deadline).await;
            tally.attempts += u32::from(raced.hedged);
            let failure = match raced.result {
                Ok(mut response) => {
                    meta_of(raced.candidate, tally.attempts).apply(response.headers_mut());
                    return Some(Ok(response));
                }
                Err(AttemptError::Unsendable(error)) => {
                    tally.attempts -= 1;
                    tally.tried.push(format!("{label}: {}", error.message));
                    tally.unsendable = Some(error);
                    return None;
                }
                Err(AttemptError::Failed(failure)) => failure,
            };
            self.metrics().attempt(label, Some(failure.class.as_str()));
            tracing::info!(
                target = %label,
                class = failure.class.as_str(),
                status = failure.status,
                attempt = attempt_no,
                "attempt failed: {}",
                failure.message
            );
            let class = failure.class;
            if let Some(hint) = failure.retry_after {
                candidate.health.breaker.hold_for(hint);
            }
            tally.tried.push(format!("{label}: {failure}"));
            tally.last_failure = Some(failure);
            match class {
                FailureClass::Transient => {
                    if another_channel_ahead(candidate, later) {
                        return None;
                    }
                    if attempt_no >= retry.max_attempts || !self.budget().try_withdraw() {
                        return None;
                    }
                    let hint = tally.last_failure.as_ref().and_then(|f| f.retry_after);
                    let hint = if retry.respect_retry_after {
                        hint
                    } else {
                        None
                    };
                    let Some(delay) = backoff.delay(attempt_no, hint, &mut rand::rng()) else {
                        tracing::info!(target = %label, "retry hint exceeds max_delay: moving on");
                        return None;
                    };
                    if Instant::now() + delay >= deadline {
                        return None;
                    }
                    tally.tried.pop();
                    self.metrics().retry(label);
                    tracing::info!(target = %label, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                }
                FailureClass::Unavailable => return None,
                FailureClass::TargetBroken => {
                    tracing::error!(
                        target = %label,
                        "target is broken (credentials, permission or billing): its circuit is open"
                    );
                    return None;
                }
                FailureClass::ContextLength => {
                    tally.context_floor = Some(candidate.model.context_window.unwrap_or(estimate));
                    return None;
                }
                FailureClass::ContentFilter => {
                    if candidate.model.on_content_filter == ContentFilterPolicy::Return {
                        return Some(Err(caller_error(request, tally, candidate)));
                    }
                    return None;
                }
                FailureClass::Permanent => {
                    return Some(Err(caller_error(request, tally, candidate)))
                }
            }
        }
    }
}

/// Whether another target of the candidate's model comes next and its breaker lets calls through. A
/// transient failure then moves there at once, without a backoff or a retry from the budget: another
/// channel of the model that was asked for is a better next try than the same channel again, and
/// much better than a fallback model. The model's last open channel retries in place.
fn another_channel_ahead(candidate: &Candidate, later: &[Candidate]) -> bool {
    later.iter().any(|other| {
        other.model.name == candidate.model.name
            && other.health.breaker.state() != BreakerState::Open
    })
}

/// What the attempt loop has seen so far, for the final error.
#[derive(Default)]
struct Tally {
    attempts: u32,
    tried: Vec<String>,
    last_failure: Option<Failure>,
    last_target: Option<String>,
    unsendable: Option<ApiError>,
    earliest_open: Option<Instant>,
    context_floor: Option<u64>,
}

impl Tally {
    /// The error once every candidate has been tried.
    fn into_error(self, request: &ClientRequest, model: &Model) -> ApiError {
        let summary = if self.tried.is_empty() {
            "no target could be tried".to_string()
        } else {
            self.tried.join("; ")
        };
        let mut error = match (&self.last_failure, self.unsendable) {
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
                let retry_after = self
                    .earliest_open
                    .map(|at| at.saturating_duration_since(Instant::now()))
                    .or_else(|| self.last_failure.as_ref().and_then(|f| f.retry_after))
                    .or(Some(Duration::from_secs(1)));
                ApiError::new(ErrorKind::Unavailable, String::new()).with_retry_after(retry_after)
            }
        };
        error.message = format!("model `{}` could not be served: {summary}", model.name);
        error.meta = Some(Box::new(ServedMeta {
            model: model.name.clone(),
            target: self.last_target,
            attempts: self.attempts,
            fallback: false,
        }));
        error
    }
}

/// The error for a failure that is the request's own fault: the upstream's own answer.
fn caller_error(request: &ClientRequest, tally: &Tally, candidate: &Candidate) -> ApiError {
    let Some(failure) = &tally.last_failure else {
        return ApiError::new(ErrorKind::Internal, "no failure recorded");
    };
    let mut error = upstream_error_for_caller(request.protocol, failure)
        .unwrap_or_else(|| ApiError::new(ErrorKind::Upstream, failure.message.clone()));
    error.meta = Some(Box::new(meta_of(candidate, tally.attempts)));
    error
}

fn meta_of(candidate: &Candidate, attempts: u32) -> ServedMeta {
    ServedMeta {
        model: candidate.model.name.clone(),
        target: Some(candidate.target.label.clone()),
        attempts,
        fallback: candidate.is_fallback,
    }
}
