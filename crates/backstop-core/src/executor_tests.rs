use super::*;
use crate::backoff::Backoff;
use crate::breaker::Breaker;
use crate::breaker::{BreakerConfig, BreakerState};
use crate::budget::RetryBudget;
use crate::engine::{Retry, StopReason};
use crate::observer::SkipReason;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a fake upstream answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reply {
    Ok(&'static str),
    Status(u16),
    RateLimited(Duration),
    Hang,
}

#[derive(Clone, Debug, PartialEq)]
struct Fail(Reply);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

fn classify(e: &Fail) -> Verdict {
    match e.0 {
        Reply::RateLimited(d) => Verdict::transient(Some(d)),
        Reply::Status(500..=503) => Verdict::transient(None),
        Reply::Status(504) => Verdict::failure(FailureClass::Unavailable),
        Reply::Status(401) => Verdict::failure(FailureClass::TargetBroken),
        Reply::Status(413) => Verdict::failure(FailureClass::ContextLength),
        Reply::Status(451) => Verdict::failure(FailureClass::ContentFilter),
        Reply::Status(_) | Reply::Ok(_) | Reply::Hang => Verdict::failure(FailureClass::Permanent),
    }
}

/// Scripted upstreams, one queue of replies per candidate name; records when each was called.
#[derive(Clone, Default)]
struct Upstreams {
    scripts: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
    calls: Arc<Mutex<Vec<(String, u32, Instant)>>>,
}

impl Upstreams {
    fn script(&self, name: &str, replies: &[Reply]) {
        self.scripts
            .lock()
            .unwrap()
            .insert(name.to_owned(), replies.iter().cloned().collect());
    }

    fn call(
        &self,
        c: &Candidate<()>,
        attempt: u32,
    ) -> impl Future<Output = Result<&'static str, Fail>> + use<> {
        self.calls
            .lock()
            .unwrap()
            .push((c.name.to_string(), attempt, Instant::now()));
        let reply = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(&*c.name)
            .and_then(|q| q.pop_front());
        async move {
            match reply {
                Some(Reply::Ok(v)) => Ok(v),
                Some(Reply::Hang) | None => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Err(Fail(Reply::Hang))
                }
                Some(other) => Err(Fail(other)),
            }
        }
    }

    fn calls_to(&self, name: &str) -> Vec<Instant> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == name)
            .map(|c| c.2)
            .collect()
    }
}

fn candidate(name: &str, window: Option<u64>) -> Candidate<()> {
    Candidate {
        context_window: window,
        ..Candidate::new(name, Arc::new(Breaker::new(BreakerConfig::default())), ())
    }
}

fn policy() -> Policy {
    Policy {
        retry: Retry {
            max_attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(10),
            },
        },
        budget: None,
        deadline: None,
    }
}

async fn run(
    p: &Policy,
    up: &Upstreams,
    cands: &[Candidate<()>],
) -> Result<Outcome<&'static str>, Exhausted<Fail>> {
    execute(p, cands, classify, |c, n| up.call(c, n)).await
}

#[tokio::test(start_paused = true)]
async fn retry_then_success() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Status(503), Reply::Ok("hello")]);
    let cands = [candidate("a", None), candidate("b", None)];
    let out = run(&policy(), &up, &cands).await.unwrap();
    assert_eq!(
        out,
        Outcome {
            value: "hello",
            served_by: 0,
            attempts: 2
        }
    );
    let calls = up.calls_to("a");
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1] - calls[0] <= Duration::from_millis(100),
        "full jitter within base"
    );
    assert!(up.calls_to("b").is_empty());
}

#[tokio::test(start_paused = true)]
async fn server_hint_is_honoured() {
    let up = Upstreams::default();
    up.script(
        "a",
        &[
            Reply::RateLimited(Duration::from_secs(2)),
            Reply::Ok("late"),
        ],
    );
    let out = run(&policy(), &up, &[candidate("a", None)]).await.unwrap();
    assert_eq!(out.value, "late");
    let calls = up.calls_to("a");
    let gap = calls[1] - calls[0];
    assert!(
        gap >= Duration::from_secs(2) && gap <= Duration::from_millis(2200),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn hint_over_max_moves_on_at_once() {
    let up = Upstreams::default();
    up.script("a", &[Reply::RateLimited(Duration::from_secs(60))]);
    up.script("b", &[Reply::Ok("b")]);
    let start = Instant::now();
    let out = run(
        &policy(),
        &up,
        &[candidate("a", None), candidate("b", None)],
    )
    .await
    .unwrap();
    assert_eq!((out.served_by, out.attempts), (1, 2));
    assert_eq!(up.calls_to("a").len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep at all");
}

#[tokio::test(start_paused = true)]
async fn exhausted_budget_means_no_retry() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Status(503), Reply::Ok("a")]);
    up.script("b", &[Reply::Ok("b")]);
    let p = Policy {
        budget: Some(Arc::new(RetryBudget::new(0.0, 0, Duration::from_secs(10)))),
        ..policy()
    };
    let out = run(&p, &up, &[candidate("a", None), candidate("b", None)])
        .await
        .unwrap();
    assert_eq!(out.served_by, 1);
    assert_eq!(up.calls_to("a").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_with_room_allows_the_retry() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Status(503), Reply::Ok("a")]);
    let budget = Arc::new(RetryBudget::new(0.0, 1, Duration::from_secs(10)));
    let p = Policy {
        budget: Some(budget.clone()),
        ..policy()
    };
    let out = run(&p, &up, &[candidate("a", None)]).await.unwrap();
    assert_eq!(out.attempts, 2);
    assert_eq!(budget.available(), 9);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_then_next_candidate() {
    let up = Upstreams::default();
    up.script(
        "a",
        &[Reply::Status(503), Reply::Status(502), Reply::Status(500)],
    );
    up.script("b", &[Reply::Ok("b")]);
    let out = run(
        &policy(),
        &up,
        &[candidate("a", None), candidate("b", None)],
    )
    .await
    .unwrap();
    assert_eq!((out.served_by, out.attempts), (1, 4));
    assert_eq!(up.calls_to("a").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn permanent_stops() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Status(400)]);
    up.script("b", &[Reply::Ok("b")]);
    let err = run(
        &policy(),
        &up,
        &[candidate("a", None), candidate("b", None)],
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason, StopReason::Permanent);
    assert_eq!(err.last_error(), Some(&Fail(Reply::Status(400))));
    assert!(up.calls_to("b").is_empty());
}

#[tokio::test(start_paused = true)]
async fn unavailable_content_filter_and_broken_move_on_without_retry() {
    for (status, class) in [
        (504, FailureClass::Unavailable),
        (451, FailureClass::ContentFilter),
        (401, FailureClass::TargetBroken),
    ] {
        let up = Upstreams::default();
        up.script("a", &[Reply::Status(status)]);
        up.script("b", &[Reply::Ok("b")]);
        let cands = [candidate("a", None), candidate("b", None)];
        let out = run(&policy(), &up, &cands).await.unwrap();
        assert_eq!((out.served_by, out.attempts), (1, 2), "{class}");
        let expected = if class == FailureClass::TargetBroken {
            BreakerState::Open
        } else {
            BreakerState::Closed
        };
        assert_eq!(cands[0].breaker.state(), expected, "{class}");
    }
}

#[tokio::test(start_paused = true)]
async fn context_length_skips_windows_that_are_not_larger() {
    let up = Upstreams::default();
    up.script("small", &[Reply::Status(413)]);
    up.script("same", &[Reply::Ok("same")]);
    up.script("big", &[Reply::Ok("big")]);
    let cands = [
        candidate("small", Some(8_000)),
        candidate("same", Some(8_000)),
        candidate("big", Some(128_000)),
    ];
    let out = run(&policy(), &up, &cands).await.unwrap();
    assert_eq!(out.served_by, 2);
    assert!(up.calls_to("same").is_empty());
}

#[tokio::test(start_paused = true)]
async fn open_breakers_are_skipped_without_a_call() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Ok("a")]);
    up.script("b", &[Reply::Ok("b")]);
    let cands = [candidate("a", None), candidate("b", None)];
    cands[0].breaker.force_open(Some(Duration::from_secs(30)));
    let out = run(&policy(), &up, &cands).await.unwrap();
    assert_eq!((out.served_by, out.attempts), (1, 1));
    assert!(up.calls_to("a").is_empty());
}

#[tokio::test(start_paused = true)]
async fn all_open_fails_fast_with_retry_at() {
    let up = Upstreams::default();
    let cands = [candidate("a", None), candidate("b", None)];
    cands[0].breaker.force_open(Some(Duration::from_secs(5)));
    cands[1].breaker.force_open(Some(Duration::from_secs(3)));
    let start = Instant::now();
    let err = run(&policy(), &up, &cands).await.unwrap_err();
    assert!(err.all_open());
    assert_eq!(err.reason, StopReason::Exhausted);
    assert_eq!(err.retry_at, Some(start + Duration::from_secs(3)));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(up.calls.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_a_hanging_call() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Hang]);
    let p = Policy {
        deadline: Some(Duration::from_secs(5)),
        ..policy()
    };
    let start = Instant::now();
    let err = run(&p, &up, &[candidate("a", None), candidate("b", None)])
        .await
        .unwrap_err();
    assert_eq!(err.reason, StopReason::Deadline);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(up.calls_to("b").is_empty());
}

#[tokio::test(start_paused = true)]
async fn deadline_bounds_retries_and_sleeps() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Status(503); 20]);
    up.script("b", &[Reply::Status(503); 20]);
    let p = Policy {
        retry: Retry {
            max_attempts: 20,
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(4),
            },
        },
        deadline: Some(Duration::from_secs(6)),
        ..policy()
    };
    let start = Instant::now();
    let err = run(&p, &up, &[candidate("a", None), candidate("b", None)])
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(!err.attempts.is_empty());
    assert!(
        err.to_string()
            .starts_with("every candidate failed; a attempt 1: transient"),
        "{err}"
    );
}

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Observer for Log {
    fn retry(&self, target: &str, attempt: u32, class: FailureClass, _delay: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("retry {target} {attempt} {class}"));
    }
    fn fallback(&self, from: &str, to: &str, class: FailureClass) {
        self.0
            .lock()
            .unwrap()
            .push(format!("fallback {from}->{to} {class}"));
    }
    fn skipped(&self, target: &str, _reason: &SkipReason) {
        self.0.lock().unwrap().push(format!("skip {target}"));
    }
    fn attempt(&self, e: &AttemptEvent<'_>) {
        let class = e.class.map_or("ok", |c| c.as_str());
        self.0
            .lock()
            .unwrap()
            .push(format!("attempt {} {} {class}", e.target, e.attempt));
    }
}

#[tokio::test(start_paused = true)]
async fn observer_sees_the_story() {
    let up = Upstreams::default();
    up.script("a", &[Reply::Status(503), Reply::Status(504)]);
    up.script("c", &[Reply::Ok("c")]);
    let cands = [
        candidate("a", None),
        candidate("b", None),
        candidate("c", None),
    ];
    cands[1].breaker.force_open(None);
    let log = Log::default();
    let out = execute_observed(&policy(), &cands, classify, &log, |c, n| up.call(c, n))
        .await
        .unwrap();
    assert_eq!(out.served_by, 2);
    assert_eq!(
        log.0.into_inner().unwrap(),
        [
            "attempt a 1 transient",
            "retry a 1 transient",
            "attempt a 2 unavailable",
            "skip b",
            "fallback a->c unavailable",
            "attempt c 1 ok",
        ]
    );
}

#[test]
fn shareable_across_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Breaker>();
    send_sync::<crate::Permit>();
    send_sync::<RetryBudget>();
    send_sync::<crate::LatencyStats>();
    fn send<T: Send>(_: &T) {}
    let up = Upstreams::default();
    let cands = [candidate("a", None)];
    let p = policy();
    let fut = execute(&p, &cands, classify, |c, n| up.call(c, n));
    send(&fut);
}
