//! The background writer: the request path hands records over without waiting; the writer batches them, keeps
//! the latest value of each key, and retries with backoff while the backend is down, so that what was learned
//! meanwhile is published once it is back.

use crate::record::Entry;
use crate::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Records waiting in the channel; past it, new records are dropped (and counted).
pub const QUEUE_BOUND: usize = 1024;

/// Distinct keys kept for a backend that is down; past it, new keys are dropped (and counted).
const PENDING_BOUND: usize = 10_000;

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<(String, Entry)>,
    store: Arc<Store>,
}

impl Writer {
    /// Starts the writer task for `store`.
    pub fn spawn(store: Arc<Store>) -> Writer {
        let (queue, receiver) = mpsc::channel(QUEUE_BOUND);
        tokio::spawn(run(store.clone(), receiver));
        Writer { queue, store }
    }

    /// Queues `entry` for `key` without waiting; `false` if the queue is full (the record is dropped and
    /// counted as the operation `enqueue` with outcome `dropped`).
    pub fn send(&self, key: String, entry: Entry) -> bool {
        let sent = self.queue.try_send((key, entry)).is_ok();
        if !sent {
            self.store.count_dropped();
        }
        sent
    }
}

async fn run(store: Arc<Store>, mut receiver: mpsc::Receiver<(String, Entry)>) {
    let mut pending: HashMap<String, Entry> = HashMap::new();
    let mut delay = Duration::from_millis(100);
    loop {
        if pending.is_empty() {
            let Some((key, entry)) = receiver.recv().await else {
                return;
            };
            pending.insert(key, entry);
        }
        while let Ok((key, entry)) = receiver.try_recv() {
            if pending.len() < PENDING_BOUND || pending.contains_key(&key) {
                pending.insert(key, entry);
            }
        }
        let batch: Vec<_> = pending
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        match store.put_many(batch).await {
            Ok(()) => {
                pending.clear();
                delay = Duration::from_millis(100);
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
