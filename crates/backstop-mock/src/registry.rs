//! The live set of faults, shared by every request and the control API.
//!
//! Picking a fault is on the hot path of every request, so the set is a plain `Mutex` held only
//! for the few comparisons of one pick (never across an await), with an atomic "is empty" flag
//! that lets the healthy case skip the lock entirely. Windows are measured with
//! [`tokio::time::Instant`], so tests drive them with `tokio::time::pause` and `advance`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fault::{Fault, FaultKind, Mode, Route};

struct Entry {
    id: u64,
    fault: Fault,
    added: Instant,
    remaining: u64,
    applied: u64,
}

struct Inner {
    entries: Vec<Entry>,
    rng: SmallRng,
    next_id: u64,
}

/// The fault set: ordered, first applicable fault wins.
pub(crate) struct Faults {
    inner: Mutex<Inner>,
    empty: AtomicBool,
}

impl Faults {
    pub(crate) fn new(seed: u64, initial: Vec<Fault>, now: Instant) -> Self {
        let faults = Faults {
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                rng: SmallRng::seed_from_u64(seed),
                next_id: 1,
            }),
            empty: AtomicBool::new(true),
        };
        for fault in initial {
            faults.add(fault, now);
        }
        faults
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the entries half-updated in a way that
        // matters for a mock, so a poisoned lock is simply taken over.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a fault at the end of the list and returns its id.
    pub(crate) fn add(&self, fault: Fault, now: Instant) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let remaining = match fault.mode {
            Mode::Count(n) => n,
            Mode::Window { .. } | Mode::Always | Mode::Probability { .. } => 0,
        };
        inner.entries.push(Entry {
            id,
            fault,
            added: now,
            remaining,
            applied: 0,
        });
        self.empty.store(false, Ordering::Release);
        id
    }

    /// Removes every fault; returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut inner = self.lock();
        let n = inner.entries.len();
        inner.entries.clear();
        self.empty.store(true, Ordering::Release);
        n
    }

    /// The faults as the control API shows them: the script table plus `id`, `applied`, and
    /// `remaining` for count faults.
    pub(crate) fn list(&self) -> Vec<Value> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .map(|e| {
                let mut value = serde_json::to_value(&e.fault).unwrap_or_else(|_| json!({}));
                if let Value::Object(map) = &mut value {
                    map.insert("id".into(), json!(e.id));
                    map.insert("applied".into(), json!(e.applied));
                    if let Mode::Count(_) = e.fault.mode {
                        map.insert("remaining".into(), json!(e.remaining));
                    }
                }
                value
            })
            .collect()
    }

    /// The first fault that selects this request and fires now, if any; count faults are used
    /// up by it. `applicable` excludes kinds that make no sense for the request (a prefill fault
    /// on a request without prefill), which then neither fire nor use up a count.
    pub(crate) fn pick(
        &self,
        route: Route,
        model: &str,
        now: Instant,
        applicable: impl Fn(&FaultKind) -> bool,
    ) -> Option<FaultKind> {
        if self.empty.load(Ordering::Acquire) {
            return None;
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        for entry in inner.entries.iter_mut() {
            if !entry.fault.selector.matches(route, model) || !applicable(&entry.fault.kind) {
                continue;
            }
            let fires = match entry.fault.mode {
                Mode::Count(_) => {
                    let fires = entry.remaining > 0;
                    entry.remaining = entry.remaining.saturating_sub(1);
                    fires
                }
                Mode::Window { from, until } => {
                    let elapsed = now.saturating_duration_since(entry.added);
                    elapsed >= from && until.is_none_or(|u| elapsed < u)
                }
                Mode::Always => true,
                Mode::Probability { p } => inner.rng.random::<f64>() < p,
            };
            if fires {
                entry.applied += 1;
                return Some(entry.fault.kind.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn any(_: &FaultKind) -> bool {
        true
    }

    #[test]
    fn count_faults_fire_n_times_then_stop() {
        let t0 = Instant::now();
        let faults = Faults::new(0, vec![Fault::status(503).count(2)], t0);
        assert!(faults.pick(Route::Openai, "m", t0, any).is_some());
        assert!(faults.pick(Route::Anthropic, "m", t0, any).is_some());
        assert!(faults.pick(Route::Openai, "m", t0, any).is_none());
        let listed = faults.list();
        assert_eq!(listed[0]["remaining"], 0);
        assert_eq!(listed[0]["applied"], 2);
    }

    #[test]
    fn windows_are_relative_to_when_the_fault_was_added() {
        let t0 = Instant::now();
        let faults = Faults::new(0, vec![], t0);
        let window =
            Fault::status(503).window(Duration::from_secs(10), Some(Duration::from_secs(60)));
        faults.add(window, t0 + Duration::from_secs(5));
        assert!(faults
            .pick(Route::Openai, "m", t0 + Duration::from_secs(14), any)
            .is_none());
        assert!(faults
            .pick(Route::Openai, "m", t0 + Duration::from_secs(15), any)
            .is_some());
        assert!(faults
            .pick(Route::Openai, "m", t0 + Duration::from_secs(64), any)
            .is_some());
        assert!(faults
            .pick(Route::Openai, "m", t0 + Duration::from_secs(65), any)
            .is_none());
    }

    #[test]
    fn probability_is_reproducible_for_a_seed() {
        let run = |seed| {
            let t0 = Instant::now();
            let faults = Faults::new(seed, vec![Fault::status(500).probability(0.3)], t0);
            (0..1000)
                .map(|_| faults.pick(Route::Gemini, "m", t0, any).is_some())
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_ne!(a, run(43));
        let hits = a.iter().filter(|h| **h).count();
        assert!((230..370).contains(&hits), "{hits} hits of 1000 at p=0.3");
    }

    #[test]
    fn first_matching_fault_wins_and_selection_filters() {
        let t0 = Instant::now();
        let faults = Faults::new(
            0,
            vec![
                Fault::status(429).route(Route::Anthropic),
                Fault::status(500).model("gpt-*"),
                Fault::status(502),
            ],
            t0,
        );
        let status = |route, model: &str| match faults.pick(route, model, t0, any) {
            Some(FaultKind::Status { status, .. }) => status,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(status(Route::Anthropic, "gpt-4o"), 429);
        assert_eq!(status(Route::Openai, "gpt-4o"), 500);
        assert_eq!(status(Route::Openai, "o3"), 502);
        assert_eq!(faults.clear(), 3);
        assert!(faults.pick(Route::Openai, "o3", t0, any).is_none());
    }

    #[test]
    fn inapplicable_faults_do_not_use_up_their_count() {
        let t0 = Instant::now();
        let faults = Faults::new(0, vec![Fault::new(FaultKind::RejectPrefill).count(1)], t0);
        let no_prefill = |k: &FaultKind| !matches!(k, FaultKind::RejectPrefill);
        assert!(faults.pick(Route::Anthropic, "m", t0, no_prefill).is_none());
        assert_eq!(
            faults.pick(Route::Anthropic, "m", t0, any),
            Some(FaultKind::RejectPrefill)
        );
    }
}
