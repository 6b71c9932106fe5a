//! The request pipeline: plan the candidates, run the one attempt loop (breaker
//! permit, send, classify, retry or move on), commit the first good answer, or
//! answer with a clear error naming every target tried.

mod attempt;
mod classify;
mod events;
mod failure;
mod plan;
mod relay;
mod request;

pub use classify::{class_of, class_of_status};
pub use failure::Failure;
pub use plan::Candidate;
pub use request::ClientRequest;

use crate::config::{Config, ContentFilterPolicy, Model};
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::upstream::UpstreamClient;
use attempt::{attempt, upstream_error_for_caller, AttemptError};
use axum::response::Response;
use backstop_core::{Backoff, Breaker, BreakerConfig, FailureClass, LatencyStats, RetryBudget};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Health of one target: its circuit breaker and its latency statistics.
pub struct TargetHealth {
    /// The breaker.
    pub breaker: Breaker,
    /// Time to first byte.
    pub latency: LatencyStats,
}

/// The running gateway: config, upstream client, per-target health, retry budget.
pub struct Gateway {
    config: Arc<Config>,
    client: UpstreamClient,
    health: RwLock<HashMap<String, Arc<TargetHealth>>>,
    budget: RetryBudget,
    zero_models: RwLock<HashMap<String, Arc<Model>>>,
}

impl Gateway {
    /// A gateway for `config`.
    pub fn new(config: Config) -> Result<Self, reqwest::Error> {
        let client = UpstreamClient::new(config.timeouts.connect)?;
        let budget = RetryBudget::new(
            config.retry.budget_ratio,
            config.retry.budget_min_per_second,
            Duration::from_secs(10),
        );
        Ok(Self {
            config: Arc::new(config),
            client,
            health: RwLock::new(HashMap::new()),
            budget,
            zero_models: RwLock::new(HashMap::new()),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The upstream HTTP client.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// The health record of the target labelled `label`, created on first use.
    pub fn health(&self, label: &str) -> Arc<TargetHealth> {
        if let Some(found) = self
            .health
            .read()
            .ok()
            .and_then(|map| map.get(label).cloned())
        {
            return found;
        }
        let mut map = match self.health.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(label.to_string())
            .or_insert_with(|| {
                Arc::new(TargetHealth {
                    breaker: Breaker::new_with_observer(
                        label,
                        breaker_config(&self.config),
                        Arc::new(events::LogObserver),
                    ),
                    latency: LatencyStats::new(),
                })
            })
            .clone()
    }

    /// The public model called `name`, or a 404 listing the known ones.
    pub fn resolve(&self, name: &str) -> Result<Arc<Model>, ApiError> {
        if let Some(model) = self.config.models.get(name) {
            return Ok(model.clone());
        }
        if self.config.zero_config {
            if let Some(model) = self
                .zero_models
                .read()
                .ok()
                .and_then(|m| m.get(name).cloned())
            {
                return Ok(model);
            }
            if let Some(model) = crate::config::zero_config_model(&self.config, name) {
                let model = Arc::new(model);
                if let Ok(mut map) = self.zero_models.write() {
                    map.insert(name.to_string(), model.clone());
                }
                return Ok(model);
            }
            if self.config.providers.is_empty() {
                return Err(ApiError::new(
                    ErrorKind::NotConfigured,
                    "no provider is configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, or start with --config FILE",
                ));
            }
            let names: Vec<&str> = self.config.providers.keys().map(String::as_str).collect();
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("model `{name}` is not served: zero-config mode serves models of {} by their own names (e.g. gpt-4o-mini, claude-sonnet-4-5, gemini-2.5-flash)", names.join(", ")),
            ));
        }
        let known: Vec<&str> = self.config.models.keys().map(String::as_str).collect();
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "model `{name}` does not exist; known models: {}",
                known.join(", ")
            ),
        ))
    }

    /// Serves one client request through the attempt loop.
    pub async fn serve(&self, request: ClientRequest) -> Result<Response, ApiError> {
        let model = self.resolve(&request.envelope.model)?;
        let candidates = plan::plan(self, &model);
        let deadline = Instant::now() + self.config.timeouts.total;
        self.budget.deposit();
        let mut tally = Tally::default();
        for candidate in &candidates {
            if let Some(answer) = self
                .try_candidate(&request, candidate, deadline, &mut tally)
                .await
            {
                return answer;
            }
            if Instant::now() >= deadline {
                tally.tried.push("total deadline reached".into());
                break;
            }
        }
        Err(tally.into_error(&request, &model))
    }

    /// Runs the attempts on one candidate. `Some` is the final answer (success, or an error
    /// for the caller); `None` means "go on with the next candidate".
    async fn try_candidate(
        &self,
        request: &ClientRequest,
        candidate: &Candidate,
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
            let failure = match attempt(self, request, candidate, permit, deadline).await {
                Ok(mut response) => {
                    meta_of(candidate, tally.attempts).apply(response.headers_mut());
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
            tracing::info!(
                target = %label,
                class = failure.class.as_str(),
                status = failure.status,
                attempt = attempt_no,
                "attempt failed: {}",
                failure.message
            );
            let class = failure.class;
            tally.tried.push(format!("{label}: {failure}"));
            tally.last_failure = Some(failure);
            match class {
                FailureClass::Transient => {
                    if attempt_no >= retry.max_attempts || !self.budget.try_withdraw() {
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

fn breaker_config(config: &Config) -> BreakerConfig {
    let b = &config.breaker;
    BreakerConfig {
        failure_threshold: b.failure_threshold,
        failure_rate: b.failure_rate,
        window: b.window,
        min_calls: b.min_calls,
        open_for: b.open_for,
        half_open_probes: b.half_open_probes,
        success_threshold: b.success_threshold,
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
