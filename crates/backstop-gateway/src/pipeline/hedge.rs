//! Hedged requests (opt-in per model): when a target has sent no first byte after
//! the hedge delay (fixed, or a percentile of its recent time to first byte), the same
//! request goes to the next candidate too; the first answer wins and the other is
//! cancelled. A hedge spends the retry budget like a retry, so hedging can never double
//! the load on an unhealthy provider.

use super::attempt::{attempt, AttemptError};
use super::plan::Candidate;
use super::request::ClientRequest;
use super::Gateway;
use crate::config::HedgeDelay;
use axum::response::Response;
use backstop_core::Permit;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Samples of time to first byte needed before a percentile delay is trusted.
const MIN_SAMPLES: usize = 20;

/// The outcome of a possibly hedged attempt, and which candidate it came from.
pub struct Raced<'a> {
    /// The winning answer, or the first attempt's failure when both failed.
    pub result: Result<Response, AttemptError>,
    /// The candidate that produced `result`.
    pub candidate: &'a Candidate,
    /// Whether a hedge was sent (one more upstream call).
    pub hedged: bool,
}

/// How long to wait for `candidate`'s first byte before hedging, if at all.
fn hedge_after(candidate: &Candidate) -> Option<Duration> {
    match candidate.model.hedge? {
        HedgeDelay::Fixed(delay) => Some(delay),
        HedgeDelay::Percentile(q) => {
            let samples = candidate.health.latency.percentiles()?.samples;
            (samples >= MIN_SAMPLES)
                .then(|| candidate.health.latency.percentile(q))
                .flatten()
        }
    }
}

/// Runs the attempt on `candidate`, hedged on the first of `later` that can take it.
pub async fn race<'a>(
    gateway: &Arc<Gateway>,
    request: &Arc<ClientRequest>,
    candidate: &'a Candidate,
    later: &'a [Candidate],
    permit: Permit,
    deadline: Instant,
) -> Raced<'a> {
    let first = attempt(gateway, request, candidate, later, permit, deadline);
    let Some(delay) = hedge_after(candidate) else {
        return Raced {
            result: first.await,
            candidate,
            hedged: false,
        };
    };
    tokio::pin!(first);
    tokio::select! {
        result = &mut first => return Raced { result, candidate, hedged: false },
        () = tokio::time::sleep(delay) => {}
    }
    let Some((index, hedge_permit)) = later
        .iter()
        .enumerate()
        .find_map(|(index, c)| c.health.breaker.try_acquire().ok().map(|p| (index, p)))
    else {
        return Raced {
            result: first.await,
            candidate,
            hedged: false,
        };
    };
    if !gateway.budget().try_withdraw() {
        return Raced {
            result: first.await,
            candidate,
            hedged: false,
        };
    }
    let other = &later[index];
    tracing::info!(target = %candidate.target.label, hedge = %other.target.label, delay_ms = delay.as_millis() as u64, "no first byte yet: hedging");
    gateway.metrics().hedge(&candidate.target.label);
    let rest = later.get(index + 1..).unwrap_or_default();
    let second = attempt(gateway, request, other, rest, hedge_permit, deadline);
    tokio::pin!(second);
    tokio::select! {
        result = &mut first => match result {
            Ok(response) => Raced { result: Ok(response), candidate, hedged: true },
            Err(error) => match second.await {
                Ok(response) => Raced { result: Ok(response), candidate: other, hedged: true },
                Err(hedge_error) => {
                    count_failure(gateway, other, &hedge_error);
                    Raced { result: Err(error), candidate, hedged: true }
                }
            },
        },
        result = &mut second => match result {
            Ok(response) => Raced { result: Ok(response), candidate: other, hedged: true },
            Err(error) => {
                count_failure(gateway, other, &error);
                Raced { result: first.await, candidate, hedged: true }
            }
        },
    }
}

/// Counts a failed hedge (the attempt loop counts only the attempt it goes on with).
fn count_failure(gateway: &Gateway, candidate: &Candidate, error: &AttemptError) {
    if let AttemptError::Failed(failure) = error {
        gateway
            .metrics()
            .attempt(&candidate.target.label, Some(failure.class.as_str()));
    }
}
