//! The tab of one request: what its attempts cost, charged to its client key as usage comes in, and shown to the
//! caller in `x-backstop-cost-usd`.

use super::Governance;
use crate::config::ClientKey;
use crate::metrics::Metrics;
use http::{HeaderMap, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What one request has cost so far.
pub struct Tab {
    key: Option<Arc<ClientKey>>,
    model: String,
    governance: Arc<Governance>,
    /// Dollars as `f64` bits.
    spent: AtomicU64,
}

impl Tab {
    /// A tab for a request of `key` (`None`: no key is required) for the public model `model`.
    pub fn new(governance: Arc<Governance>, key: Option<Arc<ClientKey>>, model: &str) -> Self {
        Self {
            key,
            model: model.to_string(),
            governance,
            spent: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// The client key, if a key was presented.
    pub fn key(&self) -> Option<&ClientKey> {
        self.key.as_deref()
    }

    /// Charges one attempt's (or one call's) usage: `usd` (`None` when the model has no price) and `tokens`.
    pub fn charge(&self, metrics: &Metrics, usd: Option<f64>, tokens: u64) {
        let usd = usd.unwrap_or(0.0);
        let _ = self
            .spent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + usd).to_bits())
            });
        if let Some(key) = &self.key {
            self.governance.charge(key, &self.model, usd, tokens);
            if usd > 0.0 {
                metrics.governance().spend(&key.name, &self.model, usd);
            }
        }
    }

    /// What the request has cost so far, in dollars.
    pub fn spent(&self) -> f64 {
        f64::from_bits(self.spent.load(Ordering::Relaxed))
    }

    /// Sets `x-backstop-cost-usd` to what the request has cost so far.
    pub fn stamp(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&format!("{:.6}", self.spent())) {
            headers.insert(crate::http::COST_USD, value);
        }
    }
}

/// Sets `x-backstop-cost-usd` on a whole (not streamed) answer to what its request cost, every attempt included.
/// A stream's cost is known only at its end, after its headers: it is in the spend metrics.
pub fn stamp_cost(
    request: &crate::pipeline::ClientRequest,
    result: &mut Result<axum::response::Response, crate::http::ApiError>,
) {
    if let (Ok(response), Some(tab), false) = (result, &request.tab, request.envelope.stream) {
        tab.stamp(response.headers_mut());
    }
}
