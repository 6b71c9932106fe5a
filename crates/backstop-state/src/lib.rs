//! Shared, durable state for Backstop: what one process learns about its targets, kept where a restart and the
//! other replicas find it.
//!
//! A breaker alone knows only its own process's calls: a restart forgets that a provider is down and hammers it
//! again, and two replicas each pay their own failures to learn what the other already knows. This crate keeps
//! each target's breaker transitions (state, opened at, until, why, forced by an operator, which replica),
//! rate-limit holds and learned capabilities in a [`Store`], with three backends chosen by a [`StateSpec`]:
//!
//! - `memory`: this process only (tests, throwaway runs);
//! - `sqlite:PATH`: an embedded file in WAL mode; survives restarts, one node;
//! - `redis://` / `rediss://`: shared by every replica, with a pub/sub change feed and a periodic resync.
//!
//! **The request path never waits on the store.** Breakers are checked in local memory; their transitions reach
//! the store through a batching background [`writer`], and changes made elsewhere are applied by a sync task
//! (see [`targets`]). A store that is down, slow (over [`backend::OP_TIMEOUT`]) or full is logged once, reported
//! through the [`StateObserver`], and retried with backoff; meanwhile every replica serves on its local state.
//!
//! The store is a set of keyed records with a time to live, set-if-absent leases and a change feed, so later
//! kinds of state (cached answers, queued jobs, idempotency records, spend counters) live in the same place.
//!
//! ```no_run
//! # async fn demo() -> Result<(), backstop_state::StateError> {
//! use backstop_core::{Breaker, BreakerConfig};
//! use backstop_state::{NoStateObserver, State, StateSpec};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let spec = StateSpec::parse("redis://127.0.0.1:6379/0")?;
//! let state = State::open(&spec, "backstop:", Duration::from_secs(30), Arc::new(NoStateObserver)).await?;
//! let breaker = Breaker::new_with_observer("openai/gpt-4o", BreakerConfig::default(), Arc::new(backstop_core::NoopObserver));
//! state.targets().register(&breaker, Vec::new());
//! # Ok(()) }
//! ```

pub mod backend;
pub mod checkpoint;
mod error;
pub mod queue;
pub mod record;
pub mod records;
mod spec;
mod sync;
pub mod targets;
pub mod writer;

pub use backend::Store;
pub use error::StateError;
pub use queue::Queue;
pub use spec::{redact_url, StateSpec, DEFAULT_PREFIX, DEFAULT_SQLITE_PATH};
pub use targets::Targets;

use std::sync::Arc;
use std::time::Duration;

/// Receives the store's health and operations, for metrics. Called synchronously; keep it quick.
pub trait StateObserver: Send + Sync + 'static {
    /// One operation (`put`, `get`, `scan`, `claim`, `release`, `check`) ended with `outcome` (`ok`, `error`,
    /// `timeout`) after `elapsed`.
    fn op(&self, _op: &str, _outcome: &str, _elapsed: Duration) {}

    /// The backend went up or down.
    fn backend_up(&self, _up: bool) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStateObserver;

impl StateObserver for NoStateObserver {}

/// How long a startup read of the whole state may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The state layer of one process: the store, its writer, and the targets kept in step with it.
pub struct State {
    store: Arc<Store>,
    targets: Arc<Targets>,
    queue: Arc<Queue>,
}

impl State {
    /// Opens the store, reads what it holds, and starts the writer and the sync task (needs a Tokio runtime).
    ///
    /// A bad setting or SQLite file is an error ([`StateError::is_config`]). An unreachable Redis is not: the
    /// store is reported down (one warning) and the process runs on local state until it comes back.
    ///
    /// `lease_ttl` bounds how long a half-open probe lease is held (the breakers' `open_for` is a good value: a
    /// replica that dies while probing holds the others back for at most that long).
    pub async fn open(
        spec: &StateSpec,
        prefix: &str,
        lease_ttl: Duration,
        observer: Arc<dyn StateObserver>,
    ) -> Result<State, StateError> {
        let store = Arc::new(Store::open(spec, prefix, &replica_name(), observer)?);
        let writer = writer::Writer::spawn(store.clone());
        let lease_ttl = lease_ttl.max(Duration::from_millis(100));
        let targets = Targets::new(store.clone(), writer, lease_ttl);
        let queue = Arc::new(Queue::new(store.clone()));
        let state = State {
            store,
            targets,
            queue,
        };
        let subscribed = sync::spawn(state.store.clone(), state.targets.clone());
        let _ = tokio::time::timeout(LOAD_TIMEOUT, subscribed).await;
        state.resync().await;
        Ok(state)
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The targets kept in step with the store.
    pub fn targets(&self) -> &Arc<Targets> {
        &self.targets
    }

    /// The durable queue of jobs kept in the store.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    async fn resync(&self) {
        sync::resync(&self.store, &self.targets, LOAD_TIMEOUT, true).await;
    }
}

/// This state layer's name in what it writes: the host name and a random suffix, so a restart is a
/// new replica and so are two state layers in one process.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "backstop".to_string());
    format!("{host}-{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replicas_opened_at_once_have_their_own_names() {
        let names: std::collections::HashSet<String> =
            (0..100).map(|_| super::replica_name()).collect();
        assert_eq!(names.len(), 100);
    }
}
