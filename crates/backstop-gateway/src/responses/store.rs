//! Where answers of the Responses API are kept for `GET /v1/responses/{id}`, `DELETE` and
//! `previous_response_id`: behind [`ResponseStore`], so that a shared backend can take the
//! place of [`MemoryStore`], the in-process one.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The key of the client that created it (`""` on a gateway without client keys).
    pub owner: String,
    /// The `response` object as the client received it.
    pub response: Value,
    /// The conversation up to and including this answer, as Responses API input items: what a
    /// follow-up with `previous_response_id` continues from.
    pub conversation: Vec<Value>,
}

impl Stored {
    /// Bytes this record counts against `responses.max_bytes`.
    pub fn size(&self) -> u64 {
        let items: usize = self
            .conversation
            .iter()
            .map(|item| item.to_string().len())
            .sum();
        (self.response.to_string().len() + items + self.owner.len()) as u64
    }
}

/// The limits a write is held to, from the configuration in force.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a record lives.
    pub ttl: Duration,
    /// The most bytes all records may take.
    pub max_bytes: u64,
}

/// A bounded store of answers by response id. Only the owner sees a record.
pub trait ResponseStore: Send + Sync {
    /// Keeps `record` under `id`; the oldest records go when `limits.max_bytes` would be passed.
    /// A record larger than the whole bound is not kept (returns `false`).
    fn put(&self, id: &str, record: Stored, limits: Limits) -> bool;
    /// The live record `id` of `owner`.
    fn get(&self, id: &str, owner: &str) -> Option<Stored>;
    /// Deletes the record `id` of `owner`; whether there was one.
    fn delete(&self, id: &str, owner: &str) -> bool;
}

struct Entry {
    record: Stored,
    size: u64,
    expires: Instant,
    /// Its place in `Inner::order`.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Ids with their insertion number, the oldest first; an id whose record was deleted
    /// or stored again since is skipped when it comes up.
    order: VecDeque<(String, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.bytes -= entry.size;
        Some(entry)
    }

    /// Drops expired records and, oldest first, whatever keeps `incoming` more bytes from fitting.
    fn make_room(&mut self, incoming: u64, max_bytes: u64, now: Instant) {
        while let Some((id, seq)) = self.order.front().cloned() {
            let current = self.entries.get(&id).filter(|e| e.seq == seq);
            let live = current.is_some_and(|e| e.expires > now);
            if live && self.bytes + incoming <= max_bytes {
                break;
            }
            self.order.pop_front();
            if current.is_some() {
                self.remove(&id);
            }
        }
    }
}

/// The in-process store: lost on restart, not shared between replicas.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

impl ResponseStore for MemoryStore {
    fn put(&self, id: &str, record: Stored, limits: Limits) -> bool {
        let size = record.size();
        if size > limits.max_bytes {
            return false;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(id);
        inner.make_room(size, limits.max_bytes, now);
        inner.bytes += size;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.push_back((id.to_owned(), seq));
        inner.entries.insert(
            id.to_owned(),
            Entry {
                record,
                size,
                expires: now + limits.ttl,
                seq,
            },
        );
        true
    }

    fn get(&self, id: &str, owner: &str) -> Option<Stored> {
        let mut inner = self.lock();
        let entry = inner.entries.get(id)?;
        if entry.expires <= Instant::now() {
            inner.remove(id);
            return None;
        }
        let mine = crate::http::constant_time_eq(&entry.record.owner, owner);
        mine.then(|| entry.record.clone())
    }

    fn delete(&self, id: &str, owner: &str) -> bool {
        let mut inner = self.lock();
        let mine = inner
            .entries
            .get(id)
            .is_some_and(|e| crate::http::constant_time_eq(&e.record.owner, owner));
        mine && inner.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(owner: &str, text: &str) -> Stored {
        Stored {
            owner: owner.into(),
            response: json!({"text": text}),
            conversation: vec![json!({"role": "user", "content": text})],
        }
    }

    const LIMITS: Limits = Limits {
        ttl: Duration::from_secs(60),
        max_bytes: 1000,
    };

    #[tokio::test(start_paused = true)]
    async fn records_expire_after_their_ttl() {
        let store = MemoryStore::default();
        assert!(store.put("a", record("k", "x"), LIMITS));
        assert!(store.get("a", "k").is_some());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.get("a", "k").is_none());
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn only_the_owner_sees_or_deletes_a_record() {
        let store = MemoryStore::default();
        store.put("a", record("k1", "x"), LIMITS);
        assert!(store.get("a", "k2").is_none());
        assert!(!store.delete("a", "k2"));
        assert!(store.delete("a", "k1"));
        assert!(store.get("a", "k1").is_none());
    }

    #[test]
    fn the_oldest_records_go_when_the_byte_bound_is_reached() {
        let store = MemoryStore::default();
        let size = record("k", &"x".repeat(100)).size();
        let limits = Limits {
            ttl: Duration::from_secs(60),
            max_bytes: size * 3,
        };
        for id in ["a", "b", "c", "d"] {
            assert!(store.put(id, record("k", &"x".repeat(100)), limits));
        }
        assert!(store.get("a", "k").is_none(), "the oldest went");
        assert!(store.get("d", "k").is_some());
        assert_eq!(store.bytes(), size * 3);
        let huge = record("k", &"y".repeat(10_000));
        assert!(
            !store.put("e", huge, limits),
            "larger than the bound: not kept"
        );
    }
}
