//! The in-memory backend: a map in this process, for tests and throwaway runs.

use crate::record::{now_ms, Change, Entry};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Records in a map, each with its expiry in Unix milliseconds.
#[derive(Default)]
pub struct Memory {
    records: Mutex<HashMap<String, (String, Option<u64>)>>,
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
        records.retain(|_, (_, expires)| live(*expires, now));
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
