//! The gateway's side of the state layer: opening the configured store at start, and testing it for
//! `backstop check`.

use crate::config::Config;
use crate::metrics::Metrics;
use backstop_state::{NoStateObserver, State, StateError, Store};
use std::sync::Arc;
use std::time::Duration;

/// How long `backstop check` waits for the backend.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the store named by `state` and starts keeping it in step. A bad setting or SQLite file is an error
/// naming the key (exit 2); an unreachable Redis is logged once and the gateway serves on local state.
pub async fn open(config: &Config, metrics: &Metrics) -> Result<State, String> {
    let observer = Arc::new(metrics.state().clone());
    let state = State::open(
        &config.state,
        &config.state_prefix,
        config.breaker.open_for,
        observer,
    )
    .await
    .map_err(|error| format!("config error at `state`: {error}"))?;
    if let Err(error) = state.store().check(CHECK_TIMEOUT).await {
        tracing::warn!(backend = %config.state, "state backend unreachable at start ({error}): serving on local state until it answers");
    }
    Ok(state)
}

/// Connects to the configured backend and says what it found, for `backstop check` (never a secret).
pub async fn describe(config: &Config) -> Result<String, StateError> {
    let store = Store::open(
        &config.state,
        &config.state_prefix,
        "check",
        Arc::new(NoStateObserver),
    )?;
    store.check(CHECK_TIMEOUT).await
}
