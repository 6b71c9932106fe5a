//! Stream rescue: when a stream breaks after content reached the client, the candidates
//! after the one that served are asked, through the engine's continuation walk, to
//! continue from where it stopped, with the delivered text as an assistant prefill, and
//! the answer is spliced into the same client stream.
//!
//! Only targets that accept a prefill are asked: the model's `prefill` setting, else
//! the provider's default, and never a target that has rejected one before (learned at
//! run time). A rejection is never shown to the client: it only moves on.

use super::attempt::{notes, AttemptError};
use super::attempts::{request_deadline, verdict, Events};
use super::call::send;
use super::failure::Failure;
use super::plan::{Plan, Route};
use super::record::{record_attempt, Ended};
use super::request::ClientRequest;
use super::Gateway;
use crate::http::{ApiError, ErrorKind};
use crate::telemetry::{traced_call, CallKind};
use backstop_core::{Attempt, Attempts, Candidate, FailureClass, Observer, Policy, Verdict};
use backstop_protocol::{ContentPart, Message, Role};
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

/// What a stream needs to be continued elsewhere.
pub struct RescueContext {
    gateway: Arc<Gateway>,
    request: Arc<ClientRequest>,
    /// The candidates after the one serving, as planned: built into `next` when a stream
    /// first breaks.
    planned: Option<Plan>,
    next: Vec<Candidate<Route>>,
}

/// A continuation that answered with a 2xx stream.
pub struct Continuation {
    /// Its streaming response.
    pub response: crate::upstream::UpstreamResponse,
    /// The target continuing the answer.
    pub route: Route,
    /// Its attempt, finished when its stream ends.
    pub attempt: Attempt,
}

/// Whether `route` may be asked to continue from a prefill.
pub fn accepts_prefill(route: &Route) -> bool {
    let configured = route
        .model
        .prefill
        .unwrap_or(route.target.spec().continues_prefill);
    configured && !route.health.prefill_rejected.load(Ordering::Relaxed)
}

impl RescueContext {
    /// A context whose continuations are tried on the candidates of `next`, in order.
    pub fn new(gateway: Arc<Gateway>, request: Arc<ClientRequest>, next: Plan) -> Self {
        Self {
            gateway,
            request,
            planned: Some(next),
            next: Vec::new(),
        }
    }

    /// Asks the next candidates, in order, to continue after `prefill` (already delivered;
    /// empty means "start over", which any candidate can do). `max_tokens` is what is
    /// left of the client's budget. On failure, says why each candidate could not, and
    /// keeps only those that were not asked for want of a prefill, for a restart.
    pub async fn continuation(
        &mut self,
        prefill: &str,
        max_tokens: Option<u64>,
    ) -> Result<Continuation, Vec<String>> {
        if let Some(planned) = self.planned.take() {
            self.next = planned.into_candidates();
        }
        let attempts = ContinuationAttempts {
            gateway: &self.gateway,
            request: &self.request,
            prefill,
            max_tokens,
            events: Events(self.gateway.metrics().clone()),
        };
        let result =
            backstop_core::engine::continue_on(&Policy::default(), &self.next, &attempts).await;
        match result {
            Ok(served) => {
                let rest = self.next.split_off(served.served_by + 1);
                let route = std::mem::replace(&mut self.next, rest)
                    .swap_remove(served.served_by)
                    .inner;
                Ok(Continuation {
                    response: served.value,
                    route,
                    attempt: served.attempt,
                })
            }
            Err(exhausted) => {
                let notes = notes(&self.next, &exhausted);
                // Left for a restart without a prefill: the candidates that take none, or
                // refused this one.
                let refused = |index: usize| {
                    exhausted.not_sent.iter().any(|(i, _)| *i == index)
                        || exhausted.attempts.iter().any(|a| {
                            a.candidate == index
                                && a.class == FailureClass::Permanent
                                && !prefill.is_empty()
                        })
                };
                let mut index = 0;
                self.next.retain(|_| {
                    index += 1;
                    refused(index - 1)
                });
                Err(notes)
            }
        }
    }
}

/// The engine's continuation walk for one broken stream.
struct ContinuationAttempts<'a> {
    gateway: &'a Gateway,
    request: &'a ClientRequest,
    prefill: &'a str,
    max_tokens: Option<u64>,
    events: Events,
}

impl Attempts for ContinuationAttempts<'_> {
    type Target = Route;
    type Output = crate::upstream::UpstreamResponse;
    type Error = AttemptError;

    fn call(
        &self,
        candidate: &Candidate<Route>,
        attempt: u32,
    ) -> impl Future<Output = Result<crate::upstream::UpstreamResponse, AttemptError>> + Send {
        let route = &candidate.inner;
        let call = move || async move {
            if !self.prefill.is_empty() && !accepts_prefill(route) {
                let why = ApiError::new(ErrorKind::InvalidRequest, "does not accept a prefill");
                return Err(AttemptError::Unsendable(why));
            }
            let body = self.body(route).map_err(AttemptError::Failed)?;
            let deadline = request_deadline(self.gateway, self.request);
            let first_byte_deadline =
                deadline.min(Instant::now() + self.request.config.timeouts.first_byte);
            send(
                self.gateway,
                self.request,
                &route.target,
                true,
                body,
                first_byte_deadline,
            )
            .await
            .map_err(AttemptError::Failed)
        };
        traced_call(route, attempt, CallKind::Continuation, call)
    }

    fn classify(&self, error: &AttemptError) -> Verdict {
        verdict(error)
    }

    fn record_failure(
        &self,
        candidate: &Candidate<Route>,
        attempt: Attempt,
        class: FailureClass,
        error: &AttemptError,
    ) {
        let route = &candidate.inner;
        if !self.prefill.is_empty() && class == FailureClass::Permanent {
            route.health.learn_prefill_rejected();
            tracing::warn!(target = %route.target.label, "target rejected an assistant prefill: not asked to continue again");
        }
        if let AttemptError::Failed(failure) = error {
            record_attempt(
                self.gateway.metrics(),
                route,
                attempt,
                Ended::Failed(failure),
            );
        }
    }

    fn not_sent(&self, error: &AttemptError) -> bool {
        matches!(error, AttemptError::Unsendable(_))
    }

    fn deadline(&self) -> Option<Instant> {
        Some(request_deadline(self.gateway, self.request))
    }

    fn observer(&self) -> &dyn Observer {
        &self.events
    }
}

impl ContinuationAttempts<'_> {
    /// The continuation request: the client's request with the delivered text as a
    /// trailing assistant message, in the route's protocol.
    fn body(&self, route: &Route) -> Result<Bytes, Failure> {
        let unsendable = |message: String| Failure::local(FailureClass::Permanent, message);
        let mut request = self
            .request
            .canonical()
            .map_err(|e| unsendable(e.message))?
            .clone();
        if !self.prefill.is_empty() {
            request.messages.push(Message {
                role: Role::Assistant,
                content: vec![ContentPart::Text(self.prefill.to_string())],
            });
        }
        request.stream = true;
        request.max_tokens = self.max_tokens.or(request.max_tokens);
        let protocol = route.target.spec().protocol;
        let encoded = backstop_protocol::encode_request(protocol, &request, &route.target.model)
            .map_err(|e| unsendable(e.to_string()))?;
        route
            .target
            .adapt_body(Bytes::from(encoded.body))
            .map_err(|e| unsendable(e.to_string()))
    }
}
