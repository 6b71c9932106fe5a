//! The queue's operations on each backend (see [`crate::queue`]), timed and counted like every other.

use super::{Backend, Store};
use crate::queue::{Job, Outcome, QUEUE_OP_TIMEOUT};
use crate::StateError;

impl Store {
    pub(crate) async fn job_enqueue(
        &self,
        job: Job,
        purge_ms: u64,
        cap: u64,
    ) -> Result<bool, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_enqueue", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.enqueue(job.clone(), purge_ms, cap)),
                Backend::Sqlite(s) => {
                    s.job_enqueue(prefix.clone(), job.clone(), purge_ms, cap)
                        .await
                }
                Backend::Redis(r) => r.job_enqueue(&prefix, &job, purge_ms, cap).await,
            }
        })
        .await
    }

    pub(crate) async fn job_claim(
        &self,
        now: u64,
        lease_ms: u64,
        token: String,
    ) -> Result<Option<Job>, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_claim", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.claim(now, lease_ms, &token)),
                Backend::Sqlite(s) => {
                    s.job_claim(prefix.clone(), now, lease_ms, token.clone())
                        .await
                }
                Backend::Redis(r) => {
                    r.job_claim(&prefix, &self.replica, now, lease_ms, &token)
                        .await
                }
            }
        })
        .await
    }

    pub(crate) async fn job_finish(
        &self,
        id: String,
        token: String,
        outcome: Outcome,
    ) -> Result<bool, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_finish", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.finish(&id, &outcome)),
                Backend::Sqlite(s) => {
                    s.job_finish(prefix.clone(), id.clone(), outcome.clone())
                        .await
                }
                Backend::Redis(r) => r.job_finish(&prefix, &id, &token, &outcome).await,
            }
        })
        .await
    }

    pub(crate) async fn job_retry(
        &self,
        id: String,
        token: String,
        not_before: u64,
        last: Outcome,
        counted: bool,
    ) -> Result<bool, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_retry", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.retry(&id, &token, not_before, &last, counted)),
                Backend::Sqlite(s) => {
                    s.job_retry(
                        prefix.clone(),
                        id.clone(),
                        token.clone(),
                        not_before,
                        last.clone(),
                        counted,
                    )
                    .await
                }
                Backend::Redis(r) => {
                    r.job_retry(&prefix, &id, &token, not_before, &last, counted)
                        .await
                }
            }
        })
        .await
    }

    pub(crate) async fn job_get(&self, id: String) -> Result<Option<Job>, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_get", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.get(&id)),
                Backend::Sqlite(s) => s.job_get(prefix.clone(), id.clone()).await,
                Backend::Redis(r) => r.job_get(&prefix, &id).await,
            }
        })
        .await
    }

    pub(crate) async fn job_cancel(&self, id: String) -> Result<bool, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_cancel", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.cancel(&id)),
                Backend::Sqlite(s) => s.job_cancel(prefix.clone(), id.clone()).await,
                Backend::Redis(r) => r.job_cancel(&prefix, &id).await,
            }
        })
        .await
    }

    pub(crate) async fn job_wake(&self) -> Result<(), StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_wake", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => {
                    m.jobs.wake();
                    Ok(())
                }
                Backend::Sqlite(s) => s.job_wake(prefix.clone()).await,
                Backend::Redis(r) => r.job_wake(&prefix).await,
            }
        })
        .await
    }

    pub(crate) async fn job_depth(&self, now: u64) -> Result<u64, StateError> {
        let prefix = self.prefix.clone();
        self.timed("job_depth", QUEUE_OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.jobs.depth(now)),
                Backend::Sqlite(s) => s.job_depth(prefix.clone(), now).await,
                Backend::Redis(r) => r.job_depth(&prefix).await,
            }
        })
        .await
    }
}
