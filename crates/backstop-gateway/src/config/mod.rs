//! Configuration, loaded in two phases (as ripgrep does with its flags): the TOML
//! file is parsed into raw serde structs that reject unknown keys, with `${VAR}`
//! expanded in every string; then [`validate`] resolves references (providers,
//! fallbacks, cycles) and parses units. Every error names its key path.

mod error;
mod interpolate;
mod plan;
mod raw;
mod types;
mod units;
mod validate;
mod zero;

pub use error::ConfigError;
pub use plan::routing_plan;
pub use types::*;
pub use units::{parse_duration, parse_size};
pub use validate::{default_base_url, DEFAULT_ANTHROPIC_VERSION};
pub use zero::{zero_config, zero_config_model};

use std::path::Path;

/// Loads and validates the configuration file at `path`, reading `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::at("", format!("cannot read {}: {error}", path.display())))?;
    parse(&text, &|name| std::env::var(name).ok())
}

/// Parses and validates configuration text, with `lookup` resolving `${VAR}`.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|error| {
        ConfigError::at(
            "",
            format!("invalid TOML: {}", error.to_string().trim_end()),
        )
    })?;
    interpolate::interpolate(&mut value, "", lookup)?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        ConfigError::at(path, message.lines().next().unwrap_or_default())
    })?;
    validate::validate(raw)
}

#[cfg(test)]
mod tests;
