//! Configuration, loaded in two phases (as ripgrep does with its flags): the TOML
//! file is parsed into raw serde structs that reject unknown keys, with `${VAR}`
//! expanded in every string; then [`validate`] resolves references (providers,
//! fallbacks, cycles) and parses units. Every error names its key path.

mod auth;
mod catalog;
mod channels;
mod error;
mod interpolate;
mod keep;
mod keys;
mod passthrough;
mod plan;
mod policy;
mod queue;
mod raw;
mod regions;
mod secrets;
mod telemetry;
mod tools;
mod types;
mod units;
mod validate;
mod validate_tools;
mod zero;
mod zero_clouds;

pub use auth::{check_exposure, AdminAccess};
pub use error::ConfigError;
pub use keep::{
    CacheMatch, CacheServe, CacheSettings, GuardSettings, GuardTier, IdempotencySettings,
    DEFAULT_GUARD_TIERS,
};
pub use keys::{Budget, BudgetPeriod, ClientKey, KeySecret, RateLimits};
pub use plan::routing_plan;
pub use policy::{DriftPolicy, ModelPolicy};
pub use queue::{CallbackHost, QueueSettings};
pub use regions::region_matches;
pub use telemetry::TelemetrySettings;
pub use tools::*;
pub use types::*;
pub use units::{parse_duration, parse_size};
pub use zero::{key_variables, zero_config, zero_config_model};

use crate::redact;
use std::path::Path;

/// Loads and validates the configuration file at `path`, reading `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::at("", format!("cannot read {}: {error}", path.display())))?;
    parse(&text, &|name| std::env::var(name).ok())
}

/// Parses and validates configuration text, with `lookup` resolving `${VAR}`. No error
/// message carries the value of a secret: syntax errors give the line, column and key
/// but never the source line, and every other message is masked by [`secrets::Secrets`].
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut value: toml::Value =
        toml::from_str(text).map_err(|error| syntax_error(text, &error))?;
    let written = secrets::collect(&value);
    interpolate::interpolate(&mut value, "", lookup).map_err(|error| written.mask(error))?;
    let all = secrets::collect(&value).and(written);
    let raw: raw::RawConfig = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        all.mask(ConfigError::at(
            path,
            message.lines().next().unwrap_or_default(),
        ))
    })?;
    validate::validate(raw, lookup).map_err(|error| all.mask(error))
}

/// A TOML syntax error as line, column and the key of that line, without the source
/// line itself (which may hold a secret).
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches(['"', '\'']))
        .filter(|key| !key.is_empty() && !key.contains(['[', ']', '{', '#']));
    let value = line.split_once('=').map_or("", |(_, value)| value.trim());
    let value = value.trim_matches(['"', '\'', '[', ']', ' ']);
    let message = redact::Redactor::new([value]).text(&error.message().replace('\n', "; "));
    let key = key.map_or(String::new(), |key| format!(" (key `{key}`)"));
    ConfigError::at(
        "",
        format!("invalid TOML at line {line_number}, column {column}{key}: {message}"),
    )
}

#[cfg(test)]
mod tests;

/// `items` as a user reads them: `a, b or c`.
fn or_list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
