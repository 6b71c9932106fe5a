//! The in-memory backend: a map in this process, for tests and throwaway runs.

use crate::record::{now_ms, Change, Entry};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How often a write also drops the records that have expired (a read never sees them either way): a
/// pass over every record on each write would cost a write time in proportion to the records kept.
const PURGE_EVERY_MS: u64 = 1_000;

/// Records in a map, each with its expiry in Unix milliseconds.
#[derive(Default)]
pub struct Memory {
    records: Mutex<HashMap<String, (String, Option<u64>)>>,
    /// When a write next drops the expired records, in Unix milliseconds.
    next_purge_ms: AtomicU64,
    /// The durable queue's jobs (durable here only as long as the process).
    pub(crate) jobs: super::queue_memory::MemoryJobs,
}

fn live(expires: Option<u64>, now: u64) -> bool {
    expires.is_none_or(|at| at > now)
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Option<u64>)>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn put_many(&self, entries: &[(String, Entry)], origin: &str) -> Vec<Change> {
        let mut records = self.lock();
        let now = now_ms();
        if now >= self.next_purge_ms.load(Ordering::Relaxed) {
            self.next_purge_ms
                .store(now + PURGE_EVERY_MS, Ordering::Relaxed);
            records.retain(|_, (_, expires)| live(*expires, now));
        }
        entries
            .iter()
            .map(|(key, entry)| {
                records.insert(key.clone(), (entry.value.clone(), entry.expires_at_ms()));
                Change {
                    key: key.clone(),
                    value: Some(entry.value.clone()),
                    origin: origin.to_string(),
                }
            })
            .collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let now = now_ms();
        self.lock()
            .get(key)
            .filter(|(_, expires)| live(*expires, now))
            .map(|(value, _)| value.clone())
    }

    pub(crate) fn scan(&self, prefix: &str) -> Vec<(String, String)> {
        let now = now_ms();
        self.lock()
            .iter()
            .filter(|(key, (_, expires))| key.starts_with(prefix) && live(*expires, now))
            .map(|(key, (value, _))| (key.clone(), value.clone()))
            .collect()
    }

    pub(crate) fn set_if_absent(&self, key: &str, entry: &Entry) -> bool {
        let mut records = self.lock();
        let now = now_ms();
        if records
            .get(key)
            .is_some_and(|(_, expires)| live(*expires, now))
        {
            return false;
        }
        records.insert(
            key.to_string(),
            (entry.value.clone(), entry.expires_at_ms()),
        );
        true
    }

    pub(crate) fn add(&self, key: &str, amount: f64, ttl: Option<std::time::Duration>) -> f64 {
        let mut records = self.lock();
        let now = now_ms();
        let held = records
            .get(key)
            .filter(|(_, expires)| live(*expires, now))
            .map(|(value, expires)| (value.parse::<f64>().unwrap_or(0.0), *expires));
        let (total, expires) = match held {
            Some((value, expires)) => (value + amount, expires),
            None => {
                let entry = Entry {
                    value: String::new(),
                    ttl,
                };
                (amount, entry.expires_at_ms())
            }
        };
        records.insert(key.to_string(), (total.to_string(), expires));
        total
    }

    pub(crate) fn delete_if(&self, key: &str, value: &str) -> bool {
        let mut records = self.lock();
        if records.get(key).is_some_and(|(held, _)| held == value) {
            records.remove(key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entries(key: &str, ttl: Duration) -> Vec<(String, Entry)> {
        let entry = Entry {
            value: "v".into(),
            ttl: Some(ttl),
        };
        vec![(key.to_string(), entry)]
    }

    #[test]
    fn an_expired_record_is_never_read_and_is_dropped_by_the_next_purge() {
        let memory = Memory::default();
        let before = now_ms();
        memory.put_many(&entries("gone", Duration::ZERO), "test");
        assert_eq!(memory.get("gone"), None, "expired: never read");
        let next = memory.next_purge_ms.load(Ordering::Relaxed);
        assert!(
            (before + PURGE_EVERY_MS..=now_ms() + PURGE_EVERY_MS).contains(&next),
            "the next purge is due a second after this one"
        );
        memory.next_purge_ms.store(u64::MAX, Ordering::Relaxed);
        memory.put_many(&entries("second", Duration::from_secs(60)), "test");
        assert_eq!(
            memory.lock().len(),
            2,
            "a write before the purge is due passes over nothing"
        );
        memory.next_purge_ms.store(0, Ordering::Relaxed);
        memory.put_many(&entries("third", Duration::from_secs(60)), "test");
        let mut kept: Vec<String> = memory.lock().keys().cloned().collect();
        kept.sort();
        assert_eq!(
            kept,
            ["second", "third"],
            "the purge dropped the expired one"
        );
    }
}
