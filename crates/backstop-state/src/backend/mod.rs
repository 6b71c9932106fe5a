//! The three backends behind one handle, [`Store`]: keys under a prefix, every operation timed, counted and
//! bounded by a timeout, and the backend's health (up or degraded) tracked with one warning per outage.

mod known;
mod leases;
mod lookup;
mod memory;
mod queue;
mod queue_memory;
mod queue_redis;
mod queue_sqlite;
mod redis;
mod settled;
mod sqlite;

pub use known::MAX_KNOWN;
pub use lookup::Lookup;
pub use memory::MAX_MEMORY_BYTES;
pub use settled::MAX_SETTLED;
pub use sqlite::SCHEMA_VERSION;

use crate::record::{Change, Entry};
use crate::{StateError, StateObserver, StateSpec};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// How long one operation may take before the backend counts as degraded.
pub const OP_TIMEOUT: Duration = Duration::from_millis(50);

/// Changes buffered for slow subscribers of the feed.
const FEED_CAPACITY: usize = 1024;

enum Backend {
    Memory(memory::Memory),
    Sqlite(sqlite::Sqlite),
    Redis(Box<redis::Redis>),
}

/// A state backend with its key prefix, change feed and health.
pub struct Store {
    backend: Backend,
    spec: StateSpec,
    prefix: String,
    replica: String,
    feed: broadcast::Sender<Change>,
    up: AtomicBool,
    observer: Arc<dyn StateObserver>,
    /// The leases of a store no other process writes to, kept in this process (see [`Store::lookup`]).
    leases: leases::LocalLeases,
    /// The answers of such leases not yet written (see [`Store::settle`]).
    settled: settled::Settled,
}

impl Store {
    /// Opens the backend: a SQLite file is created or checked now (a bad file is an error); a Redis client is
    /// only built (see [`Store::check`]). `replica` names this process in what it writes.
    pub fn open(
        spec: &StateSpec,
        prefix: &str,
        replica: &str,
        observer: Arc<dyn StateObserver>,
    ) -> Result<Store, StateError> {
        let backend = match spec {
            StateSpec::Memory => Backend::Memory(memory::Memory::default()),
            StateSpec::Sqlite(path) => Backend::Sqlite(sqlite::Sqlite::open(path)?),
            StateSpec::Redis(url) => Backend::Redis(Box::new(redis::Redis::new(url, OP_TIMEOUT)?)),
        };
        observer.backend_up(true);
        Ok(Store {
            backend,
            spec: spec.clone(),
            prefix: prefix.to_string(),
            replica: replica.to_string(),
            feed: broadcast::Sender::new(FEED_CAPACITY),
            up: AtomicBool::new(true),
            observer,
            leases: leases::LocalLeases::default(),
            settled: settled::Settled::default(),
        })
    }

    /// The backend as configured, without secrets.
    pub fn spec(&self) -> &StateSpec {
        &self.spec
    }

    /// This process's name in what it writes.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether the last operation succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// Times `op`, counts it, applies the timeout and keeps the health flag (one log line per change of health).
    async fn timed<R>(
        &self,
        op: &'static str,
        limit: Duration,
        work: impl Future<Output = Result<R, StateError>>,
    ) -> Result<R, StateError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(StateError::Timeout(limit)),
        };
        self.note(op, started, result)
    }

    /// Counts `op`, which started at `started` and ended with `result`, and keeps the health flag.
    fn note<R>(
        &self,
        op: &'static str,
        started: Instant,
        result: Result<R, StateError>,
    ) -> Result<R, StateError> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StateError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.observer.op(op, outcome, started.elapsed());
        if let (Err(_), Backend::Redis(r)) = (&result, &self.backend) {
            r.forget();
        }
        let up = result.is_ok();
        if self.up.swap(up, Ordering::Relaxed) != up {
            self.observer.backend_up(up);
            match &result {
                Ok(_) => {
                    tracing::info!(backend = %self.spec, "state backend is back: sharing resumes")
                }
                Err(error) => tracing::warn!(
                    backend = %self.spec,
                    "state backend degraded ({error}): serving on local state, reconnecting with backoff"
                ),
            }
        }
        result
    }

    /// Counts a record the writer had no room for.
    pub(crate) fn count_dropped(&self) {
        self.observer.op("enqueue", "dropped", Duration::ZERO);
    }

    /// Writes `entries` (keys without the prefix) and announces them on the change feed.
    pub async fn put_many(&self, entries: Vec<(String, Entry)>) -> Result<(), StateError> {
        let changes = self.write_many(entries, OP_TIMEOUT).await?;
        if !matches!(self.backend, Backend::Redis(_)) {
            for change in changes {
                let _ = self.feed.send(change);
            }
        }
        Ok(())
    }

    /// Writes `entries` (keys without the prefix) within `limit`, without announcing them on this process's
    /// feed (on Redis they are still published to the other replicas); returns the changes made.
    async fn write_many(
        &self,
        entries: Vec<(String, Entry)>,
        limit: Duration,
    ) -> Result<Vec<Change>, StateError> {
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(key, entry)| (self.full(&key), entry))
            .collect();
        let origin = self.replica.clone();
        let changes = self
            .timed("put", limit, async {
                match &self.backend {
                    Backend::Memory(m) => m.put_many(&entries, &origin),
                    Backend::Sqlite(s) => s.put_many(entries.clone(), origin.clone()).await,
                    Backend::Redis(r) => {
                        r.put_many(entries.clone(), origin.clone(), &self.channel())
                            .await
                    }
                }
            })
            .await?;
        Ok(changes)
    }

    /// The value under `key`, if any and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        let key = self.full(key);
        self.timed("get", OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.get(&key)),
                Backend::Sqlite(s) => s.get(key.clone()).await,
                Backend::Redis(r) => r.get(&key).await,
            }
        })
        .await
    }

    /// Every live record whose key starts with `prefix` (both without the store's prefix).
    pub async fn scan(
        &self,
        prefix: &str,
        limit: Duration,
    ) -> Result<Vec<(String, String)>, StateError> {
        let full = self.full(prefix);
        let found = self
            .timed("scan", limit, async {
                match &self.backend {
                    Backend::Memory(m) => Ok(m.scan(&full)),
                    Backend::Sqlite(s) => s.scan(full.clone()).await,
                    Backend::Redis(r) => r.scan(&full).await,
                }
            })
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(&self.prefix)?.to_string(), value)))
            .collect())
    }

    /// Stores `entry` under `key` only if the key holds nothing live: a lease. `true` if this call took it.
    pub async fn claim(&self, key: &str, entry: Entry) -> Result<bool, StateError> {
        let key = self.full(key);
        self.timed("claim", OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => m.set_if_absent(&key, &entry),
                Backend::Sqlite(s) => s.set_if_absent(key.clone(), entry.clone()).await,
                Backend::Redis(r) => r.set_if_absent(&key, &entry).await,
            }
        })
        .await
    }

    /// Deletes `key` only if it still holds `value` (a lease given back by its holder).
    pub async fn release(&self, key: &str, value: &str) -> Result<bool, StateError> {
        let key = self.full(key);
        self.timed("release", OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.delete_if(&key, value)),
                Backend::Sqlite(s) => s.delete_if(key.clone(), value.to_string()).await,
                Backend::Redis(r) => r.delete_if(&key, value).await,
            }
        })
        .await
    }

    /// Adds `amount` to the number under `key` atomically (a missing or expired key counts as 0) and returns the
    /// new total, shared by every process on the same store. `ttl` is set when the key is created and kept by
    /// later additions, so a counter of a period ends with it (`None`: kept until deleted). Adding 0 reads it.
    pub async fn add(
        &self,
        key: &str,
        amount: f64,
        ttl: Option<Duration>,
    ) -> Result<f64, StateError> {
        let key = self.full(key);
        self.timed("add", OP_TIMEOUT, async {
            match &self.backend {
                Backend::Memory(m) => m.add(&key, amount, ttl),
                Backend::Sqlite(s) => s.add(key.clone(), amount, ttl).await,
                Backend::Redis(r) => r.add(&key, amount, ttl).await,
            }
        })
        .await
    }

    /// Connects and says what was found (`redis 7.2.4 at host:6379, database 0`), without secrets.
    pub async fn check(&self, limit: Duration) -> Result<String, StateError> {
        self.timed("check", limit, async {
            match &self.backend {
                Backend::Memory(_) => {
                    Ok("memory: this process only, forgotten on restart".to_string())
                }
                Backend::Sqlite(s) => s.describe().await,
                Backend::Redis(r) => r.describe().await,
            }
        })
        .await
    }

    /// The changes written by anyone (keys with the store's prefix; see [`Store::local_key`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// `key` without the store's prefix, if it has it.
    pub fn local_key<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)
    }

    /// Whether other processes write to this store while it runs (a Redis server).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Forwards the Redis change channel into the feed until no one listens, signalling `ready` once subscribed;
    /// returns at once for other backends.
    pub async fn run_feed(&self, ready: oneshot::Sender<()>) {
        match &self.backend {
            Backend::Redis(r) => r.feed(self.channel(), self.feed.clone(), Some(ready)).await,
            Backend::Memory(_) | Backend::Sqlite(_) => {
                let _ = ready.send(());
            }
        }
    }
}
