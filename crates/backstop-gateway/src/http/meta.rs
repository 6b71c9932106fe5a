//! The `x-backstop-*` response headers: which model and target served, after how
//! many upstream calls, and at which tier.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `x-backstop-model`. The names are constants: a name given as `&str` is copied into a new
/// allocation each time it is inserted.
pub const MODEL: HeaderName = HeaderName::from_static("x-backstop-model");
/// `x-backstop-target`.
pub const TARGET: HeaderName = HeaderName::from_static("x-backstop-target");
/// `x-backstop-attempts`.
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-backstop-attempts");
/// `x-backstop-fallback`.
pub const FALLBACK: HeaderName = HeaderName::from_static("x-backstop-fallback");
/// `x-backstop-tier`.
pub const TIER: HeaderName = HeaderName::from_static("x-backstop-tier");
/// `x-backstop-cost-usd`.
pub const COST_USD: HeaderName = HeaderName::from_static("x-backstop-cost-usd");

/// How a request was served (or last tried), reported in response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedMeta {
    /// Public model that served (or was asked for, on an error).
    pub model: String,
    /// `provider/upstream-model` that served or was tried last.
    pub target: Option<String>,
    /// Upstream calls made for this request.
    pub attempts: u32,
    /// True when a model other than the one asked for served.
    pub fallback: bool,
    /// The tier of an answer no model gave now: `cached` or `static`, or `queued` for a 202.
    pub degraded: Option<&'static str>,
}

impl ServedMeta {
    /// `full`, `reduced` when a fallback model served, or the degraded tier.
    pub fn tier(&self) -> &'static str {
        if let Some(tier) = self.degraded {
            tier
        } else if self.fallback {
            "reduced"
        } else {
            "full"
        }
    }

    /// Reads the headers back from a response (for metrics and the request log).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        Some(Self {
            model: text(&MODEL)?.to_string(),
            target: text(&TARGET).map(str::to_string),
            attempts: text(&ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or(0),
            fallback: text(&FALLBACK) == Some("true"),
            degraded: match text(&TIER) {
                Some("cached") => Some("cached"),
                Some("static") => Some("static"),
                Some("queued") => Some("queued"),
                _ => None,
            },
        })
    }

    /// Writes the headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.model) {
            headers.insert(MODEL, value);
        }
        if let Some(value) = self
            .target
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(TARGET, value);
        }
        headers.insert(ATTEMPTS, HeaderValue::from(self.attempts));
        headers.insert(
            FALLBACK,
            HeaderValue::from_static(if self.fallback { "true" } else { "false" }),
        );
        headers.insert(TIER, HeaderValue::from_static(self.tier()));
    }
}
