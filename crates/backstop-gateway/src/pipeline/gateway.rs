//! The running gateway: the configuration in force (swapped whole on reload), the
//! upstream client, per-target health, the retry budget, the budget of buffered bytes,
//! metrics, injected faults, and the deadline of a shutdown in progress.

use super::buffers::BufferBudget;
use super::events::GatewayObserver;
use super::inject::{InjectedFault, InjectedKind};
use super::relay::cadence::UsualPause;
use super::reload::{self, ReloadError, Reloaded};
use crate::config::{self, Config, Model};
use crate::http::{ApiError, ErrorKind};
use crate::metrics::{Metrics, TargetSeries};
use crate::redact::Redactor;
use crate::responses::ResponseStore;
use crate::telemetry::Telemetry;
use crate::upstream::UpstreamClient;
use arc_swap::ArcSwap;
use backstop_core::{Breaker, BreakerConfig, LatencyStats, RetryBudget};
use backstop_state::{State, Targets};
use std::collections::HashMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The most model names zero-config mode serves. The names come from clients, and each has
/// its own breaker and metric labels, so they are bounded: past it, a new name is a 404.
const MAX_ZERO_CONFIG_MODELS: usize = 1024;

/// Health of one target: its circuit breaker and its latency statistics.
pub struct TargetHealth {
    /// The breaker (shared with the engine's candidates).
    pub breaker: Arc<Breaker>,
    /// Time to first byte.
    pub latency: LatencyStats,
    /// Set once the target has rejected an assistant prefill (here or, through the state store, on another
    /// replica): it is not asked to continue again.
    pub prefill_rejected: Arc<AtomicBool>,
    /// The longest pauses its complete streams make (for `idle = "auto"`).
    pub usual_pause: UsualPause,
    /// The state layer that shares what is learned about this target, when one is attached.
    state: Option<Arc<Targets>>,
    /// Its series that each answer updates, looked up at its first byte.
    series: OnceLock<TargetSeries>,
}

impl TargetHealth {
    /// The target's series that each answer updates, in `metrics`.
    pub fn series(&self, metrics: &Metrics) -> &TargetSeries {
        self.series
            .get_or_init(|| metrics.of_target(self.breaker.name()))
    }

    /// Notes that the target rejected an assistant prefill, and shares it.
    pub fn learn_prefill_rejected(&self) {
        self.prefill_rejected.store(true, Ordering::Relaxed);
        if let Some(state) = &self.state {
            state.learned(self.breaker.name(), PREFILL_REJECTED);
        }
    }
}

/// The capability name under which a rejected prefill is shared.
const PREFILL_REJECTED: &str = "prefill_rejected";

/// What a reload swaps at once.
struct Live {
    config: Arc<Config>,
    client: Arc<UpstreamClient>,
    budget: Arc<RetryBudget>,
    redactor: Arc<Redactor>,
    buffers: Arc<BufferBudget>,
}

/// The running gateway.
pub struct Gateway {
    live: ArcSwap<Live>,
    config_path: Option<PathBuf>,
    reloading: Mutex<()>,
    health: RwLock<HashMap<String, Arc<TargetHealth>>>,
    zero_models: RwLock<HashMap<String, Arc<Model>>>,
    faults: Arc<RwLock<HashMap<String, InjectedFault>>>,
    metrics: Arc<Metrics>,
    drain: watch::Sender<Option<Instant>>,
    state: OnceLock<Arc<State>>,
    responses: crate::responses::Stores,
    status_board: crate::status_page::StatusBoard,
    tool_health: crate::tools::ToolHealthMap,
    telemetry: Option<Arc<Telemetry>>,
    keep: crate::keep::Keep,
    governance: Arc<crate::governance::Governance>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Gateway {
    /// A gateway for `config`.
    pub fn new(config: Config) -> Result<Self, crate::upstream::ClientBuildError> {
        Self::with_path(config, None)
    }

    /// A gateway for `config`, loaded from `path` (used by reload).
    pub fn with_path(
        config: Config,
        path: Option<PathBuf>,
    ) -> Result<Self, crate::upstream::ClientBuildError> {
        let metrics = Arc::new(Metrics::new());
        let telemetry = config
            .telemetry
            .as_ref()
            .and_then(|settings| Telemetry::start(settings, metrics.clone()));
        Ok(Self {
            telemetry,
            live: ArcSwap::from_pointee(Live::new(config)?),
            config_path: path,
            reloading: Mutex::new(()),
            health: RwLock::new(HashMap::new()),
            zero_models: RwLock::new(HashMap::new()),
            faults: Arc::default(),
            metrics,
            drain: watch::Sender::new(None),
            state: OnceLock::new(),
            responses: Default::default(),
            status_board: Default::default(),
            tool_health: Default::default(),
            keep: Default::default(),
            governance: Default::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// The upstream HTTP client.
    pub fn client(&self) -> Arc<UpstreamClient> {
        self.live.load().client.clone()
    }

    /// The retry budget shared by all requests.
    pub fn budget(&self) -> Arc<RetryBudget> {
        self.live.load().budget.clone()
    }

    /// The budget of bytes that upstream answers may hold in memory, over all requests.
    pub fn buffers(&self) -> Arc<BufferBudget> {
        self.live.load().buffers.clone()
    }

    /// Makes every relayed stream, in flight or still to come, end at `deadline` at the
    /// latest with an error event saying that the gateway is shutting down; such a cut is
    /// not counted against the target. Requests that have not reached their first byte by
    /// then end with a 503. Called on SIGTERM with the end of the shutdown grace; a later
    /// call can only bring the deadline closer.
    pub fn drain(&self, deadline: Instant) {
        self.drain.send_modify(|current| {
            *current = Some(current.map_or(deadline, |earlier| earlier.min(deadline)));
        });
    }

    /// When the gateway stops serving, once [`Gateway::drain`] was called.
    pub fn drain_deadline(&self) -> Option<Instant> {
        *self.drain.borrow()
    }

    /// Follows the drain deadline, for streams that must notice it while they wait.
    pub(crate) fn watch_drain(&self) -> watch::Receiver<Option<Instant>> {
        self.drain.subscribe()
    }

    /// Where answers of the Responses API are stored.
    pub fn response_store(&self) -> ResponseStore {
        self.responses.resolve(self.state())
    }

    /// What the providers' status pages say.
    pub fn status_board(&self) -> &crate::status_page::StatusBoard {
        &self.status_board
    }

    /// The breakers and clients of tools and MCP servers.
    pub fn tool_health(&self) -> &crate::tools::ToolHealthMap {
        &self.tool_health
    }

    /// The trace export, when `[telemetry]` turned it on (at start; a reload keeps it).
    pub fn telemetry(&self) -> Option<&Arc<Telemetry>> {
        self.telemetry.as_ref()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The secrets of the configuration in force, to mask in what upstreams say.
    pub fn redactor(&self) -> Arc<Redactor> {
        self.live.load().redactor.clone()
    }

    /// Reloads the config file; a bad file, or one that would weaken authentication or
    /// leave no model, is refused and the running config stays. Breakers are kept for
    /// targets whose label survives, unless breaker settings changed; the targets of
    /// removed models are forgotten. Requests are served throughout: no lock they take is
    /// held while the file is read and checked (run it off the async workers).
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut config = config::load(path)?;
        let old = self.config();
        let restart_required = reload::vet(&old, &mut config)?;
        let breaker_changed = config.breaker != old.breaker;
        let labels: HashSet<String> = config
            .models
            .values()
            .flat_map(|model| model.targets.iter().map(|t| t.label.to_string()))
            .collect();
        let mut live = Live::new(config)?;
        if live.config.server.max_buffered_bytes == old.server.max_buffered_bytes {
            live.buffers = self.buffers();
        }
        self.live.store(Arc::new(live));
        if breaker_changed {
            write(&self.health).clear();
        } else {
            write(&self.health).retain(|label, _| labels.contains(label));
        }
        write(&self.faults).retain(|label, _| labels.contains(label));
        write(&self.zero_models).clear();
        Ok(Reloaded {
            config: self.config(),
            restart_required,
        })
    }

    /// The health record of the target labelled `label`, created on first use.
    pub fn health(&self, label: &str) -> Arc<TargetHealth> {
        if let Some(found) = read(&self.health).get(label) {
            return found.clone();
        }
        let config = self.config();
        write(&self.health)
            .entry(label.to_string())
            .or_insert_with(|| {
                let observer = Arc::new(GatewayObserver::new(self.metrics.clone()));
                let breaker = Breaker::new_with_observer(label, breaker_config(&config), observer);
                let prefill_rejected = Arc::new(AtomicBool::new(false));
                let state = self.state.get().map(|state| state.targets().clone());
                if let Some(state) = &state {
                    let flags = vec![(PREFILL_REJECTED.to_string(), prefill_rejected.clone())];
                    state.register(&breaker, flags);
                }
                Arc::new(TargetHealth {
                    breaker: Arc::new(breaker),
                    latency: LatencyStats::new(),
                    prefill_rejected,
                    usual_pause: UsualPause::default(),
                    state,
                    series: OnceLock::new(),
                })
            })
            .clone()
    }

    /// Keeps breakers, rate-limit holds and learned capabilities in `state` (only the first call counts): the
    /// targets known so far are forgotten and come back registered with it, adopting what it holds.
    pub fn attach_state(&self, state: State) {
        let faults = self.faults.clone();
        state
            .targets()
            .on_fault(Arc::new(move |label, fault, until| {
                let kind =
                    fault.and_then(|f| serde_json::from_value::<InjectedKind>(f.clone()).ok());
                let mut faults = write(&faults);
                match kind {
                    Some(kind) => {
                        faults.insert(label.to_string(), InjectedFault { kind, until });
                    }
                    None => {
                        faults.remove(label);
                    }
                }
            }));
        let store = state.store().clone();
        if self.state.set(Arc::new(state)).is_ok() {
            self.governance.attach(store);
            write(&self.health).clear();
            self.targets();
        }
    }

    /// What the gateway keeps for the cache and idempotency keys (see [`crate::keep`]).
    pub fn keep(&self) -> &crate::keep::Keep {
        &self.keep
    }

    /// Client keys' budgets and rate limits, with their shared counters.
    pub fn governance(&self) -> &Arc<crate::governance::Governance> {
        &self.governance
    }

    /// The state layer, once attached.
    pub fn state(&self) -> Option<&Arc<State>> {
        self.state.get()
    }

    /// Every target known so far with its health, sorted by label.
    pub fn targets(&self) -> Vec<(String, Arc<TargetHealth>)> {
        let config = self.config();
        for model in config.models.values() {
            for target in &model.targets {
                self.health(&target.label);
            }
        }
        let mut all: Vec<_> = read(&self.health)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Injects `fault` into the target `label`, on every replica that shares the state.
    pub fn inject(&self, label: &str, fault: InjectedFault) {
        write(&self.faults).insert(label.to_string(), fault);
        if let Some(state) = self.state() {
            let kind = serde_json::to_value(fault.kind).ok();
            state.targets().share_fault(label, kind, fault.until);
        }
    }

    /// Clears the injected fault of `label`, or all of them, on every replica that shares the
    /// state.
    pub fn clear_faults(&self, label: Option<&str>) {
        let cleared: Vec<String> = {
            let mut faults = write(&self.faults);
            match label {
                Some(label) => {
                    faults.remove(label);
                    vec![label.to_string()]
                }
                None => faults.drain().map(|(label, _)| label).collect(),
            }
        };
        if let Some(state) = self.state() {
            for label in cleared {
                state.targets().share_fault(&label, None, Instant::now());
            }
        }
    }

    /// The active injected fault of `label`, if any.
    pub fn injected(&self, label: &str) -> Option<InjectedFault> {
        let faults = read(&self.faults);
        if faults.is_empty() {
            return None;
        }
        faults.get(label).copied().filter(InjectedFault::active)
    }

    /// The public model called `name` in `config`, or a 404 listing the known ones.
    pub fn resolve(&self, config: &Config, name: &str) -> Result<Arc<Model>, ApiError> {
        if let Some(model) = config.models.get(name) {
            return Ok(model.clone());
        }
        if !config.zero_config {
            let known: Vec<&str> = config.models.keys().map(String::as_str).collect();
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "model `{name}` does not exist; known models: {}",
                    known.join(", ")
                ),
            ));
        }
        if let Some(model) = read(&self.zero_models).get(name) {
            return Ok(model.clone());
        }
        if let Some(model) = config::zero_config_model(config, name) {
            let mut known = write(&self.zero_models);
            if known.len() >= MAX_ZERO_CONFIG_MODELS {
                return Err(ApiError::new(
                    ErrorKind::NotFound,
                    format!("model `{name}` is not served: zero-config mode serves at most {MAX_ZERO_CONFIG_MODELS} model names; name the models in a config file (--config FILE)"),
                ));
            }
            let model = Arc::new(model);
            known.insert(name.to_string(), model.clone());
            return Ok(model);
        }
        if config.providers.is_empty() {
            return Err(ApiError::new(
                ErrorKind::NotConfigured,
                format!(
                    "no provider is configured: set {}, or start with --config FILE",
                    crate::config::key_variables()
                ),
            ));
        }
        let names: Vec<&str> = config.providers.keys().map(String::as_str).collect();
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "model `{name}` is not served: zero-config mode serves models of {} by their own names (e.g. gpt-4o-mini, claude-sonnet-4-5, gemini-2.5-flash)",
                names.join(", ")
            ),
        ))
    }
}

impl Live {
    fn new(config: Config) -> Result<Self, crate::upstream::ClientBuildError> {
        let client = Arc::new(UpstreamClient::new(config.timeouts.connect)?);
        let budget = Arc::new(RetryBudget::new(
            config.retry.budget_ratio,
            config.retry.budget_min_per_second,
            Duration::from_secs(10),
        ));
        let buffers = Arc::new(BufferBudget::new(config.server.max_buffered_bytes));
        Ok(Self {
            redactor: Arc::new(config.redactor()),
            config: Arc::new(config),
            client,
            budget,
            buffers,
        })
    }
}

fn breaker_config(config: &Config) -> BreakerConfig {
    let b = &config.breaker;
    BreakerConfig {
        failure_threshold: b.failure_threshold,
        failure_rate: b.failure_rate,
        window: b.window,
        min_calls: b.min_calls,
        open_for: b.open_for,
        half_open_probes: b.half_open_probes,
        success_threshold: b.success_threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_config_serves_a_bounded_number_of_model_names() {
        let config =
            config::zero_config(&|name| (name == "OPENAI_API_KEY").then(|| "sk-test".to_string()));
        let gateway = Gateway::new(config.clone()).unwrap();
        for index in 0..MAX_ZERO_CONFIG_MODELS {
            let model = gateway.resolve(&config, &format!("gpt-{index}")).unwrap();
            assert_eq!(model.name, format!("gpt-{index}"));
        }
        assert!(
            gateway.resolve(&config, "gpt-0").is_ok(),
            "known names still served"
        );
        let refused = gateway.resolve(&config, "gpt-new").unwrap_err();
        assert_eq!(refused.status, http::StatusCode::NOT_FOUND);
        assert!(
            refused.message.contains("at most 1024"),
            "{}",
            refused.message
        );
    }
}
