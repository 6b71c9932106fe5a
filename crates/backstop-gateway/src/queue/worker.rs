//! The worker of one replica: it claims due jobs from the store (a few at a time), replays each through the
//! same serve path as a live request (a non-streaming request in the caller's protocol, every retry, fallback
//! and tier), and stores the result once. A job whose run fails for the providers' reasons (429, 5xx, or a
//! static stand-in answer) waits and is tried again, after 1 s, 2 s, 4 s ... up to [`MAX_BACKOFF`], until
//! `queue.max_attempts`; every waiting job is made due at once when a breaker closes anywhere (the state
//! layer's change feed carries the transitions of every replica). A job held by a replica that dies is taken
//! over once its lease (`timeouts.total` and a margin) runs out. Each run is admitted like a live request of
//! the job's client key: a spent budget ends the job with the error a live request gets, a rate limit makes it
//! wait for the limit's minute to end (the run not counted among its attempts).

use super::{callback, job, view};
use crate::governance::Readmission;
use crate::http::ApiError;
use crate::pipeline::{ClientRequest, Gateway};
use axum::response::Response;
use backstop_protocol::Protocol;
use backstop_state::queue::{Claimed, JobStatus, Outcome};
use backstop_state::records::BreakerRecord;
use backstop_state::{Queue, Store};
use http::StatusCode;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, Semaphore};

/// Jobs one replica runs at once.
pub const CONCURRENCY: usize = 16;

/// How often the worker looks for due jobs when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

/// The longest wait between two runs of a job.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Added to `timeouts.total` for a job's lease: a run cannot take longer than the total deadline.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// Starts the worker of `gateway`'s queue on the current runtime, once; without a state store or a runtime
/// it does nothing. It ends when the gateway is dropped.
pub fn start(gateway: &Arc<Gateway>) {
    let Some(queue) = gateway.state().map(|state| state.queue().clone()) else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if !queue.take_worker() {
        return;
    }
    runtime.spawn(run(Arc::downgrade(gateway), queue));
}

async fn run(gateway: Weak<Gateway>, queue: Arc<Queue>) {
    let mut feed = queue.store().subscribe();
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut failing = false;
    loop {
        let Some(live) = gateway.upgrade() else {
            return;
        };
        let lease = live.config().timeouts.total + LEASE_MARGIN;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            match queue.claim(lease).await {
                Ok(Some(claimed)) => {
                    failing = false;
                    let (live, queue) = (live.clone(), queue.clone());
                    tokio::spawn(async move {
                        run_job(&live, &queue, claimed).await;
                        drop(slot);
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    if !failing {
                        tracing::warn!(
                            "the queue worker cannot claim jobs ({error}): trying again"
                        );
                    }
                    failing = true;
                    break;
                }
            }
        }
        if let Ok(depth) = queue.depth().await {
            live.metrics().queue().depth(depth);
        }
        drop(live);
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = breaker_closed(&mut feed, queue.store()) => {
                if let Err(error) = queue.wake().await {
                    tracing::warn!("could not wake the queue's waiting jobs: {error}");
                }
            }
        }
    }
}

/// Waits until the feed reports a breaker closed (or lost changes, which may have been one).
async fn breaker_closed(
    feed: &mut broadcast::Receiver<backstop_state::record::Change>,
    store: &Store,
) {
    loop {
        match feed.recv().await {
            Ok(change) => {
                let closed = store
                    .local_key(&change.key)
                    .is_some_and(|key| key.starts_with("breaker:"))
                    && change
                        .value
                        .as_deref()
                        .and_then(|value| serde_json::from_str::<BreakerRecord>(value).ok())
                        .is_some_and(|record| record.state == "closed");
                if closed {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// What one run of a job came to.
enum Ran {
    /// Store this as the result.
    Final(Outcome),
    /// The providers' failure: try again later unless out of attempts.
    Again(Outcome),
    /// Not run: the client key is at a rate limit; run it after this wait.
    Wait(Duration, Outcome),
}

async fn run_job(gateway: &Arc<Gateway>, queue: &Queue, claimed: Claimed) {
    let ran = replay(gateway, &claimed).await;
    let attempts = claimed.job.attempts;
    let outcome = match ran {
        Ran::Wait(delay, last) => {
            match queue.defer(&claimed, delay, last).await {
                Ok(true) => gateway.metrics().queue().job("rate_limited"),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(job = %claimed.job.id, "could not put the job back ({error}): its lease will")
                }
            }
            return;
        }
        Ran::Again(last) if attempts < claimed.job.max_attempts => {
            let delay = backoff(attempts);
            match queue.retry(&claimed, delay, last).await {
                Ok(true) => gateway.metrics().queue().job("retried"),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(job = %claimed.job.id, "could not put the job back ({error}): its lease will")
                }
            }
            return;
        }
        Ran::Again(mut last) => {
            if last.status_code >= 300 {
                last.status = JobStatus::Failed;
            }
            last
        }
        Ran::Final(outcome) => outcome,
    };
    let status = outcome.status;
    match queue.finish(&claimed, outcome).await {
        Ok(true) => {
            let metrics = gateway.metrics().queue();
            metrics.job(if status == JobStatus::Done {
                "done"
            } else {
                "failed"
            });
            tracing::info!(job = %claimed.job.id, status = status.as_str(), attempts, "job finished");
            announce(gateway, queue, &claimed).await;
        }
        Ok(false) => gateway.metrics().queue().job("lost_race"),
        Err(error) => {
            tracing::warn!(job = %claimed.job.id, "could not store the job's result ({error}): it will run again")
        }
    }
}

/// The wait before run `attempts + 1`.
fn backoff(attempts: u32) -> Duration {
    let doubled = Duration::from_secs(1).saturating_mul(1 << attempts.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

/// Runs the job's request once through the serve path.
async fn replay(gateway: &Arc<Gateway>, claimed: &Claimed) -> Ran {
    let broken = |why: &str| {
        Ran::Final(Outcome {
            status: JobStatus::Failed,
            result: serde_json::json!({"error": {"message": why, "type": "internal_error"}})
                .to_string(),
            status_code: 500,
        })
    };
    let Some(payload) = job::Payload::decode(&claimed.job.payload) else {
        return broken("the stored job cannot be read");
    };
    let Some(protocol) = payload.protocol() else {
        return broken("the stored job names an unknown protocol");
    };
    let config = gateway.config();
    let limit = usize::try_from(config.server.max_body_size).unwrap_or(usize::MAX);
    let key = payload.client_key(&config);
    let request = ClientRequest::new(protocol, payload.header_map(), payload.body(), config);
    let response = match request {
        Ok(mut request) => {
            request.from_queue = true;
            let governance = gateway.governance().clone();
            let model = request.envelope.model.clone();
            match governance
                .readmit(gateway.metrics(), key, &model, protocol)
                .await
            {
                Readmission::Admitted(tab) => {
                    request.tab = Some(tab);
                    gateway.serve(Arc::new(request)).await
                }
                Readmission::Wait(wait, error) => {
                    return Ran::Wait(wait, refused(&error, protocol, limit).await)
                }
                Readmission::Refused(error) => {
                    return Ran::Final(refused(&error, protocol, limit).await)
                }
            }
        }
        Err(error) => Err(error),
    };
    let response = response.unwrap_or_else(|error| error.render(protocol));
    let mut ran = judge(response, limit).await;
    if protocol == Protocol::Responses {
        let (Ran::Final(outcome) | Ran::Again(outcome) | Ran::Wait(_, outcome)) = &mut ran;
        crate::responses::finish_queued(gateway, &payload.body, payload.client.as_deref(), outcome)
            .await;
    }
    ran
}

/// The answer of an admission's refusal, in the caller's protocol, as the job's result.
async fn refused(error: &ApiError, protocol: Protocol, limit: usize) -> Outcome {
    match judge(error.render(protocol), limit).await {
        Ran::Final(outcome) | Ran::Again(outcome) | Ran::Wait(_, outcome) => outcome,
    }
}

/// Sorts a run's response into a result to keep or a failure to try again.
async fn judge(response: Response, limit: usize) -> Ran {
    let status = response.status();
    let stand_in = response
        .headers()
        .get("x-backstop-tier")
        .is_some_and(|tier| tier == "static");
    let body = match axum::body::to_bytes(response.into_body(), limit).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(error) => {
            return Ran::Again(Outcome {
                status: JobStatus::Failed,
                result: serde_json::json!({"error": {"message": format!("the answer could not be read whole: {error}"), "type": "upstream_error"}}).to_string(),
                status_code: 502,
            })
        }
    };
    let outcome = Outcome {
        status: if status.is_success() {
            JobStatus::Done
        } else {
            JobStatus::Failed
        },
        result: body,
        status_code: status.as_u16(),
    };
    let providers_fault = stand_in
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if providers_fault {
        Ran::Again(outcome)
    } else {
        Ran::Final(outcome)
    }
}

/// Posts the finished job to its webhook, if it asked for one and webhooks are configured.
async fn announce(gateway: &Arc<Gateway>, queue: &Queue, claimed: &Claimed) {
    let Some(url) = claimed.job.callback.clone() else {
        return;
    };
    let config = gateway.config();
    let Some(secret) = config.queue.callback_secret.as_ref() else {
        return;
    };
    let Ok(Some(job)) = queue.get(&claimed.job.id).await else {
        return;
    };
    callback::deliver(
        url,
        view(&job).to_string(),
        secret.expose().to_string(),
        gateway.metrics().clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(state: &str) -> String {
        serde_json::json!({"state": state, "at": 1, "until": null, "reason": null, "forced": false, "replica": "r"})
            .to_string()
    }

    #[tokio::test]
    async fn a_breaker_that_closes_wakes_the_worker_and_one_that_opens_does_not() {
        let spec = backstop_state::StateSpec::Memory;
        let store =
            Store::open(&spec, "t:", "r", Arc::new(backstop_state::NoStateObserver)).unwrap();
        let mut feed = store.subscribe();
        let entry = |value: String| backstop_state::record::Entry { value, ttl: None };
        store
            .put_many(vec![
                ("breaker:p/m".into(), entry(breaker("open"))),
                ("cap:p/m:x".into(), entry(breaker("closed"))),
            ])
            .await
            .unwrap();
        let early =
            tokio::time::timeout(Duration::from_millis(50), breaker_closed(&mut feed, &store));
        assert!(
            early.await.is_err(),
            "an open breaker, or another record, wakes nothing"
        );
        store
            .put_many(vec![("breaker:p/m".into(), entry(breaker("closed")))])
            .await
            .unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(5), breaker_closed(&mut feed, &store));
        assert!(woken.await.is_ok());
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
