//! `[queue]`: the durable queue of requests that opt in with `Prefer: respond-async` or that a model with
//! `queue = "on_failure"` could not serve: how long a job lives, how often it is tried, how many may wait, and
//! where results may be announced (webhooks, signed).

use super::types::Secret;
use super::validate::nonzero_duration_at;
use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `[queue]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub ttl: Option<String>,
    pub max_attempts: Option<u32>,
    pub max_jobs: Option<u64>,
    #[serde(default)]
    pub callback_hosts: Vec<String>,
    pub callback_secret: Option<String>,
}

/// A host results may be posted to: `host[:port]` over HTTPS, or over plain HTTP when listed with `http://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackHost {
    /// Plain HTTP allowed (listed as `http://host:port`).
    pub http: bool,
    /// The host, lower case, with its port when one was given.
    pub authority: String,
}

/// The durable queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a job may wait and run before it expires.
    pub ttl: Duration,
    /// How many runs a job gets before it fails for good.
    pub max_attempts: u32,
    /// How many jobs may wait or run at once; past it a request that would be queued gets a 503.
    pub max_jobs: u64,
    /// The only hosts `x-backstop-callback` may name.
    pub callback_hosts: Vec<CallbackHost>,
    /// The key of the HMAC-SHA256 signature on webhook bodies.
    pub callback_secret: Option<Secret>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_attempts: 20,
            max_jobs: 10_000,
            callback_hosts: Vec::new(),
            callback_secret: None,
        }
    }
}

/// Validates `[queue]`.
pub fn queue_from_raw(raw: RawQueue) -> Result<QueueSettings, ConfigError> {
    let default = QueueSettings::default();
    let max_attempts = raw.max_attempts.unwrap_or(default.max_attempts);
    if max_attempts == 0 {
        return Err(ConfigError::at("queue.max_attempts", "must be at least 1"));
    }
    let max_jobs = raw.max_jobs.unwrap_or(default.max_jobs);
    if max_jobs == 0 {
        return Err(ConfigError::at("queue.max_jobs", "must be at least 1"));
    }
    let callback_hosts = raw
        .callback_hosts
        .iter()
        .map(|entry| callback_host(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let callback_secret = match raw.callback_secret {
        Some(secret) if secret.is_empty() => {
            return Err(ConfigError::at("queue.callback_secret", "is empty"))
        }
        other => other.map(Secret::new),
    };
    if !callback_hosts.is_empty() && callback_secret.is_none() {
        return Err(ConfigError::at(
            "queue.callback_secret",
            "is needed with `callback_hosts`: webhook bodies are always signed",
        ));
    }
    Ok(QueueSettings {
        ttl: nonzero_duration_at("queue.ttl", raw.ttl.as_ref(), default.ttl)?,
        max_attempts,
        max_jobs,
        callback_hosts,
        callback_secret,
    })
}

fn callback_host(entry: &str) -> Result<CallbackHost, ConfigError> {
    let (http, authority) = match entry.split_once("://") {
        None => (false, entry),
        Some(("https", rest)) => (false, rest),
        Some(("http", rest)) => (true, rest),
        Some(_) => {
            return Err(ConfigError::at(
                "queue.callback_hosts",
                format!("`{entry}`: use `host`, `host:port`, `https://host` or `http://host:port`"),
            ))
        }
    };
    let authority = authority.trim_end_matches('/').to_ascii_lowercase();
    let valid = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(ConfigError::at(
            "queue.callback_hosts",
            format!("`{entry}` is not a host name (no path, user or wildcard)"),
        ));
    }
    Ok(CallbackHost { http, authority })
}
