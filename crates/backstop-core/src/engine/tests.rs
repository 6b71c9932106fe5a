use super::model::{reference, Failure, Reply, Scenario, Spec, Trace, DEFAULT_REPLY};
use super::*;
use crate::backoff::Backoff;
use crate::breaker::{Breaker, BreakerConfig};
use crate::budget::RetryBudget;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::time::Instant;

/// A breaker that opens only for a broken target or when forced.
fn patient_breaker() -> Arc<Breaker> {
    Arc::new(Breaker::new(BreakerConfig {
        failure_threshold: u32::MAX,
        failure_rate: 2.0,
        min_calls: u32::MAX,
        ..BreakerConfig::default()
    }))
}

/// Scripted candidates behind the engine's [`Attempts`].
struct Scripted {
    scripts: Mutex<Vec<VecDeque<Reply>>>,
    specs: Vec<Spec>,
    calls: Mutex<Vec<(usize, u32)>>,
    recorded: AtomicU32,
}

impl Scripted {
    fn new(scenario: &Scenario) -> Self {
        Scripted {
            scripts: Mutex::new(
                scenario
                    .candidates
                    .iter()
                    .map(|c| c.replies.iter().copied().collect())
                    .collect(),
            ),
            specs: scenario.candidates.clone(),
            calls: Mutex::new(Vec::new()),
            recorded: AtomicU32::new(0),
        }
    }
}

impl Attempts for Scripted {
    type Target = usize;
    type Output = usize;
    type Error = Failure;

    fn call(
        &self,
        candidate: &Candidate<usize>,
        attempt: u32,
    ) -> impl Future<Output = Result<usize, Failure>> + Send {
        let index = candidate.inner;
        self.calls.lock().unwrap().push((index, attempt));
        let reply = self.scripts.lock().unwrap()[index]
            .pop_front()
            .unwrap_or(DEFAULT_REPLY);
        async move {
            tokio::time::sleep(Duration::from_millis(reply.latency)).await;
            reply.outcome.map_or(Ok(index), Err)
        }
    }

    fn classify(&self, error: &Failure) -> Verdict {
        Verdict::Failure {
            class: error.class,
            retry_after: error.hint.map(Duration::from_millis),
        }
    }

    fn record_failure(
        &self,
        _candidate: &Candidate<usize>,
        attempt: Attempt,
        class: FailureClass,
        error: &Failure,
    ) {
        assert_eq!(class, error.class);
        self.recorded.fetch_add(1, Ordering::Relaxed);
        attempt.finish(Some(class));
    }

    fn hedge_delay(&self, candidate: &Candidate<usize>) -> Option<Duration> {
        self.specs[candidate.inner]
            .hedge_after
            .map(Duration::from_millis)
    }
}

fn candidates(scenario: &Scenario) -> Vec<Candidate<usize>> {
    scenario
        .candidates
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let breaker = patient_breaker();
            if spec.open {
                breaker.force_open(None);
            }
            Candidate {
                group: spec.group,
                retry: Some(Retry {
                    max_attempts: spec.max_attempts,
                    backoff: Backoff {
                        base: Duration::from_millis(4),
                        max: Duration::from_millis(scenario_max(spec, i)),
                    },
                }),
                stop_on_content_filter: spec.stop_on_content_filter,
                ..Candidate::new(format!("c{i}"), breaker, i)
            }
        })
        .collect()
}

const MAX_DELAY: u64 = 40;

fn scenario_max(_spec: &Spec, _index: usize) -> u64 {
    MAX_DELAY
}

fn policy(scenario: &Scenario) -> Policy {
    Policy {
        retry: Retry::default(),
        budget: Some(Arc::new(RetryBudget::new(
            f64::from(scenario.budget),
            0,
            Duration::from_secs(3600),
        ))),
        deadline: None,
    }
}

fn paused<F: Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(work)
}

/// Runs the engine on a scenario; also checks that every call was recorded, served or cancelled as a hedge's
/// loser, and nothing twice.
fn engine_trace(scenario: &Scenario) -> Trace {
    trace_on(scenario, &candidates(scenario))
}

/// [`engine_trace`] on the candidates of `scenario` as `list` gives them.
fn trace_on<C: Candidates<usize> + ?Sized>(scenario: &Scenario, list: &C) -> Trace {
    let scripted = Scripted::new(scenario);
    let result = paused(run(&policy(scenario), list, &scripted));
    let calls = scripted.calls.lock().unwrap().clone();
    let recorded = scripted.recorded.load(Ordering::Relaxed) as usize;
    let result = match result {
        Ok(served) => {
            assert_eq!(served.calls as usize, calls.len());
            assert_eq!(served.value, served.served_by);
            assert!(recorded < calls.len());
            served.attempt.finish(None);
            Ok(served.served_by)
        }
        Err(exhausted) => {
            assert_eq!(exhausted.calls as usize, calls.len());
            assert_eq!(exhausted.attempts.len(), recorded);
            Err((exhausted.reason == StopReason::Permanent, recorded))
        }
    };
    Trace { calls, result }
}

fn class() -> impl Strategy<Value = FailureClass> {
    prop_oneof![
        4 => Just(FailureClass::Transient),
        1 => Just(FailureClass::Unavailable),
        1 => Just(FailureClass::TargetBroken),
        1 => Just(FailureClass::ContentFilter),
        1 => Just(FailureClass::Permanent),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let failure =
        (class(), prop::option::of(prop_oneof![1u64..30, 60u64..100])).prop_map(|(class, hint)| {
            Failure {
                class,
                hint: hint.filter(|_| class == FailureClass::Transient),
            }
        });
    // Latencies are 1 mod 4 and hedge delays 2 mod 4: no two events of a race fall on the same instant.
    (
        (0u64..30).prop_map(|k| 4 * k + 1),
        prop::option::weighted(0.6, failure),
    )
        .prop_map(|(latency, outcome)| Reply { latency, outcome })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(reply(), 0..5),
        prop::option::of(0usize..2),
        1u32..4,
        prop::option::weighted(0.3, (0u64..12).prop_map(|m| 4 * m + 2)),
        any::<bool>(),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(replies, group, max_attempts, hedge_after, stop_on_content_filter, open)| Spec {
                replies,
                group,
                max_attempts,
                hedge_after,
                stop_on_content_filter,
                open,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (prop::collection::vec(spec(), 1..5), 0u32..4).prop_map(|(candidates, budget)| Scenario {
        candidates,
        budget,
        max_delay: MAX_DELAY,
    })
}

/// Candidates built a chunk at a time when the engine reaches them, as a gateway builds its fallback models'
/// targets: a chunk holds every candidate of the groups it has (so the lookahead for another channel sees them
/// all); counts the chunks built.
struct Lazy {
    all: Vec<Candidate<usize>>,
    /// Where each chunk ends (exclusive).
    ends: Vec<usize>,
    built: AtomicUsize,
}

impl Lazy {
    fn new(all: Vec<Candidate<usize>>) -> Self {
        let splits_a_group = |at: usize| {
            all[..at]
                .iter()
                .any(|before| all[at..].iter().any(|after| before.same_group(after)))
        };
        let ends = (1..=all.len()).filter(|&at| !splits_a_group(at)).collect();
        Lazy {
            all,
            ends,
            built: AtomicUsize::new(0),
        }
    }

    fn chunk_of(&self, index: usize) -> Option<usize> {
        self.ends.iter().position(|&end| index < end)
    }
}

impl Candidates<usize> for Lazy {
    fn get(&self, index: usize) -> Option<&Candidate<usize>> {
        let chunk = self.chunk_of(index)?;
        self.built.fetch_max(chunk + 1, Ordering::Relaxed);
        self.all.get(index)
    }

    fn built(&self, index: usize) -> Option<&Candidate<usize>> {
        let chunk = self.chunk_of(index)?;
        (chunk < self.built.load(Ordering::Relaxed)).then(|| &self.all[index])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Candidates built only when the engine reaches them change nothing of what it does, and an answer without
    /// hedges leaves the chunks after the one that served unbuilt.
    #[test]
    fn candidates_built_when_reached_change_nothing(scenario in scenario()) {
        let lazy = Lazy::new(candidates(&scenario));
        let trace = trace_on(&scenario, &lazy);
        if let (Ok(served), false) =
            (&trace.result, scenario.candidates.iter().any(|c| c.hedge_after.is_some()))
        {
            prop_assert_eq!(lazy.built.load(Ordering::Relaxed), lazy.chunk_of(*served).unwrap() + 1);
        }
        prop_assert_eq!(trace, reference(&scenario));
    }

    /// The engine makes the same calls, in the same order, with the same result as the reference model:
    /// retries in place, another channel first, budget, hedges, breakers, stops.
    #[test]
    fn engine_matches_the_reference_model(scenario in scenario()) {
        prop_assert_eq!(engine_trace(&scenario), reference(&scenario));
    }

    /// After the commit point each later candidate is tried once, in order, whatever the failure.
    #[test]
    fn continuation_tries_each_candidate_once(scenario in scenario()) {
        let scripted = Scripted::new(&scenario);
        let list = candidates(&scenario);
        let result = paused(continue_on(&policy(&scenario), &list, &scripted));
        let calls = scripted.calls.lock().unwrap().clone();
        let mut expected = Vec::new();
        let mut served = None;
        let mut open: Vec<bool> = scenario.candidates.iter().map(|c| c.open).collect();
        for (i, spec) in scenario.candidates.iter().enumerate() {
            if open[i] {
                continue;
            }
            expected.push((i, 1));
            let reply = spec.replies.first().copied().unwrap_or(DEFAULT_REPLY);
            match reply.outcome {
                None => { served = Some(i); break; }
                Some(f) if f.class == FailureClass::TargetBroken => open[i] = true,
                Some(_) => {}
            }
        }
        prop_assert_eq!(calls, expected);
        prop_assert_eq!(result.as_ref().ok().map(|s| s.served_by), served);
        if let Ok(s) = result { s.attempt.finish(None); }
    }
}

fn ok(latency: u64) -> Reply {
    Reply {
        latency,
        outcome: None,
    }
}

fn fail(latency: u64, class: FailureClass) -> Reply {
    Reply {
        latency,
        outcome: Some(Failure { class, hint: None }),
    }
}

fn simple(replies: Vec<Reply>) -> Spec {
    Spec {
        replies,
        group: None,
        max_attempts: 3,
        hedge_after: None,
        stop_on_content_filter: false,
        open: false,
    }
}

#[test]
fn a_slow_primary_is_hedged_and_the_faster_answer_wins() {
    let scenario = Scenario {
        candidates: vec![
            Spec {
                hedge_after: Some(10),
                ..simple(vec![ok(101)])
            },
            simple(vec![ok(5)]),
        ],
        budget: 1,
        max_delay: MAX_DELAY,
    };
    let trace = engine_trace(&scenario);
    assert_eq!(trace.calls, vec![(0, 1), (1, 1)]);
    assert_eq!(trace.result, Ok(1));
}

#[test]
fn a_hedge_needs_the_budget() {
    let scenario = Scenario {
        candidates: vec![
            Spec {
                hedge_after: Some(10),
                ..simple(vec![ok(101)])
            },
            simple(vec![ok(5)]),
        ],
        budget: 0,
        max_delay: MAX_DELAY,
    };
    let trace = engine_trace(&scenario);
    assert_eq!(trace.calls, vec![(0, 1)]);
    assert_eq!(trace.result, Ok(0));
}

#[test]
fn another_channel_comes_before_a_retry_in_place() {
    let grouped = |replies| Spec {
        group: Some(0),
        ..simple(replies)
    };
    let scenario = Scenario {
        candidates: vec![
            grouped(vec![fail(1, FailureClass::Transient)]),
            grouped(vec![ok(1)]),
        ],
        budget: 3,
        max_delay: MAX_DELAY,
    };
    let trace = engine_trace(&scenario);
    assert_eq!(trace.calls, vec![(0, 1), (1, 1)]);
}

#[test]
fn a_caller_deadline_stops_the_walk() {
    struct Late(Scripted, Instant);
    impl Attempts for Late {
        type Target = usize;
        type Output = usize;
        type Error = Failure;
        fn call(
            &self,
            c: &Candidate<usize>,
            n: u32,
        ) -> impl Future<Output = Result<usize, Failure>> + Send {
            self.0.call(c, n)
        }
        fn classify(&self, e: &Failure) -> Verdict {
            self.0.classify(e)
        }
        fn record_failure(
            &self,
            c: &Candidate<usize>,
            a: Attempt,
            class: FailureClass,
            e: &Failure,
        ) {
            self.0.record_failure(c, a, class, e)
        }
        fn deadline(&self) -> Option<Instant> {
            Some(self.1)
        }
    }
    let scenario = Scenario {
        candidates: vec![simple(vec![ok(1001)]), simple(vec![ok(1)])],
        budget: 0,
        max_delay: MAX_DELAY,
    };
    let list = candidates(&scenario);
    let result = paused(async {
        let late = Late(
            Scripted::new(&scenario),
            Instant::now() + Duration::from_millis(500),
        );
        let result = run(&policy(&scenario), &list, &late).await;
        let calls = late.0.calls.lock().unwrap().clone();
        (result.err().map(|e| e.reason), calls)
    });
    assert_eq!(result, (Some(StopReason::Deadline), vec![(0, 1)]));
}
