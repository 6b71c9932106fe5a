//! The validated configuration: every reference resolved, every value parsed.

use backstop_protocol::{ProviderKind, ProviderSpec};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A secret string (API key). Its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// Where shared state lives.
    pub state: StateSpec,
    /// The prefix of every key in the state store (`state_prefix`).
    pub state_prefix: String,
    /// Client and admin keys; `None` leaves the gateway open.
    pub auth: Option<Auth>,
    /// Upstream providers by name.
    pub providers: BTreeMap<String, Arc<Provider>>,
    /// Public models by name.
    pub models: BTreeMap<String, Arc<Model>>,
    /// Timeouts shared by every request.
    pub timeouts: Timeouts,
    /// Circuit breaker settings, one breaker per target.
    pub breaker: BreakerSettings,
    /// Gateway-wide retry defaults (models may override them).
    pub retry: RetrySettings,
    /// HTTP server limits.
    pub server: ServerSettings,
    /// Stored Responses API answers.
    pub responses: ResponsesSettings,
    /// `[queue]`: the durable queue.
    pub queue: super::QueueSettings,
    /// The OpenTelemetry export; `None` (the default): no spans at all.
    pub telemetry: Option<super::TelemetrySettings>,
    /// Built from the environment, with no file: any model name of a configured provider is served.
    pub zero_config: bool,
    /// Tool APIs by name (`[tools.NAME]`).
    pub tools: BTreeMap<String, Arc<super::Tool>>,
    /// MCP servers by name (`[mcp.NAME]`).
    pub mcp: BTreeMap<String, Arc<super::McpServer>>,
    /// Tools never called from a guarded tier (`[guard]`).
    pub guard: super::GuardSettings,
    /// How long answers to requests with an `Idempotency-Key` are kept (`[idempotency]`).
    pub idempotency: super::IdempotencySettings,
    /// Proactive rate limiting from the providers' headers (`[rate_limit]`).
    pub rate_limit: RateLimitSettings,
}

/// `[rate_limit]`
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// Below this share of its limit left (requests or tokens) before the reset, a target gives way to the
    /// model's other channels.
    pub headroom: f64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self { headroom: 0.05 }
    }
}

pub use backstop_state::StateSpec;

/// `[auth]`
#[derive(Debug, Clone)]
pub struct Auth {
    /// Keys accepted from clients (empty: any client is accepted); none is blank.
    pub client_keys: Vec<Secret>,
    /// Key required for `/admin/*`.
    pub admin_key: Option<Secret>,
    /// Declared open on purpose: no client key, even on a non-loopback address.
    pub open: bool,
    /// Whether `/metrics` and `/status` need a client or admin key.
    pub protect_metrics: bool,
    /// Every accepted client key with its identity and limits: `client_keys` (no limits), then `[[keys]]`.
    pub keys: Vec<Arc<super::ClientKey>>,
}

impl Auth {
    /// Whether clients must present a key.
    pub fn requires_client_key(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The client key `presented` is, compared with every key in constant time.
    pub fn identify(&self, presented: &str) -> Option<Arc<super::ClientKey>> {
        let mut found = None;
        for key in &self.keys {
            if key.secret.matches(presented) && found.is_none() {
                found = Some(key.clone());
            }
        }
        found
    }
}

/// An upstream provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name in the config.
    pub name: String,
    /// Its kind: what the gateway knows about it is in [`Provider::spec`].
    pub kind: ProviderKind,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Credential sent upstream.
    pub api_key: Option<Secret>,
    /// Free-form region label.
    pub region: Option<String>,
    /// Extra headers sent on every request.
    pub headers: Vec<(String, String)>,
    /// The kind's API version header and its value (`anthropic_version`, or the kind's default),
    /// sent on every request; `None` for a kind without one.
    pub version_header: Option<(&'static str, String)>,
    /// The configured `anthropic_version` for a kind that carries it in the body (Bedrock,
    /// Vertex); `None` sends the kind's default.
    pub body_version: Option<String>,
    /// Query parameters on every request (Azure's `api-version`).
    pub query: Vec<(String, String)>,
    /// A cloud channel's credential beyond an API key header (a SigV4 key, an OAuth token).
    pub channel_auth: Option<crate::channels::ChannelAuth>,
    /// Its status page, when one is configured or its official one applies.
    pub status_page: Option<super::StatusPage>,
    /// It speaks the OpenAI Responses API natively (`responses`): a Responses request is
    /// forwarded to its `/responses` rather than translated to Chat Completions.
    pub responses: bool,
}

impl Provider {
    /// How its requests are authorized, as `backstop check` shows it (never the secret).
    pub fn auth_method(&self) -> String {
        if let Some(auth) = &self.channel_auth {
            return auth.describe();
        }
        match (&self.api_key, self.spec().auth) {
            (None, _) => "no credential".to_string(),
            (Some(_), backstop_protocol::Auth::Header(name)) => format!("API key in {name}"),
            (Some(_), _) => "API key as a bearer token".to_string(),
        }
    }

    /// What there is to know about its kind: endpoints, auth, defaults, stream quirks. A
    /// request goes by its target's [`Target::spec`], which for Vertex depends on the model.
    pub fn spec(&self) -> &'static ProviderSpec {
        self.kind.spec()
    }
}

/// One channel serving a public model: a provider and the model name it knows.
#[derive(Debug, Clone)]
pub struct Target {
    /// The provider.
    pub provider: Arc<Provider>,
    /// The upstream model name (shared: a target is cloned into each request's plan).
    pub model: Arc<str>,
    /// Balancing weight.
    pub weight: u32,
    /// `provider/model`, the label used in headers, logs and metrics.
    pub label: Arc<str>,
    /// Its span attributes and names, shared by its clones.
    pub trace_names: Arc<crate::telemetry::TargetNames>,
    /// What the gateway knows about this model on its provider (Vertex picks by model).
    spec: &'static ProviderSpec,
    /// The URLs a chat request goes to, non-streaming and streaming, parsed once.
    endpoints: Arc<[Endpoint; 2]>,
    /// With a provider that speaks the Responses API natively: its spec and endpoints, which
    /// serve a Responses client (see [`Target::for_caller`]).
    native_responses: Option<(&'static ProviderSpec, Arc<[Endpoint; 2]>)>,
}

/// A URL a chat request goes to, parsed once: as a URL (shown by `check`) and as the URI of
/// the requests sent to it.
#[derive(Debug)]
struct Endpoint {
    url: reqwest::Url,
    uri: http::Uri,
}

impl Endpoint {
    /// The endpoint at `url`; an error when it is not a URI a request can be sent to.
    fn new(url: reqwest::Url) -> Result<Self, String> {
        let uri = http::Uri::try_from(url.as_str()).map_err(|error| error.to_string())?;
        Ok(Endpoint { url, uri })
    }
}

impl Target {
    /// `model` on `provider`, with balancing `weight`; an error when the provider's
    /// `base_url` and the model do not make a URL a request can be sent to.
    pub fn new(provider: Arc<Provider>, model: String, weight: u32) -> Result<Self, String> {
        let spec = provider.kind.spec_for(&model);
        let endpoints = |spec: &ProviderSpec| {
            let endpoint = |stream| {
                let endpoint = spec.endpoint(&provider.base_url, &model, stream);
                let mut url = reqwest::Url::parse(&endpoint).map_err(|error| error.to_string())?;
                if !provider.query.is_empty() {
                    url.query_pairs_mut().extend_pairs(&provider.query);
                }
                Endpoint::new(url)
            };
            Ok::<_, String>(Arc::new([endpoint(false)?, endpoint(true)?]))
        };
        let native_responses = match provider.kind.responses_spec() {
            Some(native) if provider.responses => Some((native, endpoints(native)?)),
            _ => None,
        };
        let label: Arc<str> = format!("{}/{model}", provider.name).into();
        Ok(Self {
            trace_names: Arc::new(crate::telemetry::TargetNames::new(&model, &label)),
            label,
            spec,
            endpoints: endpoints(spec)?,
            native_responses,
            provider,
            model: model.into(),
            weight,
        })
    }

    /// This target as it serves a client speaking `caller`: a Responses API request to a
    /// provider that speaks that API natively goes to its own `/responses` as the client
    /// wrote it (the native passthrough); every other request goes as [`Target::spec`] says.
    pub fn for_caller(&self, caller: backstop_protocol::Protocol) -> Target {
        match &self.native_responses {
            Some((spec, endpoints)) if caller == backstop_protocol::Protocol::Responses => Target {
                spec,
                endpoints: endpoints.clone(),
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    /// What the gateway knows about this model on its provider: endpoints, auth, stream
    /// quirks, protocol.
    pub fn spec(&self) -> &'static ProviderSpec {
        self.spec
    }

    /// `body`, already in this target's protocol, as its channel wants it (Bedrock's and
    /// Vertex's `anthropic_version` in the body, no `model`); unchanged (not copied) for the
    /// others.
    pub fn adapt_body(
        &self,
        body: bytes::Bytes,
    ) -> Result<bytes::Bytes, backstop_protocol::ProtocolError> {
        if self.spec.body_version.is_none() {
            return Ok(body);
        }
        self.spec
            .adapt_body(&body, self.provider.body_version.as_deref())
    }

    /// The URL a chat request goes to.
    pub fn endpoint(&self, stream: bool) -> &reqwest::Url {
        &self.endpoints[usize::from(stream)].url
    }

    /// The same, as the URI of a request (parsed once, with the configuration).
    pub fn uri(&self, stream: bool) -> &http::Uri {
        &self.endpoints[usize::from(stream)].uri
    }
}

/// Load-balancing strategy across a model's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Weighted random.
    Weighted,
    /// Lowest EWMA time to first byte, power of two choices.
    LeastLatency,
}

/// What a content-filter refusal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentFilterPolicy {
    /// Try the fallbacks.
    Fallback,
    /// Return the provider's refusal to the caller.
    Return,
}

/// Token prices in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Input (prompt) tokens.
    pub input: f64,
    /// Output (completion) tokens.
    pub output: f64,
}

/// A public model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The public name clients send.
    pub name: String,
    /// The same, as a span attribute's value (`backstop.model`).
    pub trace_name: opentelemetry::StringValue,
    /// Its channels, balanced.
    pub targets: Vec<Target>,
    /// Other public models to try, in order, when every target failed.
    pub fallbacks: Vec<String>,
    /// The vector space of an embedding model: embeddings fall back only to models of the same
    /// space (`None`: only the model's own targets serve its embeddings).
    pub embedding_space: Option<String>,
    /// Context window in tokens, if known.
    pub context_window: Option<u64>,
    /// Token prices.
    pub price: Option<Price>,
    /// Retry policy for this model.
    pub retry: RetrySettings,
    /// Balancing strategy.
    pub balance: Balance,
    /// Content filter policy.
    pub on_content_filter: ContentFilterPolicy,
    /// Whether this model's targets accept an assistant prefill (continuation);
    /// `None` takes the default of each target's provider kind.
    pub prefill: Option<bool>,
    /// How streams are relayed.
    pub stream_buffer: StreamBuffer,
    /// How many times one stream may be rescued by a continuation.
    pub max_rescues: u32,
    /// The model's own stall rule, instead of `timeouts.idle`.
    pub idle: Option<Idle>,
    /// Whether a broken stream that no target can continue from a prefill is restarted
    /// and spliced when the new answer begins with the text already sent.
    pub rescue_restart: bool,
    /// Hedged requests, when enabled.
    pub hedge: Option<HedgeDelay>,
    /// Answers are checked against the shape their request asked for (structured output,
    /// tool parameters), and one that does not have it is sent back for a correction this
    /// many times. `None` (`structured = { check = false }`): answers are not checked.
    pub max_corrections: Option<u32>,
    /// The answer given, at tier `static`, when nothing else can answer.
    pub static_response: Option<String>,
    /// `queue = "on_failure"`: a request no tier can answer is queued (202) instead of failing.
    pub queue_on_failure: bool,
    /// The most bytes one stream may bring from its upstreams, rescues included; past it the
    /// stream ends with an error event.
    pub max_stream_bytes: u64,
    /// The most answer text kept to continue a broken stream from; past it the stream can no
    /// longer be rescued.
    pub max_rescue_text: u64,
    /// The model's answer cache (tier `cached`), if it has one.
    pub cache: Option<super::CacheSettings>,
    /// The tiers whose answers may not call an irreversible tool (`guard_tiers`).
    pub guard_tiers: Vec<super::GuardTier>,
    /// Regions and drift policy.
    pub policy: super::ModelPolicy,
}

/// How a model's streams reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamBuffer {
    /// Events are relayed as they arrive; a broken stream is continued on another target.
    Off,
    /// The whole stream is held until it completes, so a failure restarts it cleanly elsewhere.
    Full,
}

/// When to send a hedge: a fixed delay, or a percentile of the target's time to first byte.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// After this long without a first byte.
    Fixed(Duration),
    /// After this percentile (0..1) of the target's recent time to first byte.
    Percentile(f64),
}

/// Default `structured.max_corrections`.
pub const DEFAULT_MAX_CORRECTIONS: u32 = 2;

/// Default number of rescues per stream.
pub const DEFAULT_MAX_RESCUES: u32 = 2;

/// Default `max_stream_bytes`: 64 MiB, far above any real answer.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 64 << 20;

/// Default `max_rescue_text`: 1 MiB of answer text.
pub const DEFAULT_MAX_RESCUE_TEXT: u64 = 1 << 20;

/// Retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Attempts per target, the first included.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub base_delay: Duration,
    /// Longest wait; a server hint longer than this means "move on".
    pub max_delay: Duration,
    /// Honour Retry-After and rate-limit reset headers.
    pub respect_retry_after: bool,
    /// Fraction of requests that retries may add (retry budget).
    pub budget_ratio: f64,
    /// Retries always allowed per second, whatever the ratio.
    pub budget_min_per_second: u32,
}

/// Timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Until response headers and, for a stream, its first event.
    pub first_byte: Duration,
    /// Between stream events: when a silence becomes a stall.
    pub idle: Idle,
    /// The whole client request.
    pub total: Duration,
}

/// The default `timeouts.idle_floor`.
pub const DEFAULT_IDLE_FLOOR: Duration = Duration::from_secs(2);
/// The default `timeouts.idle_max`.
pub const DEFAULT_IDLE_MAX: Duration = Duration::from_secs(30);

/// When a stream's silence is a stall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Idle {
    /// After this long without an event.
    Fixed(Duration),
    /// Learned from the stream's own cadence and its target's usual pauses, never under
    /// `floor` nor over `max` (see `pipeline/relay/cadence.rs`).
    Auto {
        /// The shortest silence that can be a stall.
        floor: Duration,
        /// The longest silence that is not one, and the rule before the cadence is known.
        max: Duration,
    },
}

impl Idle {
    /// The longest silence this rule can allow.
    pub fn longest(self) -> Duration {
        match self {
            Idle::Fixed(idle) => idle,
            Idle::Auto { max, .. } => max,
        }
    }
}

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Idle::Fixed(idle) => write!(f, "{idle:?}"),
            Idle::Auto { floor, max } => write!(f, "auto ({floor:?} to {max:?})"),
        }
    }
}

/// Circuit breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// Open duration before half-open.
    pub open_for: Duration,
    /// Half-open successes needed to close.
    pub success_threshold: u32,
    /// Failure rate over `window` that opens it (with at least `min_calls`).
    pub failure_rate: f64,
    /// Sliding window for the failure rate.
    pub window: Duration,
    /// Minimum calls in the window before the rate counts.
    pub min_calls: u32,
    /// Concurrent probes allowed while half-open.
    pub half_open_probes: u32,
}

/// HTTP server limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Largest accepted request body.
    pub max_body_size: u64,
    /// How long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// Worker threads of `serve`, each with its own single-threaded runtime; `None`: one per core.
    pub threads: Option<usize>,
    /// How long a client may take to send a request's headers, from the connection's start
    /// or from the first byte of a request on a kept-alive connection.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body, and how long a response write
    /// may stay blocked on a client that does not read.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// The most client connections open at once; beyond it, connections that have not sent
    /// a complete request are closed first, and when none is left new ones are refused.
    pub max_connections: u32,
    /// The most bytes of upstream answers held in memory at once, over all requests.
    pub max_buffered_bytes: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            respect_retry_after: true,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(30),
            idle: Idle::Auto {
                floor: DEFAULT_IDLE_FLOOR,
                max: DEFAULT_IDLE_MAX,
            },
            total: Duration::from_secs(120),
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            success_threshold: 2,
            failure_rate: 0.5,
            window: Duration::from_secs(30),
            min_calls: 20,
            half_open_probes: 1,
        }
    }
}

impl ServerSettings {
    /// The number of worker threads `serve` runs: `threads`, or one per core.
    pub fn worker_threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_body_size: 10 << 20,
            shutdown_grace: Duration::from_secs(30),
            threads: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8_192,
            max_buffered_bytes: 256 << 20,
        }
    }
}

/// The default address: loopback, port 8080.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[responses]`: how long stored Responses API answers are kept and how many bytes they
/// may take in all; past the bound the oldest go first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsesSettings {
    /// How long a stored response can be read back or continued from.
    pub ttl: Duration,
    /// The most bytes all stored responses may take.
    pub max_bytes: u64,
}

impl Default for ResponsesSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}
