//! The configuration file as written: serde structs that reject unknown keys.
//! Values are checked and references resolved in [`super::validate`].

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub state: Option<String>,
    pub state_prefix: Option<String>,
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    pub retry: Option<RawRetry>,
    pub timeouts: Option<RawTimeouts>,
    pub circuit_breaker: Option<RawBreaker>,
    pub server: Option<RawServer>,
    pub responses: Option<RawResponses>,
    pub queue: Option<super::queue::RawQueue>,
    #[serde(default)]
    pub tools: BTreeMap<String, RawTool>,
    #[serde(default)]
    pub mcp: BTreeMap<String, RawMcp>,
    pub telemetry: Option<RawTelemetry>,
    pub guard: Option<super::keep::RawGuard>,
    pub idempotency: Option<super::keep::RawIdempotency>,
    #[serde(default)]
    pub keys: Vec<super::keys::RawKey>,
    pub catalog: Option<super::catalog::RawCatalog>,
    pub rate_limit: Option<RawRateLimit>,
}

/// `[auth]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub client_keys: Vec<String>,
    pub admin_key: Option<String>,
    pub open: Option<bool>,
    pub protect_metrics: Option<bool>,
}

/// `[providers.NAME]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub anthropic_version: Option<String>,
    // The keys below are the cloud channels' own (azure, bedrock, vertex).
    pub api_version: Option<String>,
    pub azure_ad_token: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub project: Option<String>,
    pub location: Option<String>,
    pub credentials_file: Option<String>,
    pub access_token: Option<String>,
    pub token_url: Option<String>,
    pub status_page: Option<String>,
    pub status_poll: Option<String>,
    pub on_major_incident: Option<String>,
    pub responses: Option<bool>,
}

/// One entry of `targets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub provider: String,
    #[serde(default)]
    pub model: String,
    pub catalog: Option<String>,
    pub weight: Option<u32>,
}

/// `[models.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    pub context_window: Option<u64>,
    pub price: Option<RawPrice>,
    pub retry: Option<RawRetry>,
    pub balance: Option<String>,
    pub on_content_filter: Option<String>,
    pub prefill: Option<bool>,
    pub stream_buffer: Option<String>,
    pub max_rescues: Option<u32>,
    pub idle: Option<String>,
    pub rescue_restart: Option<String>,
    pub static_response: Option<String>,
    pub queue: Option<String>,
    pub structured: Option<RawStructured>,
    pub hedge: Option<RawHedge>,
    pub max_stream_bytes: Option<RawSize>,
    pub max_rescue_text: Option<RawSize>,
    pub embedding_space: Option<String>,
    pub cache: Option<super::keep::RawCache>,
    pub guard_tiers: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub on_drift: Option<String>,
}

/// A byte size: a string with a unit (`"64MB"`, `"512KiB"`) or an integer of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    /// `"64MB"`, `"1048576"`.
    Text(String),
    /// `1048576`.
    Bytes(i64),
}

/// `hedge = { delay = "2s" }` or `{ delay = "p95" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHedge {
    pub delay: String,
}

/// `price = { input = 3.0, output = 15.0 }`, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
}

/// `[retry]` and `[models.NAME.retry]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub base_delay: Option<String>,
    pub max_delay: Option<String>,
    pub respect_retry_after: Option<bool>,
    pub budget_ratio: Option<f64>,
    pub budget_min_per_second: Option<u32>,
}

/// `[timeouts]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub first_byte: Option<String>,
    pub idle: Option<String>,
    pub idle_floor: Option<String>,
    pub idle_max: Option<String>,
    pub total: Option<String>,
}

/// `[circuit_breaker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failure_threshold: Option<u32>,
    pub open_for: Option<String>,
    pub success_threshold: Option<u32>,
    pub failure_rate: Option<f64>,
    pub window: Option<String>,
    pub min_calls: Option<u32>,
    pub half_open_probes: Option<u32>,
}

/// `[server]`: limits of the HTTP server itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_body_size: Option<String>,
    pub shutdown_grace: Option<String>,
    pub threads: Option<i64>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub max_buffered_bytes: Option<RawSize>,
}

/// `structured = { max_corrections = N, check = BOOL }` of a model.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStructured {
    pub max_corrections: Option<u32>,
    pub check: Option<bool>,
}

/// `[responses]`: stored Responses API answers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponses {
    pub ttl: Option<String>,
    pub max_bytes: Option<RawSize>,
}

/// `[tools.NAME]`: an HTTP tool API proxied at `/tools/NAME/{path}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    pub base_url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeouts: Option<RawToolTimeouts>,
    pub retry: Option<RawToolRetry>,
    pub circuit_breaker: Option<RawBreaker>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    pub on_failure: Option<String>,
    pub message: Option<String>,
    pub max_response_bytes: Option<RawSize>,
}

/// `[mcp.NAME]`: an MCP server (Streamable HTTP) proxied at `/mcp/NAME`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeouts: Option<RawToolTimeouts>,
    pub retry: Option<RawToolRetry>,
    pub circuit_breaker: Option<RawBreaker>,
    pub max_response_bytes: Option<RawSize>,
}

/// `timeouts` of a tool or MCP server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToolTimeouts {
    pub connect: Option<String>,
    pub first_byte: Option<String>,
    pub total: Option<String>,
}

/// `retry` of a tool or MCP server: the `[retry]` keys and `post`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToolRetry {
    pub max_attempts: Option<u32>,
    pub base_delay: Option<String>,
    pub max_delay: Option<String>,
    pub respect_retry_after: Option<bool>,
    pub post: Option<bool>,
}

/// `[telemetry]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
}

/// `[rate_limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub headroom: Option<f64>,
}
