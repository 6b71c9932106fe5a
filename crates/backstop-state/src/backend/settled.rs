//! Answers settled in a process that alone writes to its store (memory, SQLite: one node). When the request
//! that held a lease has its answer, the answer is kept here at once, so a duplicate finds and replays it from
//! memory, and the lease is given back; a background writer then brings what waits here to the store, one
//! transaction a batch rather than one a request, and forgets each answer once it is written. The waiting room
//! is bounded; an answer that finds it full is written on its own, as on a shared store, never dropped. An
//! answer that cannot be written (the store is down) waits here, still replayed, and is retried with backoff.
//! [`Store::flush`] writes everything still waiting (at shutdown).

use super::{Store, OP_TIMEOUT};
use crate::record::{now_ms, Entry};
use crate::StateError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The most answers waiting to be written at once; past it an answer is written on its own.
pub const MAX_SETTLED: usize = 16_384;

/// The most answers written in one transaction.
const MAX_BATCH: usize = 256;

/// How long the writer lets answers gather after the first before it writes them.
const LINGER: Duration = Duration::from_millis(10);

/// Retries of a failed write: the first delay, doubled up to the last.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Answers waiting to be written, by record key: the value and its wall-clock end in Unix milliseconds.
#[derive(Default)]
pub(crate) struct Settled {
    waiting: Mutex<HashMap<String, (String, Option<u64>)>>,
    /// Counts the writes of settled answers, so that a lookup knows whether one reached the store while it
    /// looked (see [`Store::lookup`]).
    writes: AtomicU64,
    wake: Arc<Notify>,
    writer: OnceLock<()>,
}

impl Settled {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Option<u64>)>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live answer waiting under `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let now = now_ms();
        self.lock()
            .get(key)
            .filter(|(_, until)| until.is_none_or(|until| until > now))
            .map(|(value, _)| value.clone())
    }

    /// Keeps `entry` under `key` unless the room is full; `false` when it was not kept.
    fn insert(&self, key: &str, entry: &Entry) -> bool {
        let mut waiting = self.lock();
        if waiting.len() >= MAX_SETTLED && !waiting.contains_key(key) {
            return false;
        }
        waiting.insert(
            key.to_string(),
            (entry.value.clone(), entry.expires_at_ms()),
        );
        true
    }

    /// Up to [`MAX_BATCH`] waiting answers as entries to write now (their time to live what is left of it);
    /// ended ones are forgotten.
    fn batch(&self) -> Vec<(String, Entry)> {
        let now = now_ms();
        let mut waiting = self.lock();
        waiting.retain(|_, (_, until)| until.is_none_or(|until| until > now));
        waiting
            .iter()
            .take(MAX_BATCH)
            .map(|(key, (value, until))| {
                let ttl = until.map(|until| Duration::from_millis(until.saturating_sub(now)));
                let entry = Entry {
                    value: value.clone(),
                    ttl,
                };
                (key.clone(), entry)
            })
            .collect()
    }

    /// Forgets the answers of `batch`, now written, unless a newer one took their place meanwhile.
    fn written(&self, batch: &[(String, Entry)]) {
        let mut waiting = self.lock();
        self.writes.fetch_add(1, Ordering::SeqCst);
        for (key, entry) in batch {
            if waiting
                .get(key)
                .is_some_and(|(value, _)| *value == entry.value)
            {
                waiting.remove(key);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl Store {
    /// Stores `entry` under `record` as the answer of the lease `lease` (held for `lease_value`, taken by
    /// [`Store::lookup`]) and gives the lease back, without waiting for the store.
    ///
    /// On a store this process alone writes to, the answer is replayed from memory from now on and written in
    /// the background with others (see the module); on a shared store it is written, then the lease given
    /// back, in a task of its own.
    pub fn settle(self: &Arc<Self>, record: &str, entry: Entry, lease: &str, lease_value: &str) {
        if !self.is_shared() && self.settled.insert(record, &entry) {
            self.leases.release(lease, lease_value);
            self.start_settled_writer();
            self.settled.wake.notify_one();
            return;
        }
        if !self.is_shared() {
            self.observer.op("settle", "full", Duration::ZERO);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        let (record, lease, lease_value) = (
            record.to_string(),
            lease.to_string(),
            lease_value.to_string(),
        );
        runtime.spawn(async move {
            if let Err(error) = store.put_many(vec![(record, entry)]).await {
                tracing::warn!("a settled answer was not stored: {error}");
            }
            store.settled.writes.fetch_add(1, Ordering::SeqCst);
            let _ = store.give_back(&lease, &lease_value).await;
        });
    }

    /// Writes every answer still waiting in this process (see [`Store::settle`]) and returns once they are
    /// in the store, or with the error of the store that does not take them.
    pub async fn flush(&self) -> Result<(), StateError> {
        while !self.settled.is_empty() {
            self.write_settled().await?;
        }
        Ok(())
    }

    /// Writes one batch of waiting answers in one transaction and forgets them.
    async fn write_settled(&self) -> Result<(), StateError> {
        let batch = self.settled.batch();
        if batch.is_empty() {
            return Ok(());
        }
        // Not announced on the change feed: no one in this process follows these records, and a thousand
        // answers a second would make its followers lag and read the state again.
        self.write_many(batch.clone(), OP_TIMEOUT * 4).await?;
        self.settled.written(&batch);
        Ok(())
    }

    /// How many writes of settled answers ended so far.
    pub(crate) fn settled_writes(&self) -> u64 {
        self.settled.writes.load(Ordering::SeqCst)
    }

    /// The waiting answer under `record`, if any (see [`Store::settle`]).
    pub(crate) fn settled_answer(&self, record: &str) -> Option<String> {
        self.settled.get(record)
    }

    fn start_settled_writer(self: &Arc<Self>) {
        self.settled.writer.get_or_init(|| {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(run_writer(Arc::downgrade(self), self.settled.wake.clone()));
            }
        });
    }
}

/// Waits for settled answers, lets more gather for [`LINGER`], writes them, and retries with backoff while the
/// store does not take them; ends with the store.
async fn run_writer(store: Weak<Store>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        tokio::time::sleep(LINGER).await;
        let mut delay = FIRST_RETRY;
        loop {
            let Some(store) = store.upgrade() else {
                return;
            };
            let written = store.write_settled().await;
            let more = !store.settled.is_empty();
            drop(store);
            match written {
                Ok(()) if more => continue,
                Ok(()) => break,
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(LAST_RETRY);
                }
            }
        }
    }
}
