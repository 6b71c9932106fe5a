//! Where answers of the Responses API are kept for `GET /v1/responses/{id}`, `DELETE` and
//! `previous_response_id`: a [`ResponseStore`], either [`MemoryStore`] (this process) or
//! [`SharedStore`] (the state layer's SQLite or Redis store).

use super::ledger::Ledger;
pub use super::shared::SharedStore;
use backstop_state::StateError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Who created it: the hash of the client's key (see [`crate::keep::key::client_id`]).
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

/// Where answers are kept: this process's memory (no state layer, or `state = "memory"`), or
/// the state layer's SQLite or Redis store, which a restart and the other replicas see.
#[derive(Clone)]
pub enum ResponseStore {
    /// In this process only.
    Memory(Arc<MemoryStore>),
    /// In the state layer.
    Shared(Arc<SharedStore>),
}

impl ResponseStore {
    /// Keeps `record` under `id`; the oldest records go when `limits.max_bytes` would be passed.
    /// A record larger than the whole bound is not kept (`Ok(false)`).
    pub async fn put(&self, id: &str, record: Stored, limits: Limits) -> Result<bool, StateError> {
        match self {
            Self::Memory(memory) => Ok(memory.put(id, record, limits)),
            Self::Shared(shared) => shared.put(id, record, limits).await,
        }
    }

    /// The live record `id` of `owner`.
    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<Stored>, StateError> {
        match self {
            Self::Memory(memory) => Ok(memory.get(id, owner)),
            Self::Shared(shared) => shared.get(id, owner).await,
        }
    }

    /// Deletes the record `id` of `owner`; whether there was one.
    pub async fn delete(&self, id: &str, owner: &str) -> Result<bool, StateError> {
        match self {
            Self::Memory(memory) => Ok(memory.delete(id, owner)),
            Self::Shared(shared) => shared.delete(id, owner).await,
        }
    }
}

/// The in-process store: lost on restart, not shared between replicas.
#[derive(Default)]
pub struct MemoryStore {
    ledger: Mutex<Ledger<Stored>>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger<Stored>> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes()
    }

    /// Keeps `record` under `id` (see [`ResponseStore::put`]).
    pub fn put(&self, id: &str, record: Stored, limits: Limits) -> bool {
        let size = record.size();
        if size > limits.max_bytes {
            return false;
        }
        let now = Instant::now();
        self.lock()
            .insert(id, record, size, now + limits.ttl, limits.max_bytes, now);
        true
    }

    /// The live record `id` of `owner`.
    pub fn get(&self, id: &str, owner: &str) -> Option<Stored> {
        let mut ledger = self.lock();
        let record = ledger.get(id, Instant::now())?;
        is_owner(record, owner).then(|| record.clone())
    }

    /// Deletes the record `id` of `owner`; whether there was one.
    pub fn delete(&self, id: &str, owner: &str) -> bool {
        let mut ledger = self.lock();
        let mine = ledger
            .get(id, Instant::now())
            .is_some_and(|record| is_owner(record, owner));
        mine && ledger.remove(id).is_some()
    }
}

/// Whether `record` was created by `owner`.
pub(super) fn is_owner(record: &Stored, owner: &str) -> bool {
    crate::http::constant_time_eq(&record.owner, owner)
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
