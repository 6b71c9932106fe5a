//! Keeps the breakers, holds and capabilities of this process in step with the store.
//!
//! Local transitions arrive through the [`BreakerHook`] and go to the background [`Writer`]; what other replicas
//! wrote (or this process before a restart) comes from the change feed and a periodic resync, and is applied
//! with [`Breaker::adopt`]. A breaker record is applied only if it is newer than the last one seen for the target
//! (last writer wins), and never if this replica wrote it.
//!
//! Faults injected by an operator are shared the same way (`fault:{target}`): [`Targets::share_fault`] writes
//! them, and the sink set with [`Targets::on_fault`] applies those of the other replicas.
//!
//! With a shared backend the hook also gates half-open probes: the first replica to claim the lease
//! `lease:{target}` probes, the others keep skipping the target until the probe's result arrives (or the lease
//! expires). Claiming is asynchronous, so the request that starts it skips the target too; with the store down the
//! replica probes on its own.

use crate::record::{now_ms, Change, Entry};
use crate::records::{
    to_instant, to_wall, BreakerRecord, CapabilityRecord, FaultRecord, HoldRecord,
};
use crate::writer::Writer;
use crate::Store;
use backstop_core::{Breaker, BreakerEvent, BreakerHook};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::time::Instant;

/// How long breaker and capability records are kept after their last change.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the first read of the faults in the store may take.
const FAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a cleared fault's record is kept, so that every replica sees the clearing.
const CLEARED_TTL: Duration = Duration::from_secs(60);

/// Applies the faults other replicas' operators injected: `(target, fault, until)`, the fault
/// `None` once cleared.
pub type FaultSink = Arc<dyn Fn(&str, Option<&serde_json::Value>, Instant) + Send + Sync>;

/// How often a replica that lost the probe lease asks again.
const LEASE_RECHECK: Duration = Duration::from_secs(1);

/// One registered target.
struct Target {
    breaker: Breaker,
    capabilities: Vec<(String, Arc<AtomicBool>)>,
    /// The time of the newest breaker record applied or written.
    last_at: u64,
    /// The replica behind the last open, if open.
    opened_by: Option<String>,
    lease: Lease,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lease {
    None,
    Asking,
    Mine,
    Theirs { recheck_at: u64 },
}

/// The targets of this process, shared with the store.
pub struct Targets {
    store: Arc<Store>,
    writer: Writer,
    runtime: Handle,
    lease_ttl: Duration,
    targets: Arc<Mutex<HashMap<String, Target>>>,
    /// Records that arrived before their target was registered, applied at registration.
    early: Mutex<HashMap<String, String>>,
    faults: Mutex<Option<FaultSink>>,
}

impl Targets {
    pub(crate) fn new(store: Arc<Store>, writer: Writer, lease_ttl: Duration) -> Arc<Targets> {
        Arc::new(Targets {
            store,
            writer,
            runtime: Handle::current(),
            lease_ttl,
            targets: Arc::new(Mutex::new(HashMap::new())),
            early: Mutex::new(HashMap::new()),
            faults: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Target>> {
        lock(&self.targets)
    }

    /// Shares `breaker` (named by its target) and the capability flags of that target; records already in the
    /// store are applied at once.
    pub fn register(
        self: &Arc<Self>,
        breaker: &Breaker,
        capabilities: Vec<(String, Arc<AtomicBool>)>,
    ) {
        let name = breaker.name().to_string();
        let hook: Arc<dyn BreakerHook> = self.clone();
        breaker.attach_hook(hook);
        self.lock().insert(
            name.clone(),
            Target {
                breaker: breaker.clone(),
                capabilities,
                last_at: 0,
                opened_by: None,
                lease: Lease::None,
            },
        );
        let early: Vec<(String, String)> = {
            let early = self.early.lock().unwrap_or_else(|p| p.into_inner());
            early
                .iter()
                .filter(|(key, _)| target_of(key).is_some_and(|(_, t)| t == name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for (key, value) in early {
            self.apply(&key, &value, true);
        }
    }

    /// Which replica opened the breaker of `target`, while it is open (`None`: closed, or opened here before any
    /// record).
    pub fn opened_by(&self, target: &str) -> Option<String> {
        self.lock().get(target).and_then(|t| t.opened_by.clone())
    }

    /// Records that `target` has the capability flag `name` set (it learned it here).
    pub fn learned(&self, target: &str, name: &str) {
        let record = CapabilityRecord {
            replica: self.store.replica().to_string(),
        };
        self.write(format!("cap:{target}:{name}"), &record, Some(RECORD_TTL));
    }

    /// Shares a fault injected into `target` until `until` (`None`: the target's fault was
    /// cleared) with the other replicas.
    pub fn share_fault(&self, target: &str, fault: Option<serde_json::Value>, until: Instant) {
        let ttl = match fault {
            Some(_) => until.saturating_duration_since(Instant::now()),
            None => CLEARED_TTL,
        };
        let record = FaultRecord {
            fault,
            until: to_wall(until),
            replica: self.store.replica().to_string(),
        };
        self.write(
            format!("fault:{target}"),
            &record,
            Some(ttl.max(Duration::from_millis(1))),
        );
    }

    /// Sets where the faults of other replicas are applied, and applies those the store holds
    /// (a restart keeps an operator's fault for the rest of its time).
    pub fn on_fault(self: &Arc<Self>, sink: FaultSink) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        let targets = self.clone();
        self.runtime.spawn(async move {
            if let Ok(records) = targets.store.scan("fault:", FAULT_LOAD_TIMEOUT).await {
                for (key, value) in records {
                    targets.apply(&key, &value, true);
                }
            }
        });
    }

    fn apply_fault(&self, target: &str, value: &str, force: bool) {
        let Ok(record) = serde_json::from_str::<FaultRecord>(value) else {
            return;
        };
        if record.replica == self.store.replica() && !force {
            return;
        }
        let sink = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(sink) = sink {
            sink(target, record.fault.as_ref(), to_instant(record.until));
        }
    }

    fn write(&self, key: String, record: &impl serde::Serialize, ttl: Option<Duration>) {
        if let Ok(value) = serde_json::to_string(record) {
            self.writer.send(key, Entry { value, ttl });
        }
    }

    /// Applies one record read from the store (`force`: even one this replica wrote, as after a restart).
    pub(crate) fn apply(&self, key: &str, value: &str, force: bool) {
        let Some((kind, name)) = target_of(key) else {
            return;
        };
        if kind == "fault" {
            return self.apply_fault(name, value, force);
        }
        let mut targets = self.lock();
        let Some(target) = targets.get_mut(name) else {
            drop(targets);
            let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
            if early.len() < 10_000 {
                early.insert(key.to_string(), value.to_string());
            }
            return;
        };
        let me = self.store.replica();
        match kind {
            "breaker" => {
                let Ok(record) = serde_json::from_str::<BreakerRecord>(value) else {
                    return;
                };
                if record.at <= target.last_at || (record.replica == me && !force) {
                    return;
                }
                target.last_at = record.at;
                target.opened_by = (record.state == "open").then(|| record.replica.clone());
                target.lease = Lease::None;
                let breaker = target.breaker.clone();
                drop(targets);
                breaker.adopt(&record.event());
            }
            "hold" => {
                let Ok(record) = serde_json::from_str::<HoldRecord>(value) else {
                    return;
                };
                if record.replica != me || force {
                    let breaker = target.breaker.clone();
                    drop(targets);
                    breaker.adopt(&BreakerEvent::Held {
                        until: to_instant(record.until),
                    });
                }
            }
            "cap" => {
                let flag = name_after_target(key, name);
                for (cap, set) in &target.capabilities {
                    if Some(cap.as_str()) == flag {
                        set.store(true, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies a change from the feed.
    pub(crate) fn apply_change(&self, change: &Change) {
        if change.origin == self.store.replica() {
            return;
        }
        if let (Some(key), Some(value)) = (self.store.local_key(&change.key), &change.value) {
            self.apply(key, value, false);
        }
    }

    fn claim_lease(&self, name: &str) {
        let store = self.store.clone();
        let targets = self.targets.clone();
        let ttl = self.lease_ttl;
        let name = name.to_string();
        self.runtime.spawn(async move {
            let entry = Entry {
                value: store.replica().to_string(),
                ttl: Some(ttl),
            };
            let lease = match store.claim(&format!("lease:{name}"), entry).await {
                Ok(true) | Err(_) => Lease::Mine,
                Ok(false) => Lease::Theirs {
                    recheck_at: now_ms() + LEASE_RECHECK.as_millis() as u64,
                },
            };
            if let Some(target) = lock(&targets).get_mut(&name) {
                if target.lease == Lease::Asking {
                    target.lease = lease;
                }
            }
        });
    }

    fn release_lease(&self, name: &str) {
        let store = self.store.clone();
        let key = format!("lease:{name}");
        self.runtime.spawn(async move {
            let _ = store.release(&key, store.replica()).await;
        });
    }
}

impl BreakerHook for Targets {
    fn changed(&self, name: &str, event: &BreakerEvent) {
        let me = self.store.replica().to_string();
        if let BreakerEvent::Held { until } = event {
            let record = HoldRecord {
                until: to_wall(*until),
                replica: me,
            };
            let ttl = Duration::from_millis(record.until.saturating_sub(now_ms()).max(1));
            self.write(format!("hold:{name}"), &record, Some(ttl));
            return;
        }
        let Some(record) = BreakerRecord::of(event, &me) else {
            return;
        };
        if *event == (BreakerEvent::Closed { forced: true }) {
            let ended = HoldRecord {
                until: now_ms(),
                replica: me.clone(),
            };
            self.write(format!("hold:{name}"), &ended, Some(Duration::from_secs(1)));
        }
        let had_lease = {
            let mut targets = self.lock();
            let Some(target) = targets.get_mut(name) else {
                return;
            };
            target.last_at = target.last_at.max(record.at);
            target.opened_by = (record.state == "open").then(|| me.clone());
            std::mem::replace(&mut target.lease, Lease::None) == Lease::Mine
        };
        self.write(format!("breaker:{name}"), &record, Some(RECORD_TTL));
        if had_lease {
            self.release_lease(name);
        }
    }

    fn allow_probe(&self, name: &str) -> bool {
        if !self.store.is_shared() {
            return true;
        }
        let mut targets = self.lock();
        let Some(target) = targets.get_mut(name) else {
            return true;
        };
        match target.lease {
            Lease::Mine => true,
            Lease::Asking => false,
            Lease::Theirs { recheck_at } if now_ms() < recheck_at => false,
            Lease::None | Lease::Theirs { .. } => {
                target.lease = Lease::Asking;
                drop(targets);
                self.claim_lease(name);
                false
            }
        }
    }
}

fn lock(targets: &Mutex<HashMap<String, Target>>) -> MutexGuard<'_, HashMap<String, Target>> {
    targets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The kinds of records about targets: the key prefixes a resync reads. The store holds other
/// kinds too (cached answers, idempotency records), which are no business of the targets.
pub(crate) const TARGET_KINDS: [&str; 4] = ["breaker", "hold", "cap", "fault"];

/// `(kind, target)` of a key such as `breaker:openai/gpt-4o` or `cap:openai/gpt-4o:prefill_rejected`;
/// `None` for a key that is not about a target.
fn target_of(key: &str) -> Option<(&str, &str)> {
    let (kind, rest) = key.split_once(':')?;
    match kind {
        "cap" => Some((kind, rest.rsplit_once(':')?.0)),
        "breaker" | "hold" | "fault" => Some((kind, rest)),
        _ => None,
    }
}

/// The capability name of a `cap:` key.
fn name_after_target<'a>(key: &'a str, target: &str) -> Option<&'a str> {
    key.strip_prefix("cap:")?
        .strip_prefix(target)?
        .strip_prefix(':')
}
