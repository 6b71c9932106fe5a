//! Counters shared by every replica through the state store (spend per key and period, and per key, model and
//! period; requests and tokens per key and minute), kept off the request path: additions accumulate here and a background task adds them to the
//! store every [`FLUSH_EVERY`], reading back the shared total (the other replicas' additions included).
//!
//! A counter's value is the last shared total plus what this process added since. So a replica sees another's
//! spending at most one flush interval (plus the store's latency) late: a budget can be overshot by what the
//! other replicas spend in that time, plus the requests already in flight when it was reached (they are never
//! cut). With no store attached, or while it is down, the counters are this process's own, and what could not be
//! flushed is kept and flushed when the store is back.

use backstop_state::record::now_ms;
use backstop_state::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

/// How often additions reach the store and shared totals are read back.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The most counters kept (each key has at most a budget and two rate windows live at once).
const MAX_COUNTERS: usize = 100_000;

#[derive(Debug, Default)]
struct Cell {
    /// The total last read from the store, this process's flushed additions included.
    shared: f64,
    /// Added here and not yet sent.
    pending: f64,
    /// Sent, not yet acknowledged.
    sending: f64,
    ttl: Option<Duration>,
    /// When the counter is no longer needed here (Unix ms; `None`: never).
    forget_at_ms: Option<u64>,
}

impl Cell {
    fn value(&self) -> f64 {
        self.shared + self.pending + self.sending
    }
}

/// The counters of one process.
#[derive(Default)]
pub struct Counters {
    cells: Mutex<HashMap<String, Cell>>,
    store: OnceLock<Arc<Store>>,
}

impl Counters {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cell>> {
        self.cells
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Shares the counters through `store` from now on (only the first call counts) and starts the flush task,
    /// which ends when the counters are dropped.
    pub fn attach(self: &Arc<Self>, store: Arc<Store>) {
        if self.store.set(store).is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(flush_loop(weak));
    }

    /// The value of the counter `name`, creating it for the window (`ttl`, forgotten after `forget_at_ms`).
    /// The first time a counter is seen here its shared total is read from the store (bounded by the store's
    /// operation timeout); after that it is local.
    pub async fn value(&self, name: &str, ttl: Option<Duration>, forget_at_ms: Option<u64>) -> f64 {
        if let Some(value) = self.lock().get(name).map(Cell::value) {
            return value;
        }
        let shared = match self.store.get() {
            Some(store) => store.add(name, 0.0, ttl).await.unwrap_or(0.0),
            None => 0.0,
        };
        let mut cells = self.lock();
        let cell = self.cell(&mut cells, name, ttl, forget_at_ms);
        cell.shared = cell.shared.max(shared);
        cell.value()
    }

    /// Adds `amount` to the counter `name` (sent to the store with the next flush).
    pub fn add(&self, name: &str, amount: f64, ttl: Option<Duration>, forget_at_ms: Option<u64>) {
        let mut cells = self.lock();
        let shared = self.store.get().is_some();
        let cell = self.cell(&mut cells, name, ttl, forget_at_ms);
        if shared {
            cell.pending += amount;
        } else {
            cell.shared += amount;
        }
    }

    /// The value of `name` if it is known here, without reading the store.
    pub fn known(&self, name: &str) -> Option<f64> {
        self.lock().get(name).map(Cell::value)
    }

    /// Every counter whose name starts with `prefix`, by the rest of its name: those known here and, with a
    /// store, those any replica has flushed (read within `limit`), the larger value of the two for each. Not for
    /// the request path: it reads the store.
    pub async fn starting_with(&self, prefix: &str, limit: Duration) -> BTreeMap<String, f64> {
        let mut found: BTreeMap<String, f64> = self
            .lock()
            .iter()
            .filter_map(|(name, cell)| Some((name.strip_prefix(prefix)?.to_string(), cell.value())))
            .collect();
        let Some(store) = self.store.get() else {
            return found;
        };
        for (name, value) in store.scan(prefix, limit).await.unwrap_or_default() {
            let (Some(rest), Ok(value)) = (name.strip_prefix(prefix), value.parse::<f64>()) else {
                continue;
            };
            let entry = found.entry(rest.to_string()).or_insert(0.0);
            *entry = entry.max(value);
        }
        found
    }

    fn cell<'a>(
        &self,
        cells: &'a mut HashMap<String, Cell>,
        name: &str,
        ttl: Option<Duration>,
        forget_at_ms: Option<u64>,
    ) -> &'a mut Cell {
        if cells.len() >= MAX_COUNTERS && !cells.contains_key(name) {
            let now = now_ms();
            cells.retain(|_, cell| cell.forget_at_ms.is_none_or(|at| at > now));
        }
        cells.entry(name.to_string()).or_insert_with(|| Cell {
            ttl,
            forget_at_ms,
            ..Cell::default()
        })
    }

    /// Sends what was added since the last flush and reads back every counter's shared total; forgets the
    /// counters of windows that are over.
    pub async fn flush(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        let batch: Vec<(String, f64, Option<Duration>)> = {
            let now = now_ms();
            let mut cells = self.lock();
            cells.retain(|_, cell| {
                cell.forget_at_ms.is_none_or(|at| at > now) || cell.pending != 0.0
            });
            cells
                .iter_mut()
                .map(|(name, cell)| {
                    let amount = std::mem::take(&mut cell.pending);
                    cell.sending += amount;
                    (name.clone(), amount, cell.ttl)
                })
                .collect()
        };
        for (name, amount, ttl) in batch {
            let result = store.add(&name, amount, ttl).await;
            let mut cells = self.lock();
            let Some(cell) = cells.get_mut(&name) else {
                continue;
            };
            cell.sending -= amount;
            match result {
                Ok(total) => cell.shared = total,
                Err(_) => cell.pending += amount,
            }
        }
    }
}

async fn flush_loop(counters: Weak<Counters>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(counters) = counters.upgrade() else {
            return;
        };
        counters.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_state::{NoStateObserver, StateSpec};

    #[tokio::test]
    async fn additions_are_local_until_flushed_and_shared_after() {
        let store = Arc::new(
            Store::open(&StateSpec::Memory, "t:", "a", Arc::new(NoStateObserver)).unwrap(),
        );
        let (a, b) = (Arc::new(Counters::default()), Arc::new(Counters::default()));
        a.store.set(store.clone()).ok();
        b.store.set(store.clone()).ok();
        assert_eq!(a.value("spend:x", None, None).await, 0.0);
        assert_eq!(b.value("spend:x", None, None).await, 0.0);
        a.add("spend:x", 1.5, None, None);
        assert_eq!(a.known("spend:x"), Some(1.5));
        assert_eq!(b.known("spend:x"), Some(0.0), "not flushed yet");
        a.flush().await;
        b.flush().await;
        assert_eq!(b.known("spend:x"), Some(1.5));
        b.add("spend:x", 0.5, None, None);
        b.flush().await;
        a.flush().await;
        assert_eq!(a.known("spend:x"), Some(2.0));
        assert_eq!(store.add("spend:x", 0.0, None).await.unwrap(), 2.0);

        // What another replica flushed is listed with what is known here.
        b.add("spend:x:m1", 0.25, None, None);
        b.flush().await;
        a.add("spend:x:m2", 1.0, None, None);
        let listed = a.starting_with("spend:x:", Duration::from_secs(1)).await;
        assert_eq!(
            listed.into_iter().collect::<Vec<_>>(),
            [("m1".to_string(), 0.25), ("m2".to_string(), 1.0)]
        );
    }

    #[tokio::test]
    async fn without_a_store_counters_are_local_and_over_windows_are_forgotten() {
        let counters = Arc::new(Counters::default());
        counters.add("rate:x", 1.0, None, Some(1));
        counters.add("rate:x", 1.0, None, Some(1));
        assert_eq!(counters.value("rate:x", None, Some(1)).await, 2.0);
        let store = Arc::new(
            Store::open(&StateSpec::Memory, "t:", "a", Arc::new(NoStateObserver)).unwrap(),
        );
        counters.attach(store);
        counters.flush().await;
        assert_eq!(counters.known("rate:x"), None, "its window is over");
    }
}
