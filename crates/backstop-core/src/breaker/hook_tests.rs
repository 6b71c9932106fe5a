//! The hook, adopted transitions, holds and the probe gate, on paused time.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;

#[derive(Default)]
struct Shared {
    events: StdMutex<Vec<BreakerEvent>>,
    deny_probes: AtomicBool,
}

impl BreakerHook for Shared {
    fn changed(&self, _target: &str, event: &BreakerEvent) {
        self.events.lock().unwrap().push(event.clone());
    }

    fn allow_probe(&self, _target: &str) -> bool {
        !self.deny_probes.load(Ordering::Relaxed)
    }
}

fn breaker_with_hook() -> (Breaker, Arc<Shared>) {
    let breaker = Breaker::new(BreakerConfig {
        failure_threshold: 2,
        open_for: Duration::from_secs(10),
        success_threshold: 1,
        ..BreakerConfig::default()
    });
    let hook = Arc::new(Shared::default());
    assert!(breaker.attach_hook(hook.clone()));
    (breaker, hook)
}

fn fail(b: &Breaker) {
    b.try_acquire()
        .unwrap()
        .record_failure(FailureClass::Transient);
}

#[tokio::test(start_paused = true)]
async fn own_transitions_reach_the_hook_and_adopted_ones_do_not() {
    let (breaker, hook) = breaker_with_hook();
    fail(&breaker);
    fail(&breaker);
    let events = hook.events.lock().unwrap().clone();
    assert!(matches!(
        events.as_slice(),
        [BreakerEvent::Opened {
            reason: TripReason::ConsecutiveFailures(2),
            until: Some(_)
        }]
    ));

    breaker.adopt(&BreakerEvent::Closed { forced: true });
    assert_eq!(breaker.state(), BreakerState::Closed);
    let until = Instant::now() + Duration::from_secs(5);
    breaker.adopt(&BreakerEvent::Opened {
        until: Some(until),
        reason: TripReason::Forced,
    });
    assert_eq!(breaker.snapshot().reopens_at, Some(until));
    assert_eq!(
        hook.events.lock().unwrap().len(),
        1,
        "adopted changes are not echoed"
    );

    breaker.force_close();
    assert_eq!(
        hook.events.lock().unwrap().last(),
        Some(&BreakerEvent::Closed { forced: true })
    );
}

#[tokio::test(start_paused = true)]
async fn an_adopted_open_already_over_half_opens_at_once() {
    let (breaker, _) = breaker_with_hook();
    breaker.adopt(&BreakerEvent::Opened {
        until: Some(Instant::now()),
        reason: TripReason::HalfOpenProbeFailed,
    });
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn a_hold_refuses_calls_until_it_ends_without_opening() {
    let (breaker, hook) = breaker_with_hook();
    breaker.hold_for(Duration::from_secs(5));
    breaker.hold_for(Duration::from_secs(1));
    let refused = breaker.try_acquire().unwrap_err();
    assert_eq!(
        refused.retry_at,
        Instant::now() + Duration::from_secs(5),
        "the longer hold stays"
    );
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(
        hook.events.lock().unwrap().len(),
        1,
        "only the hold that changed anything is shared"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(breaker.try_acquire().is_ok());
    assert_eq!(breaker.snapshot().held_until, None);
}

#[tokio::test(start_paused = true)]
async fn a_hold_lasts_at_most_an_hour_whatever_the_hint() {
    let (breaker, _hook) = breaker_with_hook();
    breaker.hold_for(Duration::from_secs(86_400 * 365));
    let refused = breaker.try_acquire().unwrap_err();
    assert_eq!(refused.retry_at, Instant::now() + MAX_HOLD);
    tokio::time::advance(MAX_HOLD).await;
    assert!(breaker.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_forced_close_ends_a_hold_here_and_where_it_is_adopted() {
    let (breaker, hook) = breaker_with_hook();
    breaker.hold_for(Duration::from_secs(60));
    assert!(breaker.try_acquire().is_err());
    breaker.force_close();
    assert!(
        breaker.try_acquire().is_ok(),
        "the operator's close ends the hold"
    );
    assert_eq!(breaker.snapshot().held_until, None);
    let events = hook.events.lock().unwrap().clone();
    assert_eq!(events.last(), Some(&BreakerEvent::Closed { forced: true }));

    let (replica, _hook) = breaker_with_hook();
    replica.adopt(&events[0]);
    assert!(replica.try_acquire().is_err(), "the hold was adopted");
    replica.adopt(&events[1]);
    assert!(replica.try_acquire().is_ok(), "and so was its end");
}

#[tokio::test(start_paused = true)]
async fn a_closed_breaker_without_a_hold_shares_nothing_when_closed_again() {
    let (breaker, hook) = breaker_with_hook();
    breaker.force_close();
    assert!(hook.events.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_probe_gate_keeps_a_half_open_breaker_skipping() {
    let (breaker, hook) = breaker_with_hook();
    fail(&breaker);
    fail(&breaker);
    tokio::time::advance(Duration::from_secs(10)).await;
    hook.deny_probes.store(true, Ordering::Relaxed);
    let refused = breaker.try_acquire().unwrap_err();
    assert_eq!(refused.state, BreakerState::HalfOpen);
    hook.deny_probes.store(false, Ordering::Relaxed);
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    probe.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}
