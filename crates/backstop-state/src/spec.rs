//! Where state lives, as written in the configuration: `memory`, `sqlite:PATH`, `redis://...` or `rediss://...`.

use crate::StateError;
use std::fmt;
use std::path::PathBuf;

/// The default store: an embedded SQLite file beside the working directory.
pub const DEFAULT_SQLITE_PATH: &str = ".backstop/state.db";

/// The default prefix of every key, so that several fleets can share one Redis.
pub const DEFAULT_PREFIX: &str = "backstop:";

/// A state backend chosen by the `state` setting.
#[derive(Clone, PartialEq, Eq)]
pub enum StateSpec {
    /// In process memory only: forgotten on restart, not shared.
    Memory,
    /// An embedded SQLite database at this path: survives restarts, one node.
    Sqlite(PathBuf),
    /// A Redis (6.2+) or Valkey server shared by replicas; the URL may carry a user and password.
    Redis(String),
}

impl StateSpec {
    /// Parses a `state` value; the error says what forms are accepted (and never repeats a password).
    pub fn parse(text: &str) -> Result<StateSpec, StateError> {
        if text == "memory" {
            return Ok(StateSpec::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(StateError::Spec(
                    "`sqlite:` needs a path, e.g. \"sqlite:.backstop/state.db\"".into(),
                ));
            }
            return Ok(StateSpec::Sqlite(path.into()));
        }
        if text.starts_with("redis://") || text.starts_with("rediss://") {
            return match redis::Client::open(text) {
                Ok(_) => Ok(StateSpec::Redis(text.into())),
                Err(error) => Err(StateError::Spec(format!(
                    "`{}` is not a valid Redis URL ({}): use \"redis://[USER:PASSWORD@]HOST:PORT[/DB]\" or \"rediss://...\" for TLS",
                    redact_url(text),
                    error
                ))),
            };
        }
        Err(StateError::Spec(format!(
            "`{}` is not a state store: use \"memory\", \"sqlite:PATH\" or \"redis://HOST:PORT[/DB]\"",
            redact_url(text)
        )))
    }

    /// The backend's name: `memory`, `sqlite` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            StateSpec::Memory => "memory",
            StateSpec::Sqlite(_) => "sqlite",
            StateSpec::Redis(_) => "redis",
        }
    }

    /// Whether other processes see the same state at once (a Redis server).
    pub fn is_shared(&self) -> bool {
        matches!(self, StateSpec::Redis(_))
    }
}

impl Default for StateSpec {
    fn default() -> Self {
        StateSpec::Sqlite(DEFAULT_SQLITE_PATH.into())
    }
}

/// Shown without the password: `redis://user:***@host:6379/0`.
impl fmt::Display for StateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateSpec::Memory => f.write_str("memory"),
            StateSpec::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StateSpec::Redis(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl fmt::Debug for StateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// `url` with the password (or a lone user token) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = match credentials.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_backends() {
        assert_eq!(StateSpec::parse("memory").unwrap(), StateSpec::Memory);
        assert_eq!(
            StateSpec::parse("sqlite:/tmp/x.db").unwrap(),
            StateSpec::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StateSpec::parse("rediss://u:p@h:6380/2").unwrap().kind(),
            "redis"
        );
        assert_eq!(
            StateSpec::default().to_string(),
            "sqlite:.backstop/state.db"
        );
    }

    #[test]
    fn bad_values_say_what_is_accepted_and_hide_passwords() {
        let error = StateSpec::parse("postgres://x").unwrap_err().to_string();
        assert!(error.contains("\"memory\""), "{error}");
        assert!(StateSpec::parse("sqlite:").is_err());
        let error = StateSpec::parse("redis://user:hunter2@host:notaport")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("user:***@"), "{error}");
    }

    #[test]
    fn display_hides_the_password() {
        let spec = StateSpec::parse("redis://:s3cret@cache:6379/1").unwrap();
        assert_eq!(spec.to_string(), "redis://:***@cache:6379/1");
        let spec = StateSpec::parse("redis://cache:6379").unwrap();
        assert_eq!(spec.to_string(), "redis://cache:6379");
    }
}
