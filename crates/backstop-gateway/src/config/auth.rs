//! `[auth]`, validated so that it fails closed: an empty key is an error rather than
//! a key that matches anything, an exposed address needs client keys or an explicit
//! `open = true`, and the admin API is disabled rather than open when keys exist but
//! no admin key does.

use super::raw::RawAuth;
use super::types::{Auth, Config, Secret};
use super::ConfigError;
use std::net::SocketAddr;

/// Validates `[auth]`: every key non-blank, `open` and `protect_metrics` consistent with them.
pub fn auth_from_raw(raw: RawAuth) -> Result<Auth, ConfigError> {
    let mut client_keys = Vec::with_capacity(raw.client_keys.len());
    for (index, key) in raw.client_keys.into_iter().enumerate() {
        client_keys.push(non_blank(&format!("auth.client_keys[{index}]"), key)?);
    }
    let admin_key = match raw.admin_key {
        Some(key) => Some(non_blank("auth.admin_key", key)?),
        None => None,
    };
    let open = raw.open.unwrap_or(false);
    let protect_metrics = raw.protect_metrics.unwrap_or(false);
    Ok(Auth {
        client_keys,
        admin_key,
        open,
        protect_metrics,
        keys: Vec::new(),
    })
}

/// Adds the client keys (`auth.client_keys`, then `[[keys]]`) to `auth`, which `[[keys]]` alone creates, and
/// checks what depends on them.
pub fn add_keys(
    auth: &mut Option<Auth>,
    raw: Vec<super::keys::RawKey>,
    models: &std::collections::BTreeMap<String, std::sync::Arc<super::Model>>,
) -> Result<(), ConfigError> {
    let legacy = auth.as_ref().map_or(&[][..], |auth| &auth.client_keys[..]);
    let keys = super::keys::keys_from_raw(legacy, raw, models)?;
    if keys.is_empty() && auth.is_none() {
        return Ok(());
    }
    let auth = auth.get_or_insert_with(|| Auth {
        client_keys: Vec::new(),
        admin_key: None,
        open: false,
        protect_metrics: false,
        keys: Vec::new(),
    });
    auth.keys = keys;
    if auth.open && auth.requires_client_key() {
        return Err(ConfigError::at(
            "auth.open",
            "`open = true` lets any client in, but client keys are set: remove one or the other",
        ));
    }
    if auth.protect_metrics && !auth.requires_client_key() && auth.admin_key.is_none() {
        return Err(ConfigError::at(
            "auth.protect_metrics",
            "needs client keys or an admin_key to protect /metrics and /status with",
        ));
    }
    Ok(())
}

fn non_blank(path: &str, key: String) -> Result<Secret, ConfigError> {
    if key.trim().is_empty() {
        return Err(ConfigError::at(
            path,
            "is empty: an empty key would let anyone in (is its ${VAR} set to an empty string?)",
        ));
    }
    Ok(Secret::new(key))
}

/// Refuses to listen on `listen` when it is not a loopback address and no client key
/// is required, unless `auth.open = true` says that this is meant.
pub fn check_exposure(listen: SocketAddr, auth: Option<&Auth>) -> Result<(), ConfigError> {
    let keys = auth.is_some_and(Auth::requires_client_key);
    let open = auth.is_some_and(|auth| auth.open);
    if listen.ip().is_loopback() || keys || open {
        return Ok(());
    }
    Err(ConfigError::at(
        "listen",
        format!(
            "{listen} is reachable from other machines but no client key is required: set \
             auth.client_keys, or set auth.open = true if an open gateway is meant, or listen on 127.0.0.1"
        ),
    ))
}

/// Who may use the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAccess {
    /// Callers presenting this key.
    Key(Secret),
    /// Anyone who can reach the gateway: no `[auth]` keys, on a loopback address.
    Open,
    /// Nobody, for this reason.
    Disabled(&'static str),
}

impl Config {
    /// Who may use the admin API under this configuration.
    pub fn admin_access(&self) -> AdminAccess {
        let auth = self.auth.as_ref();
        if let Some(key) = auth.and_then(|auth| auth.admin_key.clone()) {
            return AdminAccess::Key(key);
        }
        if auth.is_some_and(Auth::requires_client_key) {
            return AdminAccess::Disabled(
                "the admin API is disabled because no auth.admin_key is set (client keys are): set auth.admin_key to use it",
            );
        }
        if !self.listen.ip().is_loopback() {
            return AdminAccess::Disabled(
                "the admin API is disabled because no auth.admin_key is set and the gateway listens beyond loopback: set auth.admin_key to use it",
            );
        }
        AdminAccess::Open
    }

    /// Whether `/metrics` and `/status` need a client or admin key.
    pub fn protects_metrics(&self) -> bool {
        self.auth.as_ref().is_some_and(|auth| auth.protect_metrics)
    }
}

/// What `check` says about authentication: what clients need, who may use the admin
/// API, whether `/metrics` and `/status` are protected.
pub fn auth_summary(config: &Config) -> String {
    let keys = config.auth.as_ref().map_or(0, |auth| auth.keys.len());
    let clients = match keys {
        0 if config.auth.as_ref().is_some_and(|auth| auth.open) => {
            "open to any client (auth.open = true)".to_string()
        }
        0 => "open to any client (no client_keys), so it must listen on loopback".to_string(),
        n => format!("clients need one of {n} client key(s)"),
    };
    let admin = match config.admin_access() {
        AdminAccess::Key(_) => "the admin API needs the admin key".to_string(),
        AdminAccess::Open => {
            "the admin API is open to anyone who reaches the gateway (no admin_key, loopback)"
                .to_string()
        }
        AdminAccess::Disabled(why) => why.to_string(),
    };
    let metrics = if config.protects_metrics() {
        "/metrics and /status need a key"
    } else {
        "/metrics and /status are open"
    };
    format!("auth: {clients}; {admin}; {metrics}")
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "EMPTY" => Some(String::new()),
            "BLANK" => Some("  ".into()),
            _ => None,
        }
    }

    fn error_at(text: &str) -> ConfigError {
        parse(text, &env).expect_err(text)
    }

    #[test]
    fn an_empty_or_blank_key_is_an_error_naming_it() {
        let error = error_at("[auth]\nclient_keys = [\"${EMPTY}\"]\n");
        assert_eq!(error.path, "auth.client_keys[0]");
        assert!(error.message.contains("is empty"), "{error}");
        let error = error_at("[auth]\nclient_keys = [\"ok-key\", \"${BLANK}\"]\n");
        assert_eq!(error.path, "auth.client_keys[1]");
        assert_eq!(
            error_at("[auth]\nadmin_key = \" \"\n").path,
            "auth.admin_key"
        );
        assert_eq!(
            error_at("[auth]\nadmin_key = \"${EMPTY}\"\n").path,
            "auth.admin_key"
        );
    }

    #[test]
    fn an_exposed_address_needs_client_keys_or_an_explicit_open() {
        let error = error_at("listen = \"0.0.0.0:8080\"\n");
        assert_eq!(error.path, "listen");
        assert!(
            error.message.contains("auth.client_keys")
                && error.message.contains("auth.open = true")
                && error.message.contains("127.0.0.1"),
            "{error}"
        );
        assert_eq!(
            error_at("listen = \"[::]:8080\"\n[auth]\nadmin_key = \"adm-key\"\n").path,
            "listen"
        );
        for ok in [
            "listen = \"0.0.0.0:8080\"\n[auth]\nclient_keys = [\"ck-1\"]\n",
            "listen = \"0.0.0.0:8080\"\n[auth]\nopen = true\n",
            "listen = \"[::1]:8080\"\n",
        ] {
            assert!(parse(ok, &env).is_ok(), "{ok}");
        }
        assert_eq!(
            error_at("[auth]\nopen = true\nclient_keys = [\"ck-1\"]\n").path,
            "auth.open"
        );
    }

    #[test]
    fn the_admin_api_is_disabled_with_client_keys_and_no_admin_key() {
        let access = |text: &str| parse(text, &env).unwrap().admin_access();
        assert!(matches!(
            access("[auth]\nclient_keys = [\"ck-1\"]\n"),
            AdminAccess::Disabled(_)
        ));
        let keys_only = parse("[auth]\nclient_keys = [\"ck-1\"]\n", &env).unwrap();
        let summary = super::super::routing_plan(&keys_only);
        assert!(
            summary.contains("the admin API is disabled because no auth.admin_key is set"),
            "{summary}"
        );
        assert!(matches!(
            access("listen = \"0.0.0.0:1\"\n[auth]\nopen = true\n"),
            AdminAccess::Disabled(_)
        ));
        assert_eq!(access(""), AdminAccess::Open);
        assert_eq!(
            access("[auth]\nadmin_key = \"adm-1\"\n"),
            AdminAccess::Key(Secret::new("adm-1"))
        );
    }

    #[test]
    fn protect_metrics_needs_a_key() {
        assert_eq!(
            error_at("[auth]\nprotect_metrics = true\n").path,
            "auth.protect_metrics"
        );
        let config = parse(
            "[auth]\nadmin_key = \"adm-1\"\nprotect_metrics = true\n",
            &env,
        );
        assert!(config.unwrap().protects_metrics());
    }
}
