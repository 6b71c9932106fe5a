//! The secret values of a configuration file, found by key name, so that no config
//! error ever prints one.

use super::ConfigError;
use crate::redact::{is_secret_key, Redactor};

/// Secret values found in a config tree.
#[derive(Debug, Default)]
pub struct Secrets(Vec<String>);

/// The values of secret-named keys (`api_key`, `client_keys`, `admin_key`, tokens,
/// passwords, secrets), of every `headers` table, and the userinfo of every URL.
pub fn collect(value: &toml::Value) -> Secrets {
    let mut found = Vec::new();
    walk(value, false, &mut found);
    Secrets(found)
}

fn walk(value: &toml::Value, secret: bool, found: &mut Vec<String>) {
    match value {
        toml::Value::String(text) => {
            if secret {
                found.push(text.clone());
            } else if let Some(userinfo) = userinfo(text) {
                found.push(userinfo.to_string());
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|item| walk(item, secret, found)),
        toml::Value::Table(table) => {
            for (key, item) in table {
                walk(
                    item,
                    // `[[keys]]` holds names and limits besides its `key`, which is found by its own name.
                    secret || key == "headers" || (is_secret_key(key) && key != "keys"),
                    found,
                );
            }
        }
        toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)
        | toml::Value::Datetime(_) => {}
    }
}

/// The `user:password` of `scheme://user:password@host/...`.
fn userinfo(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|at| &authority[..at])
}

impl Secrets {
    /// These secrets and `other`'s.
    pub fn and(mut self, other: Secrets) -> Secrets {
        self.0.extend(other.0);
        self
    }

    /// `error` with every secret value masked in its message.
    pub fn mask(&self, mut error: ConfigError) -> ConfigError {
        error.message = Redactor::new(self.0.iter().cloned()).text(&error.message);
        error
    }
}

impl super::Config {
    /// A redactor for every secret of this configuration: each provider's `api_key` and
    /// header values, the header values of every tool and MCP server, and the client and
    /// admin keys.
    pub fn redactor(&self) -> Redactor {
        let providers = self.providers.values().flat_map(|provider| {
            let key = provider.api_key.iter().map(|k| k.expose().to_string());
            let headers = provider.headers.iter().map(|(_, value)| value.clone());
            let channel = provider.channel_auth.iter().flat_map(|auth| auth.secrets());
            key.chain(headers).chain(channel).collect::<Vec<_>>()
        });
        let auth = self.auth.iter().flat_map(|auth| {
            let clients = auth.keys.iter().filter_map(|key| match &key.secret {
                super::KeySecret::Plain(secret) => Some(secret),
                super::KeySecret::Sha256(_) => None,
            });
            clients
                .chain(auth.admin_key.iter())
                .map(|k| k.expose().to_string())
                .collect::<Vec<_>>()
        });
        let tools = self
            .tools
            .values()
            .map(|tool| &tool.upstream)
            .chain(self.mcp.values().map(|server| &server.upstream))
            .flat_map(|upstream| upstream.headers.iter().map(|(_, v)| v.expose().to_string()))
            .collect::<Vec<_>>();
        Redactor::new(providers.chain(auth).chain(tools))
    }
}
