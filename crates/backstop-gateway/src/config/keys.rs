//! `[[keys]]`: client keys with an identity (`name`, used in logs, metrics and spend; never the key itself), the
//! public models and regions they may use, a spending budget and rate limits. The older `auth.client_keys` list
//! becomes keys of the same kind with no limits, named `client_keys[N]`.

use super::types::Secret;
use super::ConfigError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// One `[[keys]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: Option<String>,
    pub key: Option<String>,
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    pub budget: Option<RawBudget>,
    pub rate: Option<RawRate>,
}

/// `budget = { usd = 50, per = "day" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub usd: f64,
    pub per: String,
}

/// `rate = { requests_per_minute = 60, tokens_per_minute = 100000 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

/// How a configured key is matched: the key itself, or its SHA-256 so that the file holds no plaintext.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySecret {
    /// The key.
    Plain(Secret),
    /// The SHA-256 of the key.
    Sha256([u8; 32]),
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl KeySecret {
    /// Whether `presented` is this key, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        match self {
            KeySecret::Plain(key) => crate::http::constant_time_eq(key.expose(), presented),
            KeySecret::Sha256(digest) => {
                let hashed = Sha256::digest(presented.as_bytes());
                hashed
                    .iter()
                    .zip(digest)
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0
            }
        }
    }
}

/// The period a budget covers; periods are calendar days and months in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// From 00:00 UTC to the next.
    Day,
    /// From the first of the month, 00:00 UTC, to the next.
    Month,
    /// For as long as the store keeps it.
    Total,
}

impl BudgetPeriod {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
            BudgetPeriod::Total => "total",
        }
    }
}

/// A spending limit in US dollars over a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The most a key may spend in one period.
    pub usd: f64,
    /// The period.
    pub per: BudgetPeriod,
}

/// Requests and tokens a key may use per minute (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests admitted per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (prompt and answer, as the upstreams count them) per minute.
    pub tokens_per_minute: Option<u64>,
}

/// A client key with its identity and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    /// The identity used in logs, metrics and spend.
    pub name: String,
    /// The key, or its hash.
    pub secret: KeySecret,
    /// The public models it may ask for (`None`: all); their fallbacks are part of their route.
    pub models: Option<Vec<String>>,
    /// The regions its requests may be served from, as globs (`None`: any).
    pub regions: Option<Vec<String>>,
    /// Its spending limit.
    pub budget: Option<Budget>,
    /// Its rate limits.
    pub rate: RateLimits,
}

impl ClientKey {
    /// Whether it may ask for the public model `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }

    /// Whether it has a budget or a rate limit.
    pub fn is_limited(&self) -> bool {
        self.budget.is_some()
            || self.rate.requests_per_minute.is_some()
            || self.rate.tokens_per_minute.is_some()
    }
}

/// The keys of `auth.client_keys` (no limits, named `client_keys[N]`) followed by the `[[keys]]` entries,
/// checked: every name given and unique, one of `key` / `key_sha256`, known models, positive limits.
pub fn keys_from_raw(
    legacy: &[Secret],
    raw: Vec<RawKey>,
    models: &BTreeMap<String, Arc<super::Model>>,
) -> Result<Vec<Arc<ClientKey>>, ConfigError> {
    let mut keys: Vec<Arc<ClientKey>> = legacy
        .iter()
        .enumerate()
        .map(|(index, key)| {
            Arc::new(ClientKey {
                name: format!("client_keys[{index}]"),
                secret: KeySecret::Plain(key.clone()),
                models: None,
                regions: None,
                budget: None,
                rate: RateLimits::default(),
            })
        })
        .collect();
    let mut names = BTreeSet::new();
    for (index, entry) in raw.into_iter().enumerate() {
        let key = key_from_raw(&format!("keys[{index}]"), entry, models)?;
        if !names.insert(key.name.clone()) {
            return Err(ConfigError::at(
                format!("keys[{index}].name"),
                format!(
                    "`{}` names another key already: names must be unique",
                    key.name
                ),
            ));
        }
        keys.push(Arc::new(key));
    }
    Ok(keys)
}

/// What `check` says about the `[[keys]]` with limits: each one's name, models, regions, budget and rates
/// (never the key).
pub fn keys_plan(config: &super::Config) -> String {
    let keys = config.auth.as_ref().map_or(&[][..], |auth| &auth.keys[..]);
    let mut out = String::new();
    for key in keys
        .iter()
        .filter(|key| key.is_limited() || key.models.is_some() || key.regions.is_some())
    {
        let mut parts = Vec::new();
        if let Some(models) = &key.models {
            parts.push(format!("models {}", models.join(", ")));
        }
        if let Some(regions) = &key.regions {
            parts.push(format!("regions {}", regions.join(", ")));
        }
        if let Some(budget) = key.budget {
            parts.push(format!(
                "budget ${} per {}",
                budget.usd,
                budget.per.as_str()
            ));
        }
        if let Some(rpm) = key.rate.requests_per_minute {
            parts.push(format!("{rpm} requests/min"));
        }
        if let Some(tpm) = key.rate.tokens_per_minute {
            parts.push(format!("{tpm} tokens/min"));
        }
        out.push_str(&format!("\nkey {}: {}", key.name, parts.join("; ")));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn key_from_raw(
    path: &str,
    raw: RawKey,
    models: &BTreeMap<String, Arc<super::Model>>,
) -> Result<ClientKey, ConfigError> {
    let name = raw
        .name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| {
            ConfigError::at(
                format!("{path}.name"),
                "is required: the key's identity in logs, metrics and spend",
            )
        })?;
    let secret = match (raw.key, raw.key_sha256) {
        (Some(key), None) if !key.trim().is_empty() => KeySecret::Plain(Secret::new(key)),
        (Some(_), None) => return Err(ConfigError::at(
            format!("{path}.key"),
            "is empty: an empty key would let anyone in (is its ${VAR} set to an empty string?)",
        )),
        (None, Some(hex)) => KeySecret::Sha256(parse_sha256(&format!("{path}.key_sha256"), &hex)?),
        _ => {
            return Err(ConfigError::at(
                path,
                "needs exactly one of `key` and `key_sha256` (the hex SHA-256 of the key)",
            ))
        }
    };
    if let Some(allowed) = &raw.models {
        for (index, model) in allowed.iter().enumerate() {
            if !models.contains_key(model) {
                return Err(ConfigError::at(
                    format!("{path}.models[{index}]"),
                    format!("unknown model `{model}`"),
                ));
            }
        }
    }
    if let Some(regions) = &raw.regions {
        super::regions::check_globs(&format!("{path}.regions"), regions)?;
    }
    let budget = raw
        .budget
        .map(|budget| budget_from_raw(&format!("{path}.budget"), budget))
        .transpose()?;
    let rate = match raw.rate {
        Some(rate) => RateLimits {
            requests_per_minute: positive(
                &format!("{path}.rate.requests_per_minute"),
                rate.requests_per_minute,
            )?,
            tokens_per_minute: positive(
                &format!("{path}.rate.tokens_per_minute"),
                rate.tokens_per_minute,
            )?,
        },
        None => RateLimits::default(),
    };
    Ok(ClientKey {
        name,
        secret,
        models: raw.models,
        regions: raw.regions,
        budget,
        rate,
    })
}

fn budget_from_raw(path: &str, raw: RawBudget) -> Result<Budget, ConfigError> {
    if !(raw.usd.is_finite() && raw.usd > 0.0) {
        return Err(ConfigError::at(
            format!("{path}.usd"),
            format!("{} is not a positive amount of dollars", raw.usd),
        ));
    }
    let per = match raw.per.as_str() {
        "day" => BudgetPeriod::Day,
        "month" => BudgetPeriod::Month,
        "total" => BudgetPeriod::Total,
        other => {
            return Err(ConfigError::at(
                format!("{path}.per"),
                format!("`{other}` is not a period: use \"day\", \"month\" or \"total\""),
            ))
        }
    };
    Ok(Budget { usd: raw.usd, per })
}

fn positive(path: &str, value: Option<u64>) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::at(
            path,
            "is 0, which would refuse everything: remove it for no limit",
        )),
        other => Ok(other),
    }
}

fn parse_sha256(path: &str, hex: &str) -> Result<[u8; 32], ConfigError> {
    let hex = hex.trim();
    let bad = || {
        ConfigError::at(
            path,
            "is not a SHA-256 in hex (64 characters; `printf %s KEY | sha256sum` gives it)",
        )
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).map_err(|_| bad())?;
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const MODELS: &str = "[providers.p]\nkind = \"openai\"\napi_key = \"sk-upstream\"\n\
        [models.gpt]\ntargets = [{ provider = \"p\", model = \"gpt-4o\" }]\n";

    fn error_at(keys: &str) -> super::super::ConfigError {
        parse(&format!("{MODELS}{keys}"), &|_| None).expect_err(keys)
    }

    #[test]
    fn keys_are_checked_naming_the_entry() {
        assert_eq!(error_at("[[keys]]\nkey = \"k1\"\n").path, "keys[0].name");
        assert_eq!(error_at("[[keys]]\nname = \"a\"\n").path, "keys[0]");
        assert_eq!(
            error_at("[[keys]]\nname = \"a\"\nkey = \" \"\n").path,
            "keys[0].key"
        );
        assert_eq!(
            error_at("[[keys]]\nname = \"a\"\nkey_sha256 = \"abc\"\n").path,
            "keys[0].key_sha256"
        );
        let error = error_at("[[keys]]\nname = \"a\"\nkey = \"k1\"\nmodels = [\"nope\"]\n");
        assert_eq!(error.path, "keys[0].models[0]");
        assert!(error.message.contains("`nope`"), "{error}");
        assert_eq!(
            error_at("[[keys]]\nname = \"a\"\nkey = \"k1\"\nbudget = { usd = 0, per = \"day\" }\n")
                .path,
            "keys[0].budget.usd"
        );
        assert_eq!(
            error_at(
                "[[keys]]\nname = \"a\"\nkey = \"k1\"\nbudget = { usd = 5, per = \"week\" }\n"
            )
            .path,
            "keys[0].budget.per"
        );
        assert_eq!(
            error_at("[[keys]]\nname = \"a\"\nkey = \"k1\"\nrate = { requests_per_minute = 0 }\n")
                .path,
            "keys[0].rate.requests_per_minute"
        );
        let error = error_at(
            "[[keys]]\nname = \"a\"\nkey = \"k1\"\n[[keys]]\nname = \"a\"\nkey = \"k2\"\n",
        );
        assert_eq!(error.path, "keys[1].name");
        assert!(
            !error.message.contains("k1") && !error.message.contains("k2"),
            "{error}"
        );
    }

    #[test]
    fn legacy_client_keys_become_unlimited_keys_and_hashes_match() {
        let digest = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"; // sha256("foo")
        let text = format!(
            "{MODELS}[auth]\nclient_keys = [\"old-key\"]\n[[keys]]\nname = \"team-a\"\nkey_sha256 = \"{digest}\"\n\
             models = [\"gpt\"]\nbudget = {{ usd = 5, per = \"month\" }}\nrate = {{ requests_per_minute = 10 }}\n"
        );
        let config = parse(&text, &|_| None).unwrap();
        let auth = config.auth.as_ref().unwrap();
        let names: Vec<&str> = auth.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["client_keys[0]", "team-a"]);
        assert!(!auth.keys[0].is_limited() && auth.keys[1].is_limited());
        assert_eq!(
            auth.identify("foo").map(|k| k.name.clone()).as_deref(),
            Some("team-a")
        );
        assert_eq!(
            auth.identify("old-key").map(|k| k.name.clone()).as_deref(),
            Some("client_keys[0]")
        );
        assert!(auth.identify("fo").is_none() && auth.identify("").is_none());
        assert!(
            format!("{:?}", auth.keys).contains("team-a")
                && !format!("{:?}", auth.keys).contains("old-key")
        );
        assert_eq!(
            auth.keys[1].budget,
            Some(Budget {
                usd: 5.0,
                per: BudgetPeriod::Month
            })
        );
        let plan = super::super::routing_plan(&config);
        assert!(
            plan.contains("key team-a: models gpt; budget $5 per month; 10 requests/min"),
            "{plan}"
        );
        assert!(
            !plan.contains("old-key") && !plan.contains("key client_keys[0]"),
            "{plan}"
        );
    }

    #[test]
    fn keys_alone_close_the_gateway_and_allow_listening_beyond_loopback() {
        let text =
            format!("listen = \"0.0.0.0:1\"\n{MODELS}[[keys]]\nname = \"a\"\nkey = \"k1\"\n");
        let config = parse(&text, &|_| None).unwrap();
        assert!(config.auth.as_ref().unwrap().requires_client_key());
        assert!(matches!(
            config.admin_access(),
            super::super::AdminAccess::Disabled(_)
        ));
    }
}
