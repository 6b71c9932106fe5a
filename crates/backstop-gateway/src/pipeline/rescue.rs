//! Stream rescue: when a stream breaks after content reached the client, the next
//! candidate is asked to continue from where it stopped, with the delivered text as an
//! assistant prefill, and its answer is spliced into the same client stream.
//!
//! Only targets that accept a prefill are asked: the model's `prefill` setting, else
//! the provider's default, and never a target that has rejected one before (learned at
//! run time). A rejection is never shown to the client: it only moves on.

use super::call::send;
use super::failure::Failure;
use super::plan::Candidate;
use super::request::ClientRequest;
use super::Gateway;
use backstop_core::{FailureClass, Permit};
use backstop_protocol::{ContentPart, Message, Role};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

/// What a stream needs to be continued elsewhere.
pub struct RescueContext {
    gateway: Arc<Gateway>,
    request: Arc<ClientRequest>,
    next: Vec<Candidate>,
    deadline: Instant,
}

/// A continuation that answered with a 2xx stream.
pub struct Continuation {
    /// Its streaming response.
    pub response: reqwest::Response,
    /// The target continuing the answer.
    pub candidate: Candidate,
    /// Its breaker permit, held until the stream ends.
    pub permit: Permit,
}

/// Whether `candidate` may be asked to continue from a prefill.
pub fn accepts_prefill(candidate: &Candidate) -> bool {
    let configured = candidate
        .model
        .prefill
        .unwrap_or(candidate.target.provider.spec().continues_prefill);
    configured && !candidate.health.prefill_rejected.load(Ordering::Relaxed)
}

impl RescueContext {
    /// A context whose continuations are tried on `next`, in order.
    pub fn new(
        gateway: Arc<Gateway>,
        request: Arc<ClientRequest>,
        next: Vec<Candidate>,
        deadline: Instant,
    ) -> Self {
        Self {
            gateway,
            request,
            next,
            deadline,
        }
    }

    /// Asks the next candidates, in order, to continue after `prefill` (already delivered;
    /// empty means "start over", which any candidate can do). `max_tokens` is what is
    /// left of the client's budget. On failure, says why each candidate could not.
    pub async fn continuation(
        &mut self,
        prefill: &str,
        max_tokens: Option<u64>,
    ) -> Result<Continuation, Vec<String>> {
        let mut notes = Vec::new();
        while !self.next.is_empty() {
            let candidate = self.next.remove(0);
            let label = candidate.target.label.clone();
            if !prefill.is_empty() && !accepts_prefill(&candidate) {
                notes.push(format!("{label}: does not accept a prefill"));
                continue;
            }
            let Ok(permit) = candidate.health.breaker.try_acquire() else {
                notes.push(format!("{label}: circuit open"));
                continue;
            };
            match self.send(&candidate, prefill, max_tokens).await {
                Ok(response) => {
                    return Ok(Continuation {
                        response,
                        candidate,
                        permit,
                    })
                }
                Err(failure) => {
                    let rejected_prefill =
                        !prefill.is_empty() && failure.class == FailureClass::Permanent;
                    if rejected_prefill {
                        candidate.health.learn_prefill_rejected();
                        tracing::warn!(target = %label, "target rejected an assistant prefill: not asked to continue again");
                        permit.record_success();
                    } else {
                        permit.record_failure(failure.class);
                    }
                    self.gateway
                        .metrics()
                        .attempt(&label, Some(failure.class.as_str()));
                    notes.push(format!("{label}: {failure}"));
                }
            }
        }
        Err(notes)
    }

    async fn send(
        &self,
        candidate: &Candidate,
        prefill: &str,
        max_tokens: Option<u64>,
    ) -> Result<reqwest::Response, Failure> {
        let body = self.body(candidate, prefill, max_tokens)?;
        let mut first_byte_deadline = self
            .deadline
            .min(Instant::now() + self.request.config.timeouts.first_byte);
        if let Some(drain) = self.gateway.drain_deadline() {
            first_byte_deadline = first_byte_deadline.min(drain);
        }
        send(
            &self.gateway,
            &self.request,
            &candidate.target,
            true,
            body,
            first_byte_deadline,
        )
        .await
    }

    /// The continuation request: the client's request with the delivered text as a
    /// trailing assistant message, in the candidate's protocol.
    fn body(
        &self,
        candidate: &Candidate,
        prefill: &str,
        max_tokens: Option<u64>,
    ) -> Result<Bytes, Failure> {
        let unsendable = |message: String| Failure::local(FailureClass::Permanent, message);
        let mut request = self
            .request
            .canonical()
            .map_err(|e| unsendable(e.message))?
            .clone();
        if !prefill.is_empty() {
            request.messages.push(Message {
                role: Role::Assistant,
                content: vec![ContentPart::Text(prefill.to_string())],
            });
        }
        request.stream = true;
        request.max_tokens = max_tokens.or(request.max_tokens);
        let protocol = candidate.target.provider.protocol();
        let encoded =
            backstop_protocol::encode_request(protocol, &request, &candidate.target.model)
                .map_err(|e| unsendable(e.to_string()))?;
        Ok(Bytes::from(encoded.body))
    }
}
