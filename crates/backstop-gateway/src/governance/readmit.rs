//! Admission of a queued job's run: the same checks a live request of its client key faces
//! ([`Governance::admit`]), sorted into what the queue does with each refusal. A key that spent
//! its budget (or may no longer use the model) ends the job with the error a live request gets;
//! a key at its rate limit makes the job wait for the limit's minute to end, without the run
//! counting among the job's attempts.

use super::{Governance, Tab};
use crate::config::ClientKey;
use crate::http::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use backstop_protocol::Protocol;
use std::sync::Arc;
use std::time::Duration;

/// What becomes of a job's run once its key's limits were checked.
pub enum Readmission {
    /// Run it, charging this tab.
    Admitted(Arc<Tab>),
    /// The key is at a rate limit: run it after this wait (the error says why).
    Wait(Duration, ApiError),
    /// Refused for good (budget spent, model not allowed): the error is the job's result.
    Refused(ApiError),
}

impl Governance {
    /// Admits a run of a queued job of `key` for `model`, like a live request (and counted like
    /// one against the key's request rate).
    pub async fn readmit(
        self: &Arc<Self>,
        metrics: &Metrics,
        key: Option<Arc<ClientKey>>,
        model: &str,
        protocol: Protocol,
    ) -> Readmission {
        match self.admit(metrics, key, model, protocol).await {
            Ok(tab) => Readmission::Admitted(tab),
            // Only a rate limit's refusal says when to come back; a budget's says it in words.
            Err(error) => match error.retry_after {
                Some(wait) if error.kind == ErrorKind::RateLimited => {
                    Readmission::Wait(wait, error)
                }
                _ => Readmission::Refused(error),
            },
        }
    }
}
