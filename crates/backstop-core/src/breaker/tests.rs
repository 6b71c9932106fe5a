use super::*;
use proptest::prelude::*;
use std::sync::Mutex as StdMutex;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        failure_rate: 0.5,
        window: secs(10),
        min_calls: 4,
        open_for: secs(5),
        half_open_probes: 1,
        success_threshold: 2,
    }
}

fn fail(b: &Breaker, class: FailureClass) {
    b.try_acquire().unwrap().record_failure(class);
}

fn succeed(b: &Breaker) {
    b.try_acquire().unwrap().record_success();
}

type Event = (String, BreakerState, BreakerState, Option<TripReason>);

#[derive(Default)]
struct Recorder(StdMutex<Vec<Event>>);

impl Observer for Recorder {
    fn breaker_transition(
        &self,
        target: &str,
        from: BreakerState,
        to: BreakerState,
        reason: Option<&TripReason>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push((target.to_owned(), from, to, reason.cloned()));
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_and_success_resets() {
    let b = Breaker::new(BreakerConfig {
        min_calls: 100,
        ..config()
    });
    fail(&b, FailureClass::Transient);
    fail(&b, FailureClass::Unavailable);
    succeed(&b);
    fail(&b, FailureClass::Transient);
    fail(&b, FailureClass::Transient);
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b, FailureClass::Transient);
    assert_eq!(b.state(), BreakerState::Open);
    let snap = b.snapshot();
    assert_eq!(snap.last_trip, Some(TripReason::ConsecutiveFailures(3)));
    assert_eq!(snap.reopens_at, Some(Instant::now() + secs(5)));
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_at, Instant::now() + secs(5));
    assert_eq!(rejected.state, BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_opens_after_min_calls() {
    let b = Breaker::new(BreakerConfig {
        failure_threshold: 0,
        ..config()
    });
    succeed(&b);
    fail(&b, FailureClass::Transient);
    succeed(&b);
    assert_eq!(b.state(), BreakerState::Closed, "below min_calls");
    fail(&b, FailureClass::Transient);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.snapshot().last_trip,
        Some(TripReason::FailureRate {
            rate: 0.5,
            calls: 4
        })
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_forgets_old_calls() {
    let b = Breaker::new(BreakerConfig {
        failure_threshold: 0,
        ..config()
    });
    fail(&b, FailureClass::Transient);
    fail(&b, FailureClass::Transient);
    tokio::time::advance(secs(11)).await;
    succeed(&b);
    succeed(&b);
    fail(&b, FailureClass::Transient);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "the old failures left the window"
    );
    let snap = b.snapshot();
    assert_eq!((snap.window_calls, snap.window_failures), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn target_broken_opens_at_once_with_detail() {
    let rec = Arc::new(Recorder::default());
    let b = Breaker::new_with_observer("openai/gpt-4o", config(), rec.clone());
    b.try_acquire()
        .unwrap()
        .record_target_broken("401 invalid_api_key");
    assert_eq!(b.state(), BreakerState::Open);
    let events = rec.0.lock().unwrap().clone();
    assert_eq!(
        events,
        [(
            "openai/gpt-4o".to_owned(),
            BreakerState::Closed,
            BreakerState::Open,
            Some(TripReason::TargetBroken("401 invalid_api_key".into()))
        )]
    );
    assert_eq!(
        TripReason::TargetBroken("401 invalid_api_key".into()).to_string(),
        "target broken: 401 invalid_api_key"
    );
}

#[tokio::test(start_paused = true)]
async fn request_faults_do_not_count() {
    let b = Breaker::new(config());
    for class in [
        FailureClass::ContextLength,
        FailureClass::ContentFilter,
        FailureClass::Permanent,
    ] {
        for _ in 0..10 {
            fail(&b, class);
        }
    }
    let snap = b.snapshot();
    assert_eq!(snap.state, BreakerState::Closed);
    assert_eq!((snap.window_calls, snap.window_failures), (30, 0));
}

#[tokio::test(start_paused = true)]
async fn half_open_then_closed_after_successes() {
    let rec = Arc::new(Recorder::default());
    let b = Breaker::new_with_observer("t", config(), rec.clone());
    b.force_open(Some(secs(5)));
    tokio::time::advance(secs(5)).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p = b.try_acquire().unwrap();
    assert!(p.is_probe());
    p.record_success();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    succeed(&b);
    assert_eq!(b.state(), BreakerState::Closed);
    let to: Vec<BreakerState> = rec.0.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(
        to,
        [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_probe_failure_reopens() {
    let b = Breaker::new(config());
    b.force_open(Some(secs(1)));
    tokio::time::advance(secs(1)).await;
    fail(&b, FailureClass::Transient);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.snapshot().last_trip,
        Some(TripReason::HalfOpenProbeFailed)
    );
    assert_eq!(b.snapshot().reopens_at, Some(Instant::now() + secs(5)));
}

#[tokio::test(start_paused = true)]
async fn half_open_probe_limit_and_release_on_drop() {
    let b = Breaker::new(BreakerConfig {
        half_open_probes: 2,
        ..config()
    });
    b.force_open(Some(secs(1)));
    tokio::time::advance(secs(1)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.state, BreakerState::HalfOpen);
    assert_eq!(r.retry_at, Instant::now());
    assert_eq!(b.snapshot().half_open_in_flight, 2);
    drop(p1);
    assert_eq!(b.snapshot().half_open_in_flight, 1);
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    p2.record_success();
    p3.record_success();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_without_limit_stays_open() {
    let b = Breaker::new(config());
    b.force_open(None);
    tokio::time::advance(secs(3600)).await;
    assert_eq!(b.state(), BreakerState::Open);
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.retry_at, Instant::now() + secs(5));
    assert_eq!(b.snapshot().reopens_at, None);
    assert_eq!(b.snapshot().last_trip, Some(TripReason::Forced));
    b.force_close();
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn stale_permits_are_ignored() {
    let b = Breaker::new(config());
    let old = b.try_acquire().unwrap();
    b.force_open(Some(secs(1)));
    tokio::time::advance(secs(1)).await;
    old.record_success();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.snapshot().half_open_in_flight, 0);
    let early = b.try_acquire().unwrap();
    b.force_close();
    early.record_failure(FailureClass::TargetBroken);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn state_names_and_gauges() {
    assert_eq!(BreakerState::Closed.as_gauge(), 0);
    assert_eq!(BreakerState::HalfOpen.as_gauge(), 1);
    assert_eq!(BreakerState::Open.as_gauge(), 2);
    assert_eq!(BreakerState::HalfOpen.to_string(), "half_open");
    let r = TripReason::FailureRate {
        rate: 0.55,
        calls: 20,
    };
    assert_eq!(r.to_string(), "failure rate 55% over 20 calls");
}

/// A small seeded generator (splitmix64), so that the traffic below is the same on every run.
struct Seeded(u64);

impl Seeded {
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Sends `rate` calls per second for `secs` seconds of paused time, each failing (transient) with probability `p`.
/// Returns the longest run of consecutive failures recorded, stopping early if the breaker refuses a call.
async fn traffic(b: &Breaker, rng: &mut Seeded, rate: u64, secs: u64, p: f64) -> u32 {
    let (mut run, mut longest) = (0, 0);
    for _ in 0..rate * secs {
        let Ok(permit) = b.try_acquire() else {
            return longest;
        };
        if rng.chance(p) {
            permit.record_failure(FailureClass::Transient);
            run += 1;
            longest = longest.max(run);
        } else {
            permit.record_success();
            run = 0;
        }
        tokio::time::advance(Duration::from_micros(1_000_000 / rate)).await;
    }
    longest
}

#[test]
fn the_run_that_opens_grows_with_the_log_of_the_volume() {
    let d = BreakerConfig::default();
    let runs: Vec<Option<u32>> = [0, 20, 21, 40, 41, 80, 81, 160, 161, 6_000, 1 << 40]
        .into_iter()
        .map(|calls| d.consecutive_threshold(calls))
        .collect();
    let expected = [5, 5, 6, 6, 7, 7, 8, 8, 9, 14, 41].map(Some);
    assert_eq!(runs, expected);
    let third = BreakerConfig {
        failure_rate: 1.0 / 3.0,
        ..d.clone()
    };
    assert_eq!(third.consecutive_threshold(60), Some(6));
    assert_eq!(third.consecutive_threshold(180), Some(7));
    for rate_off in [0.0, 1.0, 1.5] {
        let fixed = BreakerConfig {
            failure_rate: rate_off,
            ..d.clone()
        };
        assert_eq!(fixed.consecutive_threshold(1_000_000), Some(5));
    }
    let off = BreakerConfig {
        failure_threshold: 0,
        ..d
    };
    assert_eq!(off.consecutive_threshold(10), None);
}

#[tokio::test(start_paused = true)]
async fn the_default_breaker_keeps_a_30_percent_failing_target_at_200_calls_per_second() {
    for seed in 0..5 {
        let b = Breaker::new(BreakerConfig::default());
        let mut rng = Seeded(seed);
        let longest = traffic(&b, &mut rng, 200, 60, 0.3).await;
        let snap = b.snapshot();
        assert_eq!(
            (snap.state, snap.trips),
            (BreakerState::Closed, 0),
            "seed {seed}: opened on chance ({:?})",
            snap.last_trip
        );
        // A fixed run of 5 would have opened it: runs that long come every few seconds.
        assert!(longest >= 5, "seed {seed}: longest run {longest}");
        assert_eq!(snap.consecutive_threshold, Some(14));
        assert!(snap.error_rate > 0.25 && snap.error_rate < 0.35);
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_breaker_opens_at_once_when_a_busy_target_dies() {
    let b = Breaker::new(BreakerConfig::default());
    let mut rng = Seeded(7);
    traffic(&b, &mut rng, 200, 30, 0.3).await;
    assert_eq!(b.state(), BreakerState::Closed);
    let started = Instant::now();
    traffic(&b, &mut rng, 200, 30, 1.0).await;
    assert_eq!(b.state(), BreakerState::Open);
    let snap = b.snapshot();
    assert_eq!(snap.last_trip, Some(TripReason::ConsecutiveFailures(14)));
    let opened_after = snap.opened_at.unwrap() - started;
    assert!(
        opened_after < Duration::from_millis(100),
        "opened after {opened_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_target_failing_most_calls_opens_within_the_window() {
    let b = Breaker::new(BreakerConfig::default());
    let mut rng = Seeded(11);
    traffic(&b, &mut rng, 200, 30, 0.1).await;
    let started = Instant::now();
    traffic(&b, &mut rng, 200, 30, 0.7).await;
    assert_eq!(b.state(), BreakerState::Open);
    assert!(b.snapshot().opened_at.unwrap() - started < secs(30));
}

#[tokio::test(start_paused = true)]
async fn without_the_run_rule_a_dead_busy_target_opens_on_its_failure_rate_within_the_window() {
    let b = Breaker::new(BreakerConfig {
        failure_threshold: 0,
        ..BreakerConfig::default()
    });
    let mut rng = Seeded(3);
    traffic(&b, &mut rng, 200, 30, 0.0).await;
    let started = Instant::now();
    traffic(&b, &mut rng, 200, 30, 1.0).await;
    let snap = b.snapshot();
    assert_eq!(snap.state, BreakerState::Open);
    assert!(matches!(
        snap.last_trip,
        Some(TripReason::FailureRate { rate, .. }) if rate >= 0.5
    ));
    let opened_after = snap.opened_at.unwrap() - started;
    assert!(
        opened_after > secs(10) && opened_after < secs(30),
        "opened after {opened_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn at_low_traffic_five_consecutive_failures_open_the_default_breaker() {
    let b = Breaker::new(BreakerConfig::default());
    for _ in 0..4 {
        fail(&b, FailureClass::Transient);
        tokio::time::advance(secs(2)).await;
    }
    succeed(&b);
    for _ in 0..4 {
        fail(&b, FailureClass::Unavailable);
        tokio::time::advance(secs(2)).await;
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.snapshot().consecutive_threshold, Some(5));
    fail(&b, FailureClass::Transient);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.snapshot().last_trip,
        Some(TripReason::ConsecutiveFailures(5))
    );
}

// ---- the state machine against a simple reference model ----

#[derive(Clone, Copy, Debug)]
enum Op {
    Call(Option<FailureClass>),
    Advance(u64),
    ForceOpen(Option<u64>),
    ForceClose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![
            Just(None),
            Just(Some(FailureClass::Transient)),
            Just(Some(FailureClass::Transient)),
            Just(Some(FailureClass::Unavailable)),
            Just(Some(FailureClass::TargetBroken)),
            Just(Some(FailureClass::Permanent)),
            Just(Some(FailureClass::ContextLength)),
        ].prop_map(Op::Call),
        3 => (0u64..8_000).prop_map(Op::Advance),
        1 => proptest::option::of(1u64..10).prop_map(Op::ForceOpen),
        1 => Just(Op::ForceClose),
    ]
}

#[derive(Debug)]
enum MState {
    Closed,
    Open(Option<Instant>),
    HalfOpen(u32),
}

/// The breaker's rules, written as plainly as possible: a list of calls instead of a ring.
struct Model {
    cfg: BreakerConfig,
    start: Instant,
    state: MState,
    consecutive: u32,
    calls: Vec<(u128, bool)>,
}

impl Model {
    fn slot(&self, now: Instant) -> u128 {
        (now - self.start).as_nanos() / (self.cfg.window / 10).as_nanos()
    }

    fn refresh(&mut self, now: Instant) {
        if let MState::Open(Some(until)) = self.state {
            if now >= until {
                self.state = MState::HalfOpen(0);
            }
        }
    }

    fn open(&mut self, until: Option<Instant>) {
        self.state = MState::Open(until);
        self.consecutive = 0;
        self.calls.clear();
    }

    fn close(&mut self) {
        self.state = MState::Closed;
        self.consecutive = 0;
        self.calls.clear();
    }

    fn call(&mut self, now: Instant, class: Option<FailureClass>) -> bool {
        self.refresh(now);
        let reopen = Some(now + self.cfg.open_for);
        let bad = class.is_some_and(|c| c.is_target_failure());
        let broken = class == Some(FailureClass::TargetBroken);
        match self.state {
            MState::Open(_) => return false,
            MState::HalfOpen(successes) => {
                if bad {
                    self.open(reopen);
                } else if successes + 1 >= self.cfg.success_threshold {
                    self.close();
                } else {
                    self.state = MState::HalfOpen(successes + 1);
                }
            }
            MState::Closed if broken => self.open(reopen),
            MState::Closed => {
                let slot = self.slot(now);
                self.calls.push((slot, bad));
                self.consecutive = if bad { self.consecutive + 1 } else { 0 };
                let recent: Vec<bool> = self
                    .calls
                    .iter()
                    .filter(|(s, _)| slot - s < 10)
                    .map(|c| c.1)
                    .collect();
                let failures = recent.iter().filter(|b| **b).count() as f64;
                let tripped = self.consecutive >= self.run_needed(recent.len())
                    || (recent.len() as u32 >= self.cfg.min_calls
                        && failures / recent.len() as f64 >= self.cfg.failure_rate);
                if bad && tripped {
                    self.open(reopen);
                }
            }
        }
        true
    }

    /// The run that opens it with `calls` in the window: one more failure each time the calls pass
    /// `min_calls` times another power of `1 / failure_rate` (the test config uses a rate of 1/2).
    fn run_needed(&self, calls: usize) -> u32 {
        assert_eq!(self.cfg.failure_rate, 0.5);
        let mut run = self.cfg.failure_threshold;
        let mut volume = self.cfg.min_calls as usize;
        while calls > volume {
            volume *= 2;
            run += 1;
        }
        run
    }

    fn state(&mut self, now: Instant) -> BreakerState {
        self.refresh(now);
        match self.state {
            MState::Closed => BreakerState::Closed,
            MState::Open(_) => BreakerState::Open,
            MState::HalfOpen(_) => BreakerState::HalfOpen,
        }
    }
}

/// Plays `ops` on a breaker and on the model, comparing them after every step.
fn check_against_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let b = Breaker::new(config());
        let mut m = Model {
            cfg: config(),
            start: Instant::now(),
            state: MState::Closed,
            consecutive: 0,
            calls: Vec::new(),
        };
        for (i, op) in ops.into_iter().enumerate() {
            let now = Instant::now();
            match op {
                Op::Call(class) => {
                    let allowed = m.call(now, class);
                    match b.try_acquire() {
                        Ok(p) => {
                            prop_assert!(
                                allowed,
                                "step {}: breaker allowed a call the model refused",
                                i
                            );
                            match class {
                                None => p.record_success(),
                                Some(c) => p.record_failure(c),
                            }
                        }
                        Err(_) => prop_assert!(
                            !allowed,
                            "step {}: breaker refused a call the model allowed",
                            i
                        ),
                    }
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::ForceOpen(s) => {
                    m.open(s.map(|s| now + secs(s)));
                    b.force_open(s.map(secs));
                }
                Op::ForceClose => {
                    m.close();
                    b.force_close();
                }
            }
            let now = Instant::now();
            prop_assert_eq!(b.state(), m.state(now), "step {}", i);
            let snap = b.snapshot();
            prop_assert_eq!(snap.consecutive_failures, m.consecutive, "step {}", i);
        }
        Ok(())
    })
}

/// Busy traffic: many calls, a minority of them failing, short pauses, so that the window fills up and runs of
/// failures meet a scaled threshold.
fn busy_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => prop_oneof![
            3 => Just(None),
            2 => Just(Some(FailureClass::Transient)),
        ].prop_map(Op::Call),
        1 => (0u64..1_500).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn matches_reference_model(ops in proptest::collection::vec(op(), 1..150)) {
        check_against_model(ops)?;
    }

    #[test]
    fn matches_reference_model_under_busy_traffic(ops in proptest::collection::vec(busy_op(), 1..400)) {
        check_against_model(ops)?;
    }
}
