//! The settings of what Backstop keeps so that work is not lost: a model's answer cache
//! (`cache = {...}`), the guard on irreversible tools (`[guard]`, `guard_tiers`) and
//! idempotency keys (`[idempotency]`), as written and as checked.

use super::raw::RawSize;
use super::units::{parse_duration, parse_size};
use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `cache = { ttl, serve, match, max_entries, max_bytes, per_key }` of a model, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub ttl: Option<String>,
    pub serve: Option<String>,
    #[serde(rename = "match")]
    pub matching: Option<String>,
    pub max_entries: Option<i64>,
    pub max_bytes: Option<RawSize>,
    pub per_key: Option<bool>,
}

/// `[guard]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    #[serde(default)]
    pub irreversible_tools: Vec<String>,
}

/// `[idempotency]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdempotency {
    pub ttl: Option<String>,
}

/// When a model's cached answers are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheServe {
    /// Only when every target and fallback has failed (before the static answer).
    OnFailure,
    /// Before any upstream call: an ordinary response cache.
    Always,
}

impl CacheServe {
    /// The name used in the config and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheServe::OnFailure => "on_failure",
            CacheServe::Always => "always",
        }
    }
}

/// What makes two requests the same for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMatch {
    /// Everything that determines the answer (model, messages, system, tools, sampling...).
    Exact,
    /// The model and the last user message, normalised.
    LastMessage,
}

/// A model's answer cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// How long an answer is kept.
    pub ttl: Duration,
    /// When it is served.
    pub serve: CacheServe,
    /// What makes two requests the same.
    pub matching: CacheMatch,
    /// The most answers kept for this model (by this replica); past it the oldest go first.
    pub max_entries: u64,
    /// The most bytes of answers kept for this model (by this replica).
    pub max_bytes: u64,
    /// Whether the client key is part of the key (answers are not shared between keys).
    pub per_key: bool,
}

/// Default `cache.ttl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Default `cache.max_entries`.
pub const DEFAULT_CACHE_ENTRIES: u64 = 10_000;
/// Default `cache.max_bytes`: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// A tier whose answers the guard checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardTier {
    /// A fallback model's answer.
    Reduced,
    /// A cached answer.
    Cached,
    /// The static answer.
    Static,
}

impl GuardTier {
    /// The tier's name, as in `x-backstop-tier`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardTier::Reduced => "reduced",
            GuardTier::Cached => "cached",
            GuardTier::Static => "static",
        }
    }
}

/// The default `guard_tiers`: cached and static answers.
pub const DEFAULT_GUARD_TIERS: [GuardTier; 2] = [GuardTier::Cached, GuardTier::Static];

/// `[guard]`: tools whose calls are never delivered from a guarded tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardSettings {
    /// Glob patterns (`*` for any run of characters) on tool names.
    pub irreversible_tools: Vec<String>,
}

impl GuardSettings {
    /// Whether `tool` is irreversible.
    pub fn is_irreversible(&self, tool: &str) -> bool {
        self.irreversible_tools
            .iter()
            .any(|pattern| backstop_mock::glob_match(pattern, tool))
    }
}

/// `[idempotency]`: how long the answer of a request with an `Idempotency-Key` is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// How long a key's answer is replayed.
    pub ttl: Duration,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

fn ttl_at(path: &str, value: Option<&String>, default: Duration) -> Result<Duration, ConfigError> {
    match value.map(|text| parse_duration(text)) {
        None => Ok(default),
        Some(Ok(ttl)) if ttl.is_zero() => Err(ConfigError::at(path, "must be more than 0")),
        Some(Ok(ttl)) => Ok(ttl),
        Some(Err(message)) => Err(ConfigError::at(path, message)),
    }
}

/// Checks a model's `cache` table (`path` is the model's, e.g. `models.gpt`).
pub fn cache_from_raw(path: &str, raw: &RawCache) -> Result<CacheSettings, ConfigError> {
    let serve = match raw.serve.as_deref() {
        None | Some("on_failure") => CacheServe::OnFailure,
        Some("always") => CacheServe::Always,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{path}.cache.serve"),
                format!("unknown mode `{other}`: use \"on_failure\" or \"always\""),
            ))
        }
    };
    let matching = match raw.matching.as_deref() {
        None | Some("exact") => CacheMatch::Exact,
        Some("last_message") if serve == CacheServe::Always => {
            return Err(ConfigError::at(
                format!("{path}.cache.match"),
                "\"last_message\" is for serve = \"on_failure\" only: an ordinary cache must match the whole request",
            ))
        }
        Some("last_message") => CacheMatch::LastMessage,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{path}.cache.match"),
                format!("unknown match `{other}`: use \"exact\" or \"last_message\""),
            ))
        }
    };
    let max_entries = match raw.max_entries {
        None => DEFAULT_CACHE_ENTRIES,
        Some(n) if n >= 1 => n as u64,
        Some(n) => {
            return Err(ConfigError::at(
                format!("{path}.cache.max_entries"),
                format!("{n} is not a number of entries: it must be at least 1"),
            ))
        }
    };
    let bytes_path = format!("{path}.cache.max_bytes");
    let max_bytes = match &raw.max_bytes {
        None => DEFAULT_CACHE_BYTES,
        Some(RawSize::Text(text)) => {
            parse_size(text).map_err(|m| ConfigError::at(&bytes_path, m))?
        }
        Some(RawSize::Bytes(n)) => u64::try_from(*n).unwrap_or(0),
    };
    if max_bytes == 0 {
        return Err(ConfigError::at(bytes_path, "must be more than 0 bytes"));
    }
    Ok(CacheSettings {
        ttl: ttl_at(
            &format!("{path}.cache.ttl"),
            raw.ttl.as_ref(),
            DEFAULT_CACHE_TTL,
        )?,
        serve,
        matching,
        max_entries,
        max_bytes,
        per_key: raw.per_key.unwrap_or(false),
    })
}

/// Checks a model's `guard_tiers`.
pub fn guard_tiers_from_raw(
    path: &str,
    raw: Option<&Vec<String>>,
) -> Result<Vec<GuardTier>, ConfigError> {
    let Some(names) = raw else {
        return Ok(DEFAULT_GUARD_TIERS.to_vec());
    };
    names
        .iter()
        .map(|name| match name.as_str() {
            "reduced" => Ok(GuardTier::Reduced),
            "cached" => Ok(GuardTier::Cached),
            "static" => Ok(GuardTier::Static),
            other => Err(ConfigError::at(
                format!("{path}.guard_tiers"),
                format!("unknown tier `{other}`: use \"reduced\", \"cached\" or \"static\""),
            )),
        })
        .collect()
}

/// Checks `[guard]`.
pub fn guard_from_raw(raw: RawGuard) -> Result<GuardSettings, ConfigError> {
    if let Some(index) = raw.irreversible_tools.iter().position(|p| p.is_empty()) {
        return Err(ConfigError::at(
            format!("guard.irreversible_tools[{index}]"),
            "is empty: give a tool name or a glob such as \"delete_*\"",
        ));
    }
    Ok(GuardSettings {
        irreversible_tools: raw.irreversible_tools,
    })
}

/// Checks `[idempotency]`.
pub fn idempotency_from_raw(raw: RawIdempotency) -> Result<IdempotencySettings, ConfigError> {
    Ok(IdempotencySettings {
        ttl: ttl_at(
            "idempotency.ttl",
            raw.ttl.as_ref(),
            IdempotencySettings::default().ttl,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const MODEL: &str = "[providers.o]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n[models.m]\ntargets = [{ provider = \"o\", model = \"x\" }]\n";

    fn error_of(extra: &str) -> String {
        match parse(&format!("{MODEL}{extra}"), &|_| None) {
            Ok(_) => panic!("expected an error for:\n{extra}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn cache_guard_and_idempotency_are_read_with_their_defaults() {
        let extra = "cache = { ttl = \"10m\", serve = \"on_failure\", match = \"last_message\", max_entries = 5, max_bytes = \"1MB\", per_key = true }\nguard_tiers = [\"reduced\", \"cached\"]\n[guard]\nirreversible_tools = [\"send_email\", \"delete_*\"]\n[idempotency]\nttl = \"1h\"\n";
        let config = parse(&format!("{MODEL}{extra}"), &|_| None).unwrap();
        let model = &config.models["m"];
        let cache = model.cache.as_ref().unwrap();
        assert_eq!(cache.ttl, Duration::from_secs(600));
        assert_eq!(cache.matching, CacheMatch::LastMessage);
        assert_eq!(
            (cache.max_entries, cache.max_bytes, cache.per_key),
            (5, 1_000_000, true)
        );
        assert_eq!(model.guard_tiers, [GuardTier::Reduced, GuardTier::Cached]);
        assert!(config.guard.is_irreversible("delete_user"));
        assert!(!config.guard.is_irreversible("get_weather"));
        assert_eq!(config.idempotency.ttl, Duration::from_secs(3600));

        let plain = parse(MODEL, &|_| None).unwrap();
        assert!(plain.models["m"].cache.is_none());
        assert_eq!(plain.models["m"].guard_tiers, DEFAULT_GUARD_TIERS);
        assert_eq!(plain.idempotency.ttl, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, key) in [
            ("cache = { serve = \"sometimes\" }", "models.m.cache.serve"),
            (
                "cache = { serve = \"always\", match = \"last_message\" }",
                "models.m.cache.match",
            ),
            ("cache = { ttl = \"0s\" }", "models.m.cache.ttl"),
            ("cache = { max_entries = 0 }", "models.m.cache.max_entries"),
            (
                "cache = { max_bytes = \"lots\" }",
                "models.m.cache.max_bytes",
            ),
            ("cache = { colour = 1 }", "colour"),
            ("guard_tiers = [\"full\"]", "models.m.guard_tiers"),
            (
                "[guard]\nirreversible_tools = [\"\"]",
                "guard.irreversible_tools[0]",
            ),
            ("[idempotency]\nttl = \"soon\"", "idempotency.ttl"),
        ] {
            let error = error_of(extra);
            assert!(error.contains(key), "{extra}: {error}");
        }
    }
}
