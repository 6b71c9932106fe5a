//! The durable queue on each backend (memory, a SQLite file, a real redis-server): results stored exactly once,
//! leases that run out and are taken over, retries and deferred runs, cancel, the cap and expiry; and two stores on one Redis
//! or one SQLite file sharing the queue without running a job twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use backstop_mock::redis_server::RedisServer;
use backstop_state::queue::{Enqueued, JobStatus, NewJob, Outcome, Queue};
use backstop_state::{NoStateObserver, StateSpec, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A backend under test, kept alive with what it needs.
struct Backend {
    spec: StateSpec,
    _redis: Option<RedisServer>,
    _dir: Option<tempfile::TempDir>,
}

fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = StateSpec::Sqlite(dir.path().join("state.db"));
    let redis = RedisServer::start().unwrap();
    vec![
        Backend {
            spec: StateSpec::Memory,
            _redis: None,
            _dir: None,
        },
        Backend {
            spec: sqlite,
            _redis: None,
            _dir: Some(dir),
        },
        Backend {
            spec: StateSpec::parse(&redis.url()).unwrap(),
            _redis: Some(redis),
            _dir: None,
        },
    ]
}

fn queue(spec: &StateSpec, replica: &str) -> Queue {
    let store = Store::open(spec, "test:", replica, Arc::new(NoStateObserver)).unwrap();
    Queue::new(Arc::new(store))
}

fn job(id: &str, ttl: Duration) -> NewJob {
    NewJob {
        id: id.to_string(),
        owner: "owner".into(),
        payload: format!("{{\"job\":\"{id}\"}}"),
        callback: None,
        ttl,
        max_attempts: 3,
    }
}

fn outcome(status: JobStatus, text: &str) -> Outcome {
    Outcome {
        status,
        result: text.to_string(),
        status_code: if status == JobStatus::Done { 200 } else { 503 },
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_stored_once_and_a_late_write_is_a_no_op() {
    for backend in backends() {
        let q = queue(&backend.spec, "a");
        assert_eq!(
            q.enqueue(job("j1", HOUR), 10).await.unwrap(),
            Enqueued::Stored
        );
        let seen = q.get("j1").await.unwrap().unwrap();
        assert_eq!(seen.status, JobStatus::Queued, "{:?}", backend.spec);
        assert_eq!(seen.payload, "{\"job\":\"j1\"}");

        let claimed = q.claim(HOUR).await.unwrap().expect("a job to claim");
        assert_eq!(claimed.job.id, "j1");
        assert_eq!(claimed.job.attempts, 1);
        assert!(
            q.claim(HOUR).await.unwrap().is_none(),
            "held jobs are not handed out twice"
        );
        assert_eq!(
            q.get("j1").await.unwrap().unwrap().status,
            JobStatus::Running
        );

        assert!(q
            .finish(&claimed, outcome(JobStatus::Done, "first"))
            .await
            .unwrap());
        assert!(!q
            .finish(&claimed, outcome(JobStatus::Done, "second"))
            .await
            .unwrap());
        let done = q.get("j1").await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Done, "{:?}", backend.spec);
        assert_eq!(done.result.as_deref(), Some("first"));
        assert_eq!(done.status_code, Some(200));
        assert_eq!(q.depth().await.unwrap(), 0);
        assert!(q.claim(HOUR).await.unwrap().is_none());
        assert!(q.get("unknown").await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_runs_out_is_taken_over_and_only_one_result_counts() {
    for backend in backends() {
        let dead = queue(&backend.spec, "dead");
        let alive = if matches!(backend.spec, StateSpec::Memory) {
            None
        } else {
            Some(queue(&backend.spec, "alive"))
        };
        let other = alive.as_ref().unwrap_or(&dead);
        dead.enqueue(job("j", HOUR), 10).await.unwrap();
        let lease = Duration::from_millis(100);
        let first = dead.claim(lease).await.unwrap().unwrap();
        assert!(
            other.claim(lease).await.unwrap().is_none(),
            "{:?}",
            backend.spec
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let second = other.claim(lease).await.unwrap().expect("taken over");
        assert_eq!(second.job.id, "j");
        assert_eq!(second.job.attempts, 2, "{:?}", backend.spec);
        assert!(
            !dead
                .retry(&first, Duration::ZERO, outcome(JobStatus::Failed, "x"))
                .await
                .unwrap(),
            "the old holder can no longer put it back"
        );
        assert!(other
            .finish(&second, outcome(JobStatus::Done, "second"))
            .await
            .unwrap());
        assert!(!dead
            .finish(&first, outcome(JobStatus::Done, "first"))
            .await
            .unwrap());
        assert_eq!(
            other.get("j").await.unwrap().unwrap().result.as_deref(),
            Some("second")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_until_due_or_woken_and_keeps_the_last_answer() {
    for backend in backends() {
        let q = queue(&backend.spec, "a");
        q.enqueue(job("j", HOUR), 10).await.unwrap();
        let first = q.claim(HOUR).await.unwrap().unwrap();
        assert!(q
            .retry(&first, HOUR, outcome(JobStatus::Failed, "down"))
            .await
            .unwrap());
        let waiting = q.get("j").await.unwrap().unwrap();
        assert_eq!(waiting.status, JobStatus::Queued);
        assert_eq!(waiting.result.as_deref(), Some("down"));
        assert!(
            q.claim(HOUR).await.unwrap().is_none(),
            "not due for an hour"
        );
        assert_eq!(q.depth().await.unwrap(), 1, "{:?}", backend.spec);
        q.wake().await.unwrap();
        let again = q.claim(HOUR).await.unwrap().expect("due once woken");
        assert_eq!(again.job.attempts, 2);
        assert!(q
            .retry(&again, Duration::ZERO, outcome(JobStatus::Failed, "down"))
            .await
            .unwrap());
        let third = q.claim(HOUR).await.unwrap().expect("due at once");
        assert_eq!(third.job.attempts, 3, "{:?}", backend.spec);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_run_waits_without_counting_as_an_attempt() {
    for backend in backends() {
        let q = queue(&backend.spec, "a");
        q.enqueue(job("j", HOUR), 10).await.unwrap();
        let first = q.claim(HOUR).await.unwrap().unwrap();
        assert_eq!(first.job.attempts, 1);
        assert!(q
            .defer(&first, HOUR, outcome(JobStatus::Failed, "rate limited"))
            .await
            .unwrap());
        let waiting = q.get("j").await.unwrap().unwrap();
        assert_eq!(waiting.status, JobStatus::Queued, "{:?}", backend.spec);
        assert_eq!(waiting.attempts, 0, "{:?}", backend.spec);
        assert!(
            q.claim(HOUR).await.unwrap().is_none(),
            "not due for an hour"
        );
        q.wake().await.unwrap();
        let again = q.claim(HOUR).await.unwrap().expect("due once woken");
        assert_eq!(again.job.attempts, 1, "{:?}", backend.spec);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_cap_and_expiry() {
    for backend in backends() {
        let q = queue(&backend.spec, "a");
        q.enqueue(job("c", HOUR), 2).await.unwrap();
        q.enqueue(job("d", HOUR), 2).await.unwrap();
        assert_eq!(q.enqueue(job("e", HOUR), 2).await.unwrap(), Enqueued::Full);
        assert!(
            q.get("e").await.unwrap().is_none(),
            "a refused job is not stored"
        );

        let cancelled = q.cancel("c").await.unwrap().unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelled, "{:?}", backend.spec);
        let claimed = q.claim(HOUR).await.unwrap().unwrap();
        assert_eq!(claimed.job.id, "d", "a cancelled job is never run");
        assert_eq!(
            q.cancel("d").await.unwrap().unwrap().status,
            JobStatus::Running,
            "a running job is not cancelled"
        );
        assert!(q.claim(HOUR).await.unwrap().is_none());

        q.enqueue(job("short", Duration::from_millis(100)), 10)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            q.get("short").await.unwrap().unwrap().status,
            JobStatus::Expired,
            "{:?}",
            backend.spec
        );
        assert!(
            q.claim(HOUR).await.unwrap().is_none(),
            "an expired job is never run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_backend_never_take_the_same_job() {
    for backend in backends()
        .into_iter()
        .filter(|b| !matches!(b.spec, StateSpec::Memory))
    {
        let a = Arc::new(queue(&backend.spec, "a"));
        let b = Arc::new(queue(&backend.spec, "b"));
        for n in 0..100 {
            a.enqueue(job(&format!("j{n}"), HOUR), 1000).await.unwrap();
        }
        let drain = |q: Arc<Queue>| {
            tokio::spawn(async move {
                let mut taken = Vec::new();
                while let Some(claimed) = q.claim(HOUR).await.unwrap() {
                    assert!(q
                        .finish(&claimed, outcome(JobStatus::Done, "ok"))
                        .await
                        .unwrap());
                    taken.push(claimed.job.id);
                }
                taken
            })
        };
        let (from_a, from_b) = (drain(a.clone()), drain(b.clone()));
        let mut all = from_a.await.unwrap();
        all.extend(from_b.await.unwrap());
        let unique: HashSet<_> = all.iter().cloned().collect();
        assert_eq!(all.len(), 100, "{:?}", backend.spec);
        assert_eq!(unique.len(), 100, "no job taken twice");
    }
}
