//! An open-loop load: requests leave on a fixed schedule whatever the answers do.
//!
//! A closed loop (send, wait, send) slows down exactly when the gateway does, so it
//! hides the latency a real fleet of agents would see during a failover (the
//! "coordinated omission" trap). Here request `n` is due at `start + n / rate`; a
//! late tick sends at once to catch up, and every request runs in its own task.
//! Completed requests land in a [`SampleLog`] that live views can read while the
//! load runs.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What one client request ended with, as the response headers tell it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// HTTP status, or `None` when no response came (connection error, client timeout).
    pub status: Option<u16>,
    /// `x-backstop-target`: the `provider/model` that served (or last failed).
    pub target: Option<String>,
    /// `x-backstop-model`: the public model that served.
    pub model: Option<String>,
    /// `x-backstop-attempts`: upstream calls made for this request.
    pub attempts: u32,
    /// `x-backstop-fallback`: a model other than the one asked for served.
    pub fallback: bool,
}

/// One completed client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When it was sent, since the start of the run.
    pub sent: Duration,
    /// How long until the whole response was read.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

impl Sample {
    /// A 2xx answer reached the client.
    pub fn ok(&self) -> bool {
        self.outcome.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// When it completed, since the start of the run.
    pub fn done(&self) -> Duration {
        self.sent + self.latency
    }

    /// The target that served it, for a successful request.
    pub fn served_by(&self) -> Option<&str> {
        self.outcome.target.as_deref().filter(|_| self.ok())
    }
}

/// The samples of a run so far, shared between the load and whoever watches it.
#[derive(Debug, Clone)]
pub struct SampleLog {
    start: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl SampleLog {
    /// An empty log for a run starting at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            samples: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The start of the run.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Time since the start of the run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn push(&self, sample: Sample) {
        match self.samples.lock() {
            Ok(mut samples) => samples.push(sample),
            Err(poisoned) => poisoned.into_inner().push(sample),
        }
    }

    /// Every sample so far, in completion order.
    pub fn snapshot(&self) -> Vec<Sample> {
        match self.samples.lock() {
            Ok(samples) => samples.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The samples that completed in `[from, to)` (offsets since the start).
    pub fn completed_between(&self, from: Duration, to: Duration) -> Vec<Sample> {
        let mut found = self.snapshot();
        found.retain(|s| s.done() >= from && s.done() < to);
        found
    }
}

/// Sends `send()` at `rate` requests per second for `duration`, then waits for the
/// requests still in flight; every completed request is recorded in `log`.
pub async fn drive<S, F>(rate: f64, duration: Duration, log: SampleLog, send: S)
where
    S: Fn() -> F,
    F: Future<Output = Outcome> + Send + 'static,
{
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let end = log.start + duration;
    let mut tasks = JoinSet::new();
    for n in 0u32.. {
        let due = log.start + period.saturating_mul(n);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let request = send();
        let log = log.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            let outcome = request.await;
            log.push(Sample {
                sent: sent.saturating_duration_since(log.start),
                latency: sent.elapsed(),
                outcome,
            });
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(target: &str) -> Outcome {
        Outcome {
            status: Some(200),
            target: Some(target.into()),
            attempts: 1,
            ..Outcome::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_schedule_does_not_wait_for_slow_answers() {
        let log = SampleLog::new(Instant::now());
        drive(20.0, Duration::from_secs(1), log.clone(), || async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            served("a/m")
        })
        .await;
        let mut samples = log.snapshot();
        samples.sort_by_key(|s| s.sent);
        assert_eq!(samples.len(), 20);
        for (n, sample) in samples.iter().enumerate() {
            assert_eq!(sample.sent, Duration::from_millis(50 * n as u64));
            assert_eq!(sample.latency, Duration::from_millis(500));
            assert!(sample.ok());
            assert_eq!(sample.served_by(), Some("a/m"));
        }
        assert_eq!(log.elapsed(), Duration::from_millis(950 + 500));
    }

    #[tokio::test(start_paused = true)]
    async fn completed_between_selects_by_completion_time() {
        let log = SampleLog::new(Instant::now());
        drive(10.0, Duration::from_millis(300), log.clone(), || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Outcome {
                status: Some(503),
                ..Outcome::default()
            }
        })
        .await;
        // Sent at 0, 100, 200 ms; done at 150, 250, 350 ms.
        let window = log.completed_between(Duration::from_millis(200), Duration::from_millis(400));
        assert_eq!(window.len(), 2);
        assert!(window.iter().all(|s| !s.ok() && s.served_by().is_none()));
    }
}
