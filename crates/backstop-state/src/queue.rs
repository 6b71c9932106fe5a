//! A durable queue of jobs in the store: requests kept until a replica can run them, with their results.
//!
//! - **Enqueue** commits before it returns (a SQLite transaction; on Redis the job record and its stream entry,
//!   `XADD` to a consumer group, in one script), or fails: the caller acknowledges a job only once it is stored.
//!   The queue is bounded: past `cap` waiting or running jobs, [`Enqueued::Full`].
//! - **Claim** hands a job to one replica for `lease`; a replica that dies holding it loses it when the lease
//!   runs out, and another takes it over (on Redis, `XAUTOCLAIM` of entries idle longer than the lease).
//! - **Finish** stores the result once: a write for a job that is no longer running (another replica finished
//!   it first, it was cancelled or it expired) changes nothing and says so.
//! - **Retry** puts a running job back to wait until a given time; [`Queue::wake`] makes every waiting job due
//!   now (a provider is back).
//!
//! A job that is not finished when its `ttl` runs out is `expired`; its record is kept one more `ttl` (at least
//! [`MIN_RETENTION`]) so that its owner can read that, then removed. Finished records are removed at the same
//! time.
//!
//! Every replica must claim with the same lease: on Redis, an entry idle for longer than the claimer's lease is
//! taken over.

use crate::backend::Store;
use crate::record::now_ms;
use crate::StateError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a replica.
    Queued,
    /// Held by a replica under a lease.
    Running,
    /// Answered: the result is the answer.
    Done,
    /// Given up: the result is the last error.
    Failed,
    /// Not finished within its time to live.
    Expired,
    /// Cancelled by its owner while it waited.
    Cancelled,
}

impl JobStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Expired => "expired",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `text`, as stored.
    pub fn parse(text: &str) -> Option<JobStatus> {
        Some(match text {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            "expired" => JobStatus::Expired,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether nothing more happens to a job in this status.
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// A job to store.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Its id (unguessable: the only thing between a job and anyone who has its id without client keys).
    pub id: String,
    /// Who may see it (a digest of the client key, never the key).
    pub owner: String,
    /// What to run, opaque to the store.
    pub payload: String,
    /// Where to announce the result, if anywhere.
    pub callback: Option<String>,
    /// How long it may wait and run.
    pub ttl: Duration,
    /// How many runs it gets.
    pub max_attempts: u32,
}

/// A stored job. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Who may see it.
    pub owner: String,
    /// Where it stands.
    pub status: JobStatus,
    /// What to run.
    pub payload: String,
    /// Where to announce the result.
    pub callback: Option<String>,
    /// Runs started so far.
    pub attempts: u32,
    /// Runs it gets.
    pub max_attempts: u32,
    /// When it was stored.
    pub created_ms: u64,
    /// When it expires if not finished.
    pub expires_ms: u64,
    /// The answer (or the last error) in the caller's protocol, once finished or tried.
    pub result: Option<String>,
    /// The HTTP status of `result`.
    pub status_code: Option<u16>,
}

impl Job {
    /// The job as its owner sees it now: one past its expiry that never finished is `expired`.
    pub fn seen_at(mut self, now: u64) -> Job {
        if !self.status.is_final() && now >= self.expires_ms {
            self.status = JobStatus::Expired;
        }
        self
    }
}

/// A job held by this replica.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The job, with `attempts` counting this run.
    pub job: Job,
    /// The lease's token: only its holder may put the job back.
    pub token: String,
}

/// How a run ended, to store with the job.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// `Done` or `Failed`.
    pub status: JobStatus,
    /// The answer or error body.
    pub result: String,
    /// Its HTTP status.
    pub status_code: u16,
}

/// What an enqueue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Committed.
    Stored,
    /// Not stored: the queue holds its cap of waiting and running jobs.
    Full,
}

/// How long a finished or expired job is kept at least, after its expiry, for its owner to read.
pub const MIN_RETENTION: Duration = Duration::from_secs(60);

/// How long a queue operation may take: a commit waits on the disk, and a 202 waits on it.
pub const QUEUE_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The queue of one store.
pub struct Queue {
    store: Arc<Store>,
    tokens: AtomicU64,
    worker: AtomicBool,
}

impl Queue {
    /// The queue kept in `store`.
    pub fn new(store: Arc<Store>) -> Queue {
        Queue {
            store,
            tokens: AtomicU64::new(0),
            worker: AtomicBool::new(false),
        }
    }

    /// `true` for the first caller only: the one that runs this process's worker.
    pub fn take_worker(&self) -> bool {
        !self.worker.swap(true, Ordering::SeqCst)
    }

    /// The store the jobs are kept in.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stores `job` as `queued`, committed when this returns `Ok(Stored)`; `Full` past `cap` unfinished jobs.
    pub async fn enqueue(&self, job: NewJob, cap: u64) -> Result<Enqueued, StateError> {
        let now = now_ms();
        let ttl = ms(job.ttl);
        let stored = Job {
            id: job.id,
            owner: job.owner,
            status: JobStatus::Queued,
            payload: job.payload,
            callback: job.callback,
            attempts: 0,
            max_attempts: job.max_attempts.max(1),
            created_ms: now,
            expires_ms: now.saturating_add(ttl),
            result: None,
            status_code: None,
        };
        let purge_ms = stored.expires_ms.saturating_add(ttl.max(ms(MIN_RETENTION)));
        let stored = self.store.job_enqueue(stored, purge_ms, cap).await?;
        Ok(if stored {
            Enqueued::Stored
        } else {
            Enqueued::Full
        })
    }

    /// Takes a due job (or one whose holder's lease ran out) for `lease`, if any.
    pub async fn claim(&self, lease: Duration) -> Result<Option<Claimed>, StateError> {
        let serial = self.tokens.fetch_add(1, Ordering::Relaxed);
        let token = format!("{}-{serial}", self.store.replica());
        let job = self
            .store
            .job_claim(now_ms(), ms(lease), token.clone())
            .await?;
        Ok(job.map(|job| Claimed { job, token }))
    }

    /// Stores the result of a claimed job; `false` (nothing written) when it is no longer running.
    pub async fn finish(&self, claimed: &Claimed, outcome: Outcome) -> Result<bool, StateError> {
        self.store
            .job_finish(claimed.job.id.clone(), claimed.token.clone(), outcome)
            .await
    }

    /// Puts a claimed job back to wait `delay`, keeping `last` (the failed run's answer) with it; `false` when
    /// this replica no longer holds it.
    pub async fn retry(
        &self,
        claimed: &Claimed,
        delay: Duration,
        last: Outcome,
    ) -> Result<bool, StateError> {
        self.put_back(claimed, delay, last, true).await
    }

    /// Puts a claimed job back to wait `delay` without counting this run among its attempts: it did not run
    /// (its client key was at its rate limit). `last` says why; `false` when this replica no longer holds it.
    pub async fn defer(
        &self,
        claimed: &Claimed,
        delay: Duration,
        last: Outcome,
    ) -> Result<bool, StateError> {
        self.put_back(claimed, delay, last, false).await
    }

    async fn put_back(
        &self,
        claimed: &Claimed,
        delay: Duration,
        last: Outcome,
        counted: bool,
    ) -> Result<bool, StateError> {
        let not_before = now_ms().saturating_add(ms(delay));
        self.store
            .job_retry(
                claimed.job.id.clone(),
                claimed.token.clone(),
                not_before,
                last,
                counted,
            )
            .await
    }

    /// The job `id`, if stored, as its owner sees it now.
    pub async fn get(&self, id: &str) -> Result<Option<Job>, StateError> {
        let job = self.store.job_get(id.to_string()).await?;
        let now = now_ms();
        Ok(job.map(|job| job.seen_at(now)))
    }

    /// Cancels `id` if it is still waiting; the job as it stands afterwards.
    pub async fn cancel(&self, id: &str) -> Result<Option<Job>, StateError> {
        self.store.job_cancel(id.to_string()).await?;
        self.get(id).await
    }

    /// Makes every waiting job due now.
    pub async fn wake(&self) -> Result<(), StateError> {
        self.store.job_wake().await
    }

    /// Jobs waiting or running.
    pub async fn depth(&self) -> Result<u64, StateError> {
        self.store.job_depth(now_ms()).await
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
