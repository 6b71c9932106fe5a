//! Stored responses in the state layer, under `responses:{id}` with `[responses] ttl` as their
//! time to live: SQLite keeps them over a restart, and every replica on one Redis reads,
//! continues and deletes what another stored. The owner is kept as the hash of the client's
//! key, never the key.
//!
//! **Bounds.** A response larger than `max_bytes` is not stored. Each replica keeps a ledger
//! of the responses it stored, oldest first; a write that would take it past `max_bytes`
//! evicts its oldest first. The ledger is read back from the store on a replica's first write,
//! so a restarted replica still knows (and evicts) what was stored before. With several
//! replicas on one Redis, each bounds what it wrote: the store holds at most replicas ×
//! `max_bytes`, and `ttl` removes everything in the end.

use super::ledger::Ledger;
use super::store::{is_owner, Limits, Stored};
use backstop_state::record::{now_ms, Entry};
use backstop_state::{StateError, Store};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// The keys' prefix in the store.
const PREFIX: &str = "responses:";

/// How long reading back the stored responses at the first write may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The store has no unconditional delete: an evicted response is overwritten with an empty
/// value that expires at once (and is never read as a response).
const EVICTED_TTL: Duration = Duration::from_millis(1);

/// The state layer's store of responses, with this replica's ledger of what it wrote.
pub struct SharedStore {
    store: Arc<Store>,
    ledger: Mutex<Ledger<()>>,
    loaded: OnceCell<()>,
}

fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// The record in a stored value, if it is one (not an evicted placeholder).
fn parse(value: &str) -> Option<Stored> {
    let value: Value = serde_json::from_str(value).ok()?;
    serde_json::from_value(value.get("record")?.clone()).ok()
}

impl SharedStore {
    /// Responses kept in `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            ledger: Mutex::default(),
            loaded: OnceCell::new(),
        }
    }

    /// The state layer's store this one writes to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, Ledger<()>> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads back what the store holds, once (a store that does not answer leaves the ledger
    /// to this process's writes; `ttl` still ends the others).
    async fn load(&self, limits: Limits) {
        self.loaded
            .get_or_init(|| async {
                let found = self
                    .store
                    .scan(PREFIX, LOAD_TIMEOUT)
                    .await
                    .unwrap_or_default();
                let mut held: Vec<(String, u64, u64)> = found
                    .into_iter()
                    .filter_map(|(key, value)| {
                        let at = serde_json::from_str::<Value>(&value)
                            .ok()?
                            .get("at")?
                            .as_u64()?;
                        let id = key.strip_prefix(PREFIX)?.to_owned();
                        Some((id, value.len() as u64, at))
                    })
                    .collect();
                held.sort_by_key(|(_, _, at)| *at);
                let (now, now_ms) = (Instant::now(), now_ms());
                let ttl = u64::try_from(limits.ttl.as_millis()).unwrap_or(u64::MAX);
                let mut ledger = self.lock();
                for (id, size, at) in held {
                    let left = at.saturating_add(ttl).saturating_sub(now_ms);
                    let expires = now + Duration::from_millis(left);
                    ledger.insert(&id, (), size, expires, u64::MAX, now);
                }
            })
            .await;
    }

    /// Stores `record` under `id` and evicts what the bound no longer allows.
    pub async fn put(&self, id: &str, record: Stored, limits: Limits) -> Result<bool, StateError> {
        let value = json!({"at": now_ms(), "record": record}).to_string();
        let size = value.len() as u64;
        if size > limits.max_bytes {
            return Ok(false);
        }
        self.load(limits).await;
        let entry = Entry {
            value,
            ttl: Some(limits.ttl),
        };
        self.store.put_many(vec![(key(id), entry)]).await?;
        let now = Instant::now();
        let evicted = self
            .lock()
            .insert(id, (), size, now + limits.ttl, limits.max_bytes, now);
        if !evicted.is_empty() {
            let gone = evicted
                .iter()
                .map(|id| {
                    let entry = Entry {
                        value: String::new(),
                        ttl: Some(EVICTED_TTL),
                    };
                    (key(id), entry)
                })
                .collect();
            if let Err(error) = self.store.put_many(gone).await {
                tracing::warn!(
                    "evicting stored responses failed (their ttl still ends them): {error}"
                );
            }
        }
        Ok(true)
    }

    /// The live record `id` of `owner`.
    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<Stored>, StateError> {
        let value = self.store.get(&key(id)).await?;
        Ok(value
            .as_deref()
            .and_then(parse)
            .filter(|record| is_owner(record, owner)))
    }

    /// Deletes the record `id` of `owner`, wherever it was written; whether there was one.
    pub async fn delete(&self, id: &str, owner: &str) -> Result<bool, StateError> {
        let Some(value) = self.store.get(&key(id)).await? else {
            return Ok(false);
        };
        if !parse(&value).is_some_and(|record| is_owner(&record, owner)) {
            return Ok(false);
        }
        let deleted = self.store.release(&key(id), &value).await?;
        self.lock().remove(id);
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_state::{NoStateObserver, StateSpec};

    fn open(path: &std::path::Path) -> SharedStore {
        let spec = StateSpec::Sqlite(path.to_path_buf());
        let store = Store::open(&spec, "t:", "test", Arc::new(NoStateObserver)).unwrap();
        SharedStore::new(Arc::new(store))
    }

    fn record(owner: &str) -> Stored {
        Stored {
            owner: owner.into(),
            response: json!({"text": "x".repeat(100)}),
            conversation: vec![json!({"role": "user", "content": "hi"})],
        }
    }

    /// The bytes one record takes in the store.
    fn size() -> u64 {
        json!({"at": now_ms(), "record": record("k")})
            .to_string()
            .len() as u64
    }

    #[tokio::test]
    async fn the_oldest_go_past_max_bytes_even_those_written_before_a_restart() {
        let directory =
            std::env::temp_dir().join(format!("backstop-shared-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("state.db");
        let limits = Limits {
            ttl: Duration::from_secs(60),
            max_bytes: size() * 2 + size() / 2,
        };
        let before = open(&path);
        assert!(before.put("a", record("k"), limits).await.unwrap());
        assert!(before.put("b", record("k"), limits).await.unwrap());
        drop(before);

        let after = open(&path);
        assert!(
            after.get("a", "k").await.unwrap().is_some(),
            "kept over the restart"
        );
        assert!(
            after.get("a", "other").await.unwrap().is_none(),
            "another owner's"
        );
        assert!(after.put("c", record("k"), limits).await.unwrap());
        tokio::time::sleep(EVICTED_TTL * 5).await;
        assert!(
            after.get("a", "k").await.unwrap().is_none(),
            "the oldest went"
        );
        assert!(after.get("b", "k").await.unwrap().is_some());
        assert!(after.get("c", "k").await.unwrap().is_some());
        let huge = Limits {
            max_bytes: size() / 2,
            ..limits
        };
        assert!(
            !after.put("d", record("k"), huge).await.unwrap(),
            "larger than the bound"
        );
        assert!(after.get("d", "k").await.unwrap().is_none());

        assert!(!after.delete("b", "other").await.unwrap());
        assert!(after.delete("b", "k").await.unwrap());
        assert!(after.get("b", "k").await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&directory);
    }
}
