//! One breaker and one HTTP client per tool or MCP server, kept across requests and rebuilt
//! when a reload changes the tool's breaker or connect settings.

use crate::config::{BreakerSettings, ToolUpstream};
use crate::metrics::Metrics;
use crate::pipeline::GatewayObserver;
use backstop_core::{Breaker, BreakerConfig};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The health of one tool: its breaker and its connection pool.
pub struct ToolHealth {
    /// The breaker (its name is the tool's metric label).
    pub breaker: Arc<Breaker>,
    /// The pool its calls go through, with its connect timeout.
    pub client: reqwest::Client,
    breaker_settings: BreakerSettings,
    connect: Duration,
}

/// Every tool's health, by label (`NAME` for a tool, `mcp/NAME` for an MCP server).
#[derive(Default)]
pub struct ToolHealthMap(RwLock<HashMap<String, Arc<ToolHealth>>>);

impl ToolHealthMap {
    /// The health of `label`, made on first use and again when its settings changed.
    pub fn get(
        &self,
        label: &str,
        upstream: &ToolUpstream,
        metrics: &Arc<Metrics>,
    ) -> Result<Arc<ToolHealth>, reqwest::Error> {
        let fits = |health: &ToolHealth| {
            health.breaker_settings == upstream.breaker
                && health.connect == upstream.timeouts.connect
        };
        if let Some(found) = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(label)
            .filter(|health| fits(health))
        {
            return Ok(found.clone());
        }
        let mut map = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = map.get(label).filter(|health| fits(health)) {
            return Ok(found.clone());
        }
        let client = crate::client::builder()
            .connect_timeout(upstream.timeouts.connect)
            .retry(reqwest::retry::never())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("backstop/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let b = &upstream.breaker;
        let config = BreakerConfig {
            failure_threshold: b.failure_threshold,
            failure_rate: b.failure_rate,
            window: b.window,
            min_calls: b.min_calls,
            open_for: b.open_for,
            half_open_probes: b.half_open_probes,
            success_threshold: b.success_threshold,
        };
        let observer = Arc::new(GatewayObserver::new(metrics.clone()));
        let health = Arc::new(ToolHealth {
            breaker: Arc::new(Breaker::new_with_observer(label, config, observer)),
            client,
            breaker_settings: upstream.breaker.clone(),
            connect: upstream.timeouts.connect,
        });
        map.insert(label.to_string(), health.clone());
        Ok(health)
    }

    /// Every tool's label and health, sorted by label.
    pub fn all(&self) -> Vec<(String, Arc<ToolHealth>)> {
        let mut all: Vec<_> = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
