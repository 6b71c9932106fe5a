//! The second phase of loading: raw values become a [`Config`], with every
//! reference checked and every error naming its key path.

use super::auth::{auth_from_raw, check_exposure};
use super::raw::{
    RawBreaker, RawConfig, RawModel, RawProvider, RawResponses, RawRetry, RawServer, RawSize,
    RawStructured, RawTimeouts,
};
use super::types::*;
use super::units::{parse_duration, parse_size};
use super::ConfigError;
use backstop_protocol::ProviderKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Validates a raw config; `lookup` reads the standard environment variables a cloud
/// channel falls back on (`AWS_*`).
pub fn validate(
    raw: RawConfig,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let listen = match raw.listen.as_deref() {
        Some(text) => text.parse().map_err(|_| {
            ConfigError::at(
                "listen",
                format!("`{text}` is not an address like \"127.0.0.1:8080\""),
            )
        })?,
        None => default_listen(),
    };
    let state = parse_state(raw.state.as_deref())?;
    let state_prefix = parse_state_prefix(raw.state_prefix.as_deref())?;
    let mut auth = raw.auth.map(auth_from_raw).transpose()?;
    let mut providers = BTreeMap::new();
    for (name, provider) in raw.providers {
        let built = provider_from_raw(&name, provider, lookup)?;
        providers.insert(name, Arc::new(built));
    }
    let retry = retry_from_raw(&RetrySettings::default(), raw.retry.as_ref(), "retry")?;
    let (timeouts, auto_idle) = timeouts_from_raw(raw.timeouts.unwrap_or_default())?;
    let breaker = breaker_from_raw(raw.circuit_breaker.unwrap_or_default())?;
    let server = server_from_raw(raw.server.unwrap_or_default())?;
    let responses = responses_from_raw(raw.responses.unwrap_or_default())?;
    let queue = super::queue::queue_from_raw(raw.queue.unwrap_or_default())?;
    let telemetry = super::telemetry::telemetry_from_raw(raw.telemetry.unwrap_or_default())?;

    let mut raw_models = raw.models;
    let mut pins = super::catalog::apply(raw.catalog, &mut raw_models)?;
    let mut models = BTreeMap::new();
    for (name, model) in &raw_models {
        let mut built = model_from_raw(name, model, &providers, &retry, auto_idle)?;
        built.policy.pinned = pins.remove(name).unwrap_or_default();
        models.insert(name.clone(), Arc::new(built));
    }
    check_fallbacks(&models)?;
    super::auth::add_keys(&mut auth, raw.keys, &models)?;
    check_exposure(listen, auth.as_ref())?;
    let tools = super::validate_tools::tools_from_raw(raw.tools)?;
    let mcp = super::validate_tools::mcp_from_raw(raw.mcp)?;
    let guard = super::keep::guard_from_raw(raw.guard.unwrap_or_default())?;
    let idempotency = super::keep::idempotency_from_raw(raw.idempotency.unwrap_or_default())?;
    Ok(Config {
        listen,
        state,
        state_prefix,
        auth,
        providers,
        models,
        timeouts,
        breaker,
        retry,
        server,
        responses,
        queue,
        telemetry,
        zero_config: false,
        rate_limit: rate_limit_from_raw(raw.rate_limit.unwrap_or_default())?,
        tools,
        mcp,
        guard,
        idempotency,
    })
}

fn parse_state(text: Option<&str>) -> Result<StateSpec, ConfigError> {
    match text {
        None => Ok(StateSpec::default()),
        Some(text) => StateSpec::parse(text).map_err(|e| ConfigError::at("state", e.to_string())),
    }
}

fn parse_state_prefix(text: Option<&str>) -> Result<String, ConfigError> {
    match text {
        None => Ok(backstop_state::DEFAULT_PREFIX.to_string()),
        Some(text)
            if text.is_empty()
                || text.len() > 64
                || text.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(ConfigError::at(
                "state_prefix",
                "must be 1 to 64 characters without spaces, e.g. \"backstop:\"",
            ))
        }
        Some(text) => Ok(text.to_string()),
    }
}

/// The provider kinds as a user reads them: `"openai", "anthropic", ... or "vertex"`.
fn kind_names() -> String {
    super::or_list(ProviderKind::ALL.iter().map(|kind| format!("\"{kind}\"")))
}

pub(super) fn provider_from_raw(
    name: &str,
    mut raw: RawProvider,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, ConfigError> {
    let path = format!("providers.{name}");
    let Some(kind) = ProviderKind::from_name(&raw.kind) else {
        return Err(ConfigError::at(
            format!("{path}.kind"),
            format!("unknown provider kind `{}`: use {}", raw.kind, kind_names()),
        ));
    };
    let spec = kind.spec();
    let checked = raw.base_url.clone();
    let channel = super::channels::read(&path, kind, &mut raw, lookup)?;
    let base_url = checked.unwrap_or_else(|| channel.base_url.clone());
    let scheme_ok = base_url.starts_with("http://") || base_url.starts_with("https://");
    if !scheme_ok || url::Url::parse(&base_url).is_err() {
        return Err(ConfigError::at(
            format!("{path}.base_url"),
            format!(
                "`{}` is not an http:// or https:// URL",
                crate::redact::url(&base_url)
            ),
        ));
    }
    let mut headers = Vec::new();
    for (header, value) in raw.headers {
        let lower = header.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err()
            || http::HeaderValue::from_str(&value).is_err()
        {
            return Err(ConfigError::at(
                format!("{path}.headers.{header}"),
                "not a valid HTTP header",
            ));
        }
        headers.push((lower, value));
    }
    let responses = super::passthrough::speaks_responses(&path, kind, &base_url, raw.responses)?;
    let status_page = super::validate_tools::status_page_from_raw(
        &path,
        &base_url,
        raw.status_page,
        raw.status_poll,
        raw.on_major_incident,
    )?;
    Ok(Provider {
        status_page,
        name: name.to_string(),
        kind,
        base_url: channel.base_url,
        api_key: raw.api_key.filter(|k| !k.is_empty()).map(Secret::new),
        region: raw.region,
        headers,
        body_version: spec.body_version.and(raw.anthropic_version.clone()),
        version_header: spec.version_header(raw.anthropic_version),
        query: channel.query,
        channel_auth: channel.auth,
        responses,
    })
}

pub(super) fn duration_at(
    path: &str,
    value: Option<&String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        Some(text) => parse_duration(text).map_err(|message| ConfigError::at(path, message)),
        None => Ok(default),
    }
}

/// A stall rule: `"auto"` (learned, between the floor and max of `auto`) or a duration.
fn idle_at(path: &str, value: Option<&String>, auto: Idle) -> Result<Idle, ConfigError> {
    match value.map(String::as_str) {
        None | Some("auto") => Ok(auto),
        Some(text) => match parse_duration(text) {
            Ok(idle) if idle.is_zero() => Err(ConfigError::at(path, "must be longer than zero")),
            Ok(idle) => Ok(Idle::Fixed(idle)),
            Err(message) => Err(ConfigError::at(
                path,
                format!("{message}, or \"auto\" to learn it from the stream"),
            )),
        },
    }
}

pub(super) fn positive(path: &str, value: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::at(path, "must be at least 1")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

fn fraction(path: &str, value: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(ConfigError::at(path, format!("{v} is not between 0 and 1")))
        }
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

pub(super) fn retry_from_raw(
    base: &RetrySettings,
    raw: Option<&RawRetry>,
    path: &str,
) -> Result<RetrySettings, ConfigError> {
    let Some(raw) = raw else {
        return Ok(base.clone());
    };
    let settings = RetrySettings {
        max_attempts: positive(
            &format!("{path}.max_attempts"),
            raw.max_attempts,
            base.max_attempts,
        )?,
        base_delay: duration_at(
            &format!("{path}.base_delay"),
            raw.base_delay.as_ref(),
            base.base_delay,
        )?,
        max_delay: duration_at(
            &format!("{path}.max_delay"),
            raw.max_delay.as_ref(),
            base.max_delay,
        )?,
        respect_retry_after: raw.respect_retry_after.unwrap_or(base.respect_retry_after),
        budget_ratio: fraction(
            &format!("{path}.budget_ratio"),
            raw.budget_ratio,
            base.budget_ratio,
        )?,
        budget_min_per_second: raw
            .budget_min_per_second
            .unwrap_or(base.budget_min_per_second),
    };
    if settings.max_delay < settings.base_delay {
        return Err(ConfigError::at(
            format!("{path}.max_delay"),
            "is shorter than base_delay: raise max_delay or lower base_delay",
        ));
    }
    Ok(settings)
}

/// The timeouts, and the learned stall rule with their bounds (for models that ask for it).
fn timeouts_from_raw(raw: RawTimeouts) -> Result<(Timeouts, Idle), ConfigError> {
    let default = Timeouts::default();
    let floor = duration_at(
        "timeouts.idle_floor",
        raw.idle_floor.as_ref(),
        DEFAULT_IDLE_FLOOR,
    )?;
    let max = duration_at("timeouts.idle_max", raw.idle_max.as_ref(), DEFAULT_IDLE_MAX)?;
    let timeouts = Timeouts {
        connect: duration_at("timeouts.connect", raw.connect.as_ref(), default.connect)?,
        first_byte: duration_at(
            "timeouts.first_byte",
            raw.first_byte.as_ref(),
            default.first_byte,
        )?,
        idle: idle_at(
            "timeouts.idle",
            raw.idle.as_ref(),
            Idle::Auto { floor, max },
        )?,
        total: duration_at("timeouts.total", raw.total.as_ref(), default.total)?,
    };
    for (key, value) in [
        ("connect", timeouts.connect),
        ("first_byte", timeouts.first_byte),
        ("idle_floor", floor),
        ("idle_max", max),
        ("total", timeouts.total),
    ] {
        if value.is_zero() {
            return Err(ConfigError::at(
                format!("timeouts.{key}"),
                "must be longer than zero",
            ));
        }
    }
    if floor > max {
        return Err(ConfigError::at(
            "timeouts.idle_floor",
            "is longer than timeouts.idle_max: lower it or raise idle_max",
        ));
    }
    if timeouts.first_byte > timeouts.total {
        return Err(ConfigError::at(
            "timeouts.first_byte",
            "is longer than timeouts.total, so it could never fire: lower it or raise total",
        ));
    }
    Ok((timeouts, Idle::Auto { floor, max }))
}

pub(super) fn breaker_from_raw(raw: RawBreaker) -> Result<BreakerSettings, ConfigError> {
    let default = BreakerSettings::default();
    Ok(BreakerSettings {
        failure_threshold: positive(
            "circuit_breaker.failure_threshold",
            raw.failure_threshold,
            default.failure_threshold,
        )?,
        open_for: duration_at(
            "circuit_breaker.open_for",
            raw.open_for.as_ref(),
            default.open_for,
        )?,
        success_threshold: positive(
            "circuit_breaker.success_threshold",
            raw.success_threshold,
            default.success_threshold,
        )?,
        failure_rate: fraction(
            "circuit_breaker.failure_rate",
            raw.failure_rate,
            default.failure_rate,
        )?,
        window: duration_at(
            "circuit_breaker.window",
            raw.window.as_ref(),
            default.window,
        )?,
        min_calls: positive(
            "circuit_breaker.min_calls",
            raw.min_calls,
            default.min_calls,
        )?,
        half_open_probes: positive(
            "circuit_breaker.half_open_probes",
            raw.half_open_probes,
            default.half_open_probes,
        )?,
    })
}

fn server_from_raw(raw: RawServer) -> Result<ServerSettings, ConfigError> {
    let default = ServerSettings::default();
    let max_body_size = match raw.max_body_size.as_deref() {
        Some(text) => parse_size(text).map_err(|m| ConfigError::at("server.max_body_size", m))?,
        None => default.max_body_size,
    };
    Ok(ServerSettings {
        max_body_size,
        shutdown_grace: duration_at(
            "server.shutdown_grace",
            raw.shutdown_grace.as_ref(),
            default.shutdown_grace,
        )?,
        max_buffered_bytes: size_at(
            "server.max_buffered_bytes",
            raw.max_buffered_bytes.as_ref(),
            default.max_buffered_bytes,
            1,
        )?,
        threads: match raw.threads {
            None | Some(0) => None,
            Some(n @ 1..=MAX_THREADS) => Some(n as usize),
            Some(_) => {
                return Err(ConfigError::at(
                    "server.threads",
                    format!("must be 0 (one per core) to {MAX_THREADS}"),
                ))
            }
        },
        header_timeout: nonzero_duration_at(
            "server.header_timeout",
            raw.header_timeout.as_ref(),
            default.header_timeout,
        )?,
        body_timeout: nonzero_duration_at(
            "server.body_timeout",
            raw.body_timeout.as_ref(),
            default.body_timeout,
        )?,
        idle_timeout: nonzero_duration_at(
            "server.idle_timeout",
            raw.idle_timeout.as_ref(),
            default.idle_timeout,
        )?,
        max_connections: positive(
            "server.max_connections",
            raw.max_connections,
            default.max_connections,
        )?,
    })
}

fn responses_from_raw(raw: RawResponses) -> Result<ResponsesSettings, ConfigError> {
    let default = ResponsesSettings::default();
    Ok(ResponsesSettings {
        ttl: nonzero_duration_at("responses.ttl", raw.ttl.as_ref(), default.ttl)?,
        max_bytes: size_at(
            "responses.max_bytes",
            raw.max_bytes.as_ref(),
            default.max_bytes,
            1,
        )?,
    })
}

/// A duration that must be more than zero.
pub(super) fn nonzero_duration_at(
    path: &str,
    value: Option<&String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match duration_at(path, value, default)? {
        Duration::ZERO => Err(ConfigError::at(path, "must be more than 0")),
        duration => Ok(duration),
    }
}

/// A byte size at `path` (a size string or an integer), at least `min`, or `default`.
pub(super) fn size_at(
    path: &str,
    value: Option<&RawSize>,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    let bytes = match value {
        None => return Ok(default),
        Some(RawSize::Text(text)) => parse_size(text).map_err(|m| ConfigError::at(path, m))?,
        Some(RawSize::Bytes(n)) => u64::try_from(*n).map_err(|_| {
            ConfigError::at(path, format!("{n} is not a size: it must not be negative"))
        })?,
    };
    if bytes < min {
        return Err(ConfigError::at(
            path,
            format!("must be at least {min} byte, e.g. \"64MB\""),
        ));
    }
    Ok(bytes)
}

/// The most worker threads `server.threads` accepts.
const MAX_THREADS: i64 = 1024;

fn model_from_raw(
    name: &str,
    raw: &RawModel,
    providers: &BTreeMap<String, Arc<Provider>>,
    retry: &RetrySettings,
    auto_idle: Idle,
) -> Result<Model, ConfigError> {
    let path = format!("models.{name}");
    if raw.targets.is_empty() {
        return Err(ConfigError::at(
            format!("{path}.targets"),
            "needs at least one target",
        ));
    }
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (index, target) in raw.targets.iter().enumerate() {
        let provider = providers.get(&target.provider).ok_or_else(|| {
            ConfigError::at(
                format!("{path}.targets[{index}].provider"),
                format!(
                    "unknown provider `{}` (known: {})",
                    target.provider,
                    join_keys(providers)
                ),
            )
        })?;
        if target.model.is_empty() {
            return Err(ConfigError::at(
                format!("{path}.targets[{index}].model"),
                "must not be empty",
            ));
        }
        let weight = positive(&format!("{path}.targets[{index}].weight"), target.weight, 1)?;
        let built = Target::new(provider.clone(), target.model.clone(), weight);
        targets.push(built.map_err(|error| {
            ConfigError::at(
                format!("{path}.targets[{index}]"),
                format!(
                    "no valid URL from `{}` and this model: {error}",
                    crate::redact::url(&provider.base_url)
                ),
            )
        })?);
    }
    let balance = match raw.balance.as_deref() {
        None | Some("weighted") => Balance::Weighted,
        Some("least_latency") => Balance::LeastLatency,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{path}.balance"),
                format!("unknown strategy `{other}`: use \"weighted\" or \"least_latency\""),
            ))
        }
    };
    let on_content_filter = match raw.on_content_filter.as_deref() {
        None | Some("fallback") => ContentFilterPolicy::Fallback,
        Some("return") => ContentFilterPolicy::Return,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{path}.on_content_filter"),
                format!("unknown policy `{other}`: use \"fallback\" or \"return\""),
            ))
        }
    };
    if let Some(price) = raw.price {
        if !(price.input >= 0.0 && price.output >= 0.0) {
            return Err(ConfigError::at(
                format!("{path}.price"),
                "prices must be zero or more",
            ));
        }
    }
    Ok(Model {
        name: name.to_string(),
        trace_name: crate::telemetry::shared(name),
        targets,
        fallbacks: raw.fallbacks.clone(),
        embedding_space: match raw.embedding_space.as_deref() {
            Some("") => {
                return Err(ConfigError::at(
                    format!("{path}.embedding_space"),
                    "must not be empty: name the vector space its embeddings live in",
                ))
            }
            other => other.map(str::to_owned),
        },
        context_window: raw.context_window,
        price: raw.price.map(|p| Price {
            input: p.input,
            output: p.output,
        }),
        retry: retry_from_raw(retry, raw.retry.as_ref(), &format!("{path}.retry"))?,
        balance,
        on_content_filter,
        prefill: raw.prefill,
        stream_buffer: match raw.stream_buffer.as_deref() {
            None | Some("none") => StreamBuffer::Off,
            Some("full") => StreamBuffer::Full,
            Some(other) => {
                return Err(ConfigError::at(
                    format!("{path}.stream_buffer"),
                    format!("unknown mode `{other}`: use \"none\" or \"full\""),
                ))
            }
        },
        max_rescues: raw.max_rescues.unwrap_or(DEFAULT_MAX_RESCUES),
        idle: match &raw.idle {
            None => None,
            Some(text) => Some(idle_at(&format!("{path}.idle"), Some(text), auto_idle)?),
        },
        max_corrections: match &raw.structured {
            Some(RawStructured {
                check: Some(false), ..
            }) => None,
            Some(structured) => Some(
                structured
                    .max_corrections
                    .unwrap_or(DEFAULT_MAX_CORRECTIONS),
            ),
            None => Some(DEFAULT_MAX_CORRECTIONS),
        },
        static_response: match raw.static_response.as_deref() {
            Some("") => {
                return Err(ConfigError::at(
                    format!("{path}.static_response"),
                    "is empty: give the text to answer with, or leave the key out",
                ))
            }
            other => other.map(str::to_owned),
        },
        queue_on_failure: match raw.queue.as_deref() {
            None | Some("off") => false,
            Some("on_failure") => true,
            Some(other) => {
                return Err(ConfigError::at(
                    format!("{path}.queue"),
                    format!("unknown mode `{other}`: use \"off\" or \"on_failure\""),
                ))
            }
        },
        rescue_restart: match raw.rescue_restart.as_deref() {
            None | Some("match") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::at(
                    format!("{path}.rescue_restart"),
                    format!("unknown mode `{other}`: use \"match\" or \"off\""),
                ))
            }
        },
        max_stream_bytes: size_at(
            &format!("{path}.max_stream_bytes"),
            raw.max_stream_bytes.as_ref(),
            DEFAULT_MAX_STREAM_BYTES,
            1,
        )?,
        max_rescue_text: size_at(
            &format!("{path}.max_rescue_text"),
            raw.max_rescue_text.as_ref(),
            DEFAULT_MAX_RESCUE_TEXT,
            0,
        )?,
        cache: raw
            .cache
            .as_ref()
            .map(|cache| super::keep::cache_from_raw(&path, cache))
            .transpose()?,
        guard_tiers: super::keep::guard_tiers_from_raw(&path, raw.guard_tiers.as_ref())?,
        policy: super::policy::model_policy(&path, raw)?,
        hedge: match &raw.hedge {
            None => None,
            Some(hedge) => Some(
                hedge_delay(&hedge.delay)
                    .map_err(|m| ConfigError::at(format!("{path}.hedge.delay"), m))?,
            ),
        },
    })
}

fn hedge_delay(text: &str) -> Result<HedgeDelay, String> {
    if let Some(percentile) = text.strip_prefix('p') {
        return match percentile.parse::<f64>() {
            Ok(p) if p > 0.0 && p < 100.0 => Ok(HedgeDelay::Percentile(p / 100.0)),
            _ => Err(format!("`{text}` is not a percentile like \"p95\"")),
        };
    }
    parse_duration(text)
        .map(HedgeDelay::Fixed)
        .map_err(|m| format!("{m}, or a percentile of the time to first byte like \"p95\""))
}

pub(super) fn join_keys<V>(map: &BTreeMap<String, V>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that every fallback names a model, and that no chain loops back on itself.
fn check_fallbacks(models: &BTreeMap<String, Arc<Model>>) -> Result<(), ConfigError> {
    for (name, model) in models {
        let mut seen = BTreeSet::new();
        for (index, fallback) in model.fallbacks.iter().enumerate() {
            let path = format!("models.{name}.fallbacks[{index}]");
            if !models.contains_key(fallback) {
                return Err(ConfigError::at(
                    path,
                    format!("unknown model `{fallback}` (known: {})", join_keys(models)),
                ));
            }
            if fallback == name {
                return Err(ConfigError::at(
                    path,
                    format!("`{name}` cannot fall back to itself"),
                ));
            }
            if !seen.insert(fallback) {
                return Err(ConfigError::at(
                    path,
                    format!("`{fallback}` is listed twice"),
                ));
            }
            check_embedding_space(name, model, fallback, &models[fallback], &path)?;
        }
    }
    find_cycle(models)
}

/// An embedding model may fall back only to a model of its own `embedding_space`: vectors
/// from different models cannot be compared.
fn check_embedding_space(
    name: &str,
    model: &Model,
    fallback_name: &str,
    fallback: &Model,
    path: &str,
) -> Result<(), ConfigError> {
    let (Some(space), other) = (&model.embedding_space, &fallback.embedding_space) else {
        return Ok(());
    };
    if other.as_ref() == Some(space) {
        return Ok(());
    }
    let theirs = match other {
        Some(other) => format!("embedding_space `{other}`"),
        None => "no embedding_space".to_string(),
    };
    Err(ConfigError::at(
        path,
        format!("`{name}` (embedding_space `{space}`) cannot fall back to `{fallback_name}` ({theirs}): vectors from different spaces cannot be compared; fall back only to models with embedding_space = \"{space}\""),
    ))
}

/// Where a model stands in the depth-first search for fallback cycles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// On the current chain: reaching it again closes a cycle.
    OnChain,
    /// Fully explored: no cycle through it.
    Done,
}

/// Finds a fallback cycle by an iterative depth-first search that explores each model
/// once, so the cost is linear in models plus fallbacks however long the chains are.
fn find_cycle(models: &BTreeMap<String, Arc<Model>>) -> Result<(), ConfigError> {
    let mut visits: BTreeMap<&str, Visit> = BTreeMap::new();
    for root in models.keys() {
        if visits.contains_key(root.as_str()) {
            continue;
        }
        // The chain being explored: each model and the index of its next fallback.
        let mut chain: Vec<(&Model, usize)> = Vec::new();
        if let Some(model) = models.get(root) {
            visits.insert(root, Visit::OnChain);
            chain.push((model, 0));
        }
        while let Some(&mut (model, ref mut index)) = chain.last_mut() {
            let Some(next) = model.fallbacks.get(*index) else {
                visits.insert(&model.name, Visit::Done);
                chain.pop();
                continue;
            };
            let at = *index;
            *index += 1;
            match visits.get(next.as_str()) {
                Some(Visit::Done) => {}
                Some(Visit::OnChain) => {
                    let start = chain.iter().position(|(m, _)| m.name == *next).unwrap_or(0);
                    let mut cycle: Vec<&str> = chain[start..]
                        .iter()
                        .map(|(m, _)| m.name.as_str())
                        .collect();
                    cycle.push(next);
                    return Err(ConfigError::at(
                        format!("models.{}.fallbacks[{at}]", model.name),
                        format!("fallback cycle: {}", cycle.join(" -> ")),
                    ));
                }
                None => {
                    if let Some(fallback) = models.get(next) {
                        visits.insert(next, Visit::OnChain);
                        chain.push((fallback, 0));
                    }
                }
            }
        }
    }
    Ok(())
}

fn rate_limit_from_raw(
    raw: super::raw::RawRateLimit,
) -> Result<super::RateLimitSettings, ConfigError> {
    let mut settings = super::RateLimitSettings::default();
    if let Some(headroom) = raw.headroom {
        if !(0.0..1.0).contains(&headroom) {
            return Err(ConfigError::at(
                "rate_limit.headroom",
                format!(
                    "{headroom} is not a share of a limit from 0 (off) to below 1 (0.05 is 5%)"
                ),
            ));
        }
        settings.headroom = headroom;
    }
    Ok(settings)
}
