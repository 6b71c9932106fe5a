//! The rules of a reload: what a new configuration may not do to the running one
//! (drop authentication, leave no model), and which changes only a restart applies.

use crate::config::{Config, ConfigError};

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was not started from a file.
    #[error("this gateway was not started from a config file, so there is nothing to reload")]
    NoFile,
    /// The new file is invalid.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The new file is valid but would weaken the running gateway.
    #[error("{0}")]
    Unsafe(String),
    /// The HTTP client could not be built.
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(#[from] crate::upstream::ClientBuildError),
}

/// A reload that took effect.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The configuration now in force.
    pub config: std::sync::Arc<Config>,
    /// Changed keys that only a restart applies; the running values stay.
    pub restart_required: Vec<&'static str>,
}

/// Checks `new` against the running `old` and keeps in `new` the running values of what
/// a reload cannot change (the listen address, the worker threads, the trace export),
/// returning those keys
/// when the file changed them.
pub fn vet(old: &Config, new: &mut Config) -> Result<Vec<&'static str>, ReloadError> {
    if new.models.is_empty() {
        return Err(ReloadError::Unsafe(
            "the new file has no model: a reload cannot leave the gateway with nothing to serve"
                .into(),
        ));
    }
    let removed = removed_protection(old, new);
    if !removed.is_empty() {
        return Err(ReloadError::Unsafe(format!(
            "the new file removes {} that the running configuration has: a reload cannot \
             weaken authentication (restart the gateway to do that on purpose)",
            removed.join(" and ")
        )));
    }
    let mut restart_required = Vec::new();
    if new.listen != old.listen {
        restart_required.push("listen");
        new.listen = old.listen;
    }
    if new.server.threads != old.server.threads {
        restart_required.push("server.threads");
        new.server.threads = old.server.threads;
    }
    if new.state != old.state || new.state_prefix != old.state_prefix {
        restart_required.push("state");
        new.state = old.state.clone();
        new.state_prefix = old.state_prefix.clone();
    }
    if new.telemetry != old.telemetry {
        restart_required.push("telemetry");
        new.telemetry = old.telemetry.clone();
    }
    Ok(restart_required)
}

/// The kinds of authentication `old` has and `new` lacks.
fn removed_protection(old: &Config, new: &Config) -> Vec<&'static str> {
    let has = |config: &Config| {
        let auth = config.auth.as_ref();
        [
            auth.is_some_and(crate::config::Auth::requires_client_key),
            auth.is_some_and(|a| a.admin_key.is_some()),
            auth.is_some_and(|a| a.protect_metrics),
        ]
    };
    let names = ["the client keys", "the admin key", "auth.protect_metrics"];
    let (before, after) = (has(old), has(new));
    (0..names.len())
        .filter(|&i| before[i] && !after[i])
        .map(|i| names[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const MODEL: &str = "[providers.o]\nkind = \"openai\"\n[models.m]\ntargets = [{ provider = \"o\", model = \"x\" }]\n";

    fn config(extra: &str) -> Config {
        parse(&format!("{extra}{MODEL}"), &|_| None).unwrap()
    }

    fn refusal(old: &str, new: &str) -> String {
        match vet(&config(old), &mut config(new)) {
            Err(ReloadError::Unsafe(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_reload_cannot_remove_authentication_or_every_model() {
        let keys = "[auth]\nclient_keys = [\"ck-1\"]\nadmin_key = \"adm-1\"\n";
        assert!(refusal(keys, "").contains("the client keys and the admin key"));
        assert!(refusal(keys, "[auth]\nclient_keys = [\"ck-2\"]\n").contains("the admin key"));
        assert!(refusal(keys, "[auth]\nadmin_key = \"adm-1\"\n").contains("the client keys"));
        let empty = parse("state = \"memory\"\n", &|_| None).unwrap();
        let refused = vet(&config(""), &mut empty.clone());
        assert!(matches!(refused, Err(ReloadError::Unsafe(why)) if why.contains("no model")));
        let other_keys = "[auth]\nclient_keys = [\"ck-2\", \"ck-3\"]\nadmin_key = \"adm-2\"\n";
        assert!(vet(&config(keys), &mut config(other_keys))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn listen_and_threads_need_a_restart_and_keep_their_running_values() {
        let old = config("listen = \"127.0.0.1:7000\"\n[server]\nthreads = 2\n");
        let mut new = config("listen = \"127.0.0.1:7001\"\n[server]\nthreads = 4\n");
        assert_eq!(vet(&old, &mut new).unwrap(), ["listen", "server.threads"]);
        assert_eq!((new.listen, new.server.threads), (old.listen, Some(2)));
    }

    #[test]
    fn telemetry_needs_a_restart_and_keeps_its_running_value() {
        let old = config("");
        let mut new = config("[telemetry]\notlp_endpoint = \"http://c:4318\"\n");
        assert_eq!(vet(&old, &mut new).unwrap(), ["telemetry"]);
        assert!(new.telemetry.is_none());
    }
}
