//! The queue in memory: jobs in a map of this process (tests and throwaway runs; lost on restart).

use crate::queue::{Job, JobStatus, Outcome};
use crate::record::now_ms;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

struct Held {
    job: Job,
    not_before: u64,
    lease_until: u64,
    token: Option<String>,
    purge_ms: u64,
}

impl Held {
    fn claimable(&self, now: u64) -> bool {
        now < self.job.expires_ms
            && match self.job.status {
                JobStatus::Queued => self.not_before <= now,
                JobStatus::Running => self.lease_until <= now,
                _ => false,
            }
    }
}

/// The jobs of a memory store.
#[derive(Default)]
pub struct MemoryJobs {
    jobs: Mutex<HashMap<String, Held>>,
}

impl MemoryJobs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn enqueue(&self, job: Job, purge_ms: u64, cap: u64) -> bool {
        let now = now_ms();
        let mut jobs = self.lock();
        jobs.retain(|_, held| held.purge_ms > now);
        let unfinished = jobs.values().filter(|h| !h.job.status.is_final()).count();
        if unfinished as u64 >= cap {
            return false;
        }
        let held = Held {
            job,
            not_before: 0,
            lease_until: 0,
            token: None,
            purge_ms,
        };
        jobs.insert(held.job.id.clone(), held);
        true
    }

    pub(crate) fn claim(&self, now: u64, lease_ms: u64, token: &str) -> Option<Job> {
        let mut jobs = self.lock();
        for held in jobs.values_mut() {
            if !held.job.status.is_final() && now >= held.job.expires_ms {
                held.job.status = JobStatus::Expired;
            }
        }
        let held = jobs
            .values_mut()
            .filter(|held| held.claimable(now))
            .min_by_key(|held| (held.not_before, held.job.created_ms))?;
        held.job.status = JobStatus::Running;
        held.job.attempts += 1;
        held.lease_until = now.saturating_add(lease_ms);
        held.token = Some(token.to_string());
        Some(held.job.clone())
    }

    pub(crate) fn finish(&self, id: &str, outcome: &Outcome) -> bool {
        let mut jobs = self.lock();
        let Some(held) = jobs
            .get_mut(id)
            .filter(|h| h.job.status == JobStatus::Running)
        else {
            return false;
        };
        held.job.status = outcome.status;
        held.job.result = Some(outcome.result.clone());
        held.job.status_code = Some(outcome.status_code);
        held.token = None;
        true
    }

    pub(crate) fn retry(
        &self,
        id: &str,
        token: &str,
        not_before: u64,
        last: &Outcome,
        counted: bool,
    ) -> bool {
        let mut jobs = self.lock();
        let Some(held) = jobs
            .get_mut(id)
            .filter(|h| h.job.status == JobStatus::Running && h.token.as_deref() == Some(token))
        else {
            return false;
        };
        held.job.status = JobStatus::Queued;
        held.job.result = Some(last.result.clone());
        held.job.status_code = Some(last.status_code);
        held.not_before = not_before;
        held.token = None;
        if !counted {
            held.job.attempts = held.job.attempts.saturating_sub(1);
        }
        true
    }

    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        let now = now_ms();
        self.lock()
            .get(id)
            .filter(|held| held.purge_ms > now)
            .map(|held| held.job.clone())
    }

    pub(crate) fn cancel(&self, id: &str) -> bool {
        let mut jobs = self.lock();
        match jobs
            .get_mut(id)
            .filter(|h| h.job.status == JobStatus::Queued)
        {
            Some(held) => {
                held.job.status = JobStatus::Cancelled;
                true
            }
            None => false,
        }
    }

    pub(crate) fn wake(&self) {
        for held in self.lock().values_mut() {
            held.not_before = 0;
        }
    }

    pub(crate) fn depth(&self, now: u64) -> u64 {
        self.lock()
            .values()
            .filter(|held| !held.job.status.is_final() && now < held.job.expires_ms)
            .count() as u64
    }
}
