//! The in-memory backend: a map in this process, for tests and throwaway runs. It holds at most
//! [`MAX_MEMORY_BYTES`] of records: past the bound a write that would add to them is refused (an error, as from a
//! full disk) until records expire or are replaced by smaller ones, so a client sending new idempotency keys cannot
//! grow the process without limit.

use crate::record::{now_ms, Change, Entry};
use crate::StateError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How often a write also drops the records that have expired (a read never sees them either way): a
/// pass over every record on each write would cost a write time in proportion to the records kept.
const PURGE_EVERY_MS: u64 = 1_000;

/// The most bytes of records the memory backend holds: keys and values, and [`RECORD_OVERHEAD`] for each.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// What one record costs beyond its key and value: the map's entry (two strings and an expiry) and its control byte.
const RECORD_OVERHEAD: usize = 72;

/// A value and its expiry in Unix milliseconds.
type Record = (String, Option<u64>);

/// The records, the bytes they count for and the most they may.
struct Records {
    map: HashMap<String, Record>,
    bytes: usize,
    limit: usize,
}

fn size(key: &str, value: &str) -> usize {
    key.len() + value.len() + RECORD_OVERHEAD
}

fn live(expires: Option<u64>, now: u64) -> bool {
    expires.is_none_or(|at| at > now)
}

impl Records {
    /// Drops the records expired at `now`.
    fn purge(&mut self, now: u64) {
        let mut freed = 0;
        self.map.retain(|key, (value, expires)| {
            let keep = live(*expires, now);
            if !keep {
                freed += size(key, value);
            }
            keep
        });
        self.bytes -= freed;
    }

    fn get(&self, key: &str, now: u64) -> Option<&String> {
        self.map
            .get(key)
            .filter(|(_, expires)| live(*expires, now))
            .map(|(value, _)| value)
    }

    /// Whether writing `writes` (key, value; of a key written twice the last value stays) keeps the records
    /// within their limit: always when they add nothing (a record replaced by one no larger).
    fn fit<'a>(&self, writes: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        let last: HashMap<&str, &str> = writes.collect();
        let (mut added, mut freed) = (0, 0);
        for (key, value) in last {
            added += size(key, value);
            freed += self.map.get(key).map_or(0, |(old, _)| size(key, old));
        }
        added <= freed || self.bytes + (added - freed) <= self.limit
    }

    fn insert(&mut self, key: String, value: String, expires: Option<u64>) {
        self.bytes += size(&key, &value);
        if let Some((old, _)) = self.map.get(&key) {
            self.bytes -= size(&key, old);
        }
        self.map.insert(key, (value, expires));
    }
}

/// Records in a map, each with its expiry in Unix milliseconds.
pub struct Memory {
    records: Mutex<Records>,
    /// When a write next drops the expired records, in Unix milliseconds.
    next_purge_ms: AtomicU64,
    /// The durable queue's jobs (durable here only as long as the process).
    pub(crate) jobs: super::queue_memory::MemoryJobs,
}

impl Default for Memory {
    fn default() -> Self {
        Self::with_limit(MAX_MEMORY_BYTES)
    }
}

fn full(limit: usize) -> StateError {
    StateError::Backend(format!(
        "the memory state holds {limit} bytes of records, its bound: no room for more until some expire"
    ))
}

impl Memory {
    /// An empty store that holds at most `limit` bytes of records.
    fn with_limit(limit: usize) -> Self {
        Self {
            records: Mutex::new(Records {
                map: HashMap::new(),
                bytes: 0,
                limit,
            }),
            next_purge_ms: AtomicU64::new(0),
            jobs: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The records locked for a write at `now`, the expired ones dropped first when a purge is due.
    fn lock_to_write(&self, now: u64) -> MutexGuard<'_, Records> {
        let mut records = self.lock();
        if now >= self.next_purge_ms.load(Ordering::Relaxed) {
            self.next_purge_ms
                .store(now + PURGE_EVERY_MS, Ordering::Relaxed);
            records.purge(now);
        }
        records
    }

    pub(crate) fn put_many(
        &self,
        entries: &[(String, Entry)],
        origin: &str,
    ) -> Result<Vec<Change>, StateError> {
        let writes = entries
            .iter()
            .map(|(key, entry)| (key.as_str(), entry.value.as_str()));
        let mut records = self.lock_to_write(now_ms());
        if !records.fit(writes) {
            return Err(full(records.limit));
        }
        Ok(entries
            .iter()
            .map(|(key, entry)| {
                records.insert(key.clone(), entry.value.clone(), entry.expires_at_ms());
                Change {
                    key: key.clone(),
                    value: Some(entry.value.clone()),
                    origin: origin.to_string(),
                }
            })
            .collect())
    }

    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key, now_ms()).cloned()
    }

    pub(crate) fn scan(&self, prefix: &str) -> Vec<(String, String)> {
        let now = now_ms();
        self.lock()
            .map
            .iter()
            .filter(|(key, (_, expires))| key.starts_with(prefix) && live(*expires, now))
            .map(|(key, (value, _))| (key.clone(), value.clone()))
            .collect()
    }

    pub(crate) fn set_if_absent(&self, key: &str, entry: &Entry) -> Result<bool, StateError> {
        let now = now_ms();
        let mut records = self.lock_to_write(now);
        if records.get(key, now).is_some() {
            return Ok(false);
        }
        if !records.fit(std::iter::once((key, entry.value.as_str()))) {
            return Err(full(records.limit));
        }
        records.insert(key.to_string(), entry.value.clone(), entry.expires_at_ms());
        Ok(true)
    }

    pub(crate) fn add(
        &self,
        key: &str,
        amount: f64,
        ttl: Option<std::time::Duration>,
    ) -> Result<f64, StateError> {
        let now = now_ms();
        let mut records = self.lock_to_write(now);
        let held = records
            .map
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
        let value = total.to_string();
        if !records.fit(std::iter::once((key, value.as_str()))) {
            return Err(full(records.limit));
        }
        records.insert(key.to_string(), value, expires);
        Ok(total)
    }

    pub(crate) fn delete_if(&self, key: &str, value: &str) -> bool {
        let mut records = self.lock();
        if records.map.get(key).is_some_and(|(held, _)| held == value) {
            records.bytes -= size(key, value);
            records.map.remove(key);
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
        memory
            .put_many(&entries("gone", Duration::ZERO), "test")
            .unwrap();
        assert_eq!(memory.get("gone"), None, "expired: never read");
        let next = memory.next_purge_ms.load(Ordering::Relaxed);
        assert!(
            (before + PURGE_EVERY_MS..=now_ms() + PURGE_EVERY_MS).contains(&next),
            "the next purge is due a second after this one"
        );
        memory.next_purge_ms.store(u64::MAX, Ordering::Relaxed);
        memory
            .put_many(&entries("second", Duration::from_secs(60)), "test")
            .unwrap();
        assert_eq!(
            memory.lock().map.len(),
            2,
            "a write before the purge is due passes over nothing"
        );
        memory.next_purge_ms.store(0, Ordering::Relaxed);
        memory
            .put_many(&entries("third", Duration::from_secs(60)), "test")
            .unwrap();
        let mut kept: Vec<String> = memory.lock().map.keys().cloned().collect();
        kept.sort();
        assert_eq!(
            kept,
            ["second", "third"],
            "the purge dropped the expired one"
        );
    }

    fn put(memory: &Memory, key: &str, value: &str, ttl: Duration) -> Result<(), StateError> {
        let entry = Entry {
            value: value.into(),
            ttl: Some(ttl),
        };
        memory
            .put_many(&[(key.to_string(), entry)], "test")
            .map(drop)
    }

    #[test]
    fn past_its_bound_a_write_that_adds_is_refused_until_records_expire() {
        let record = size("k00", "0123456789");
        let memory = Memory::with_limit(record * 3);
        let hour = Duration::from_secs(3600);
        for key in ["k00", "k01", "k02"] {
            put(&memory, key, "0123456789", hour).unwrap();
        }
        assert_eq!(memory.lock().bytes, record * 3);
        let refused = put(&memory, "k03", "0123456789", hour).unwrap_err();
        assert!(refused.to_string().contains("its bound"), "{refused}");
        let entry = Entry {
            value: "x".into(),
            ttl: Some(hour),
        };
        assert!(memory.set_if_absent("k04", &entry).is_err(), "a claim adds");
        assert!(memory.add("k05", 1.0, None).is_err(), "a new counter adds");
        assert_eq!(memory.get("k03"), None);
        put(&memory, "k00", "9876543210", hour).expect("a replacement of the same size fits");
        put(&memory, "k01", "short", hour).expect("a smaller one too");
        assert!(
            memory
                .set_if_absent("k00", &entry)
                .is_ok_and(|taken| !taken),
            "a claim of a held key is answered, full or not"
        );
        assert!(memory.delete_if("k01", "short"));
        put(&memory, "k03", "0123456789", Duration::ZERO).expect("a deleted record frees its room");
        assert!(put(&memory, "k06", "0123456789", hour).is_err());
        memory.next_purge_ms.store(0, Ordering::Relaxed);
        put(&memory, "k06", "0123456789", hour).expect("the purge freed the expired record");
        let twice = |first: &str, last: &str| {
            let entry = |value: &str| Entry {
                value: value.into(),
                ttl: Some(hour),
            };
            let batch = [
                ("k00".to_string(), entry(first)),
                ("k00".to_string(), entry(last)),
            ];
            memory.put_many(&batch, "test").map(drop)
        };
        assert!(
            twice("", &"x".repeat(200)).is_err(),
            "a key written twice in a batch counts once, with its last value"
        );
        twice(&"x".repeat(200), "0123456789").expect("and a last value no larger fits");
        let kept: usize = memory
            .lock()
            .map
            .iter()
            .map(|(key, (value, _))| size(key, value))
            .sum();
        assert_eq!(memory.lock().bytes, kept, "the count follows every write");
    }
}
