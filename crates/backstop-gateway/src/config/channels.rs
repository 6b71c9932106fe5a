//! The cloud channels' own provider keys (`kind = "azure" | "bedrock" | "vertex"`): which
//! each needs, read into the base URL, the query, the body version and the credential a
//! request carries. A missing key is an error that names it; a key another kind uses is
//! an error too, so that a typo or a copied block never passes silently.

use super::raw::RawProvider;
use super::types::Secret;
use super::ConfigError;
use crate::channels::{AwsCredentials, ChannelAuth, GoogleToken, ServiceAccount};
use backstop_protocol::{Auth, ProviderKind, ProviderSpec};
use std::sync::Arc;

/// What a channel's keys come to.
#[derive(Debug, Default)]
pub struct ChannelSettings {
    /// The base URL with the kind's placeholders and base path filled in.
    pub base_url: String,
    /// Query parameters on every request (Azure's `api-version`).
    pub query: Vec<(String, String)>,
    /// The credential beyond an API key header.
    pub auth: Option<ChannelAuth>,
}

/// Reads the channel keys of provider `path` of `kind` (for the native kinds: checks that
/// none is given). `env` looks up the standard environment variables (`AWS_*`).
pub fn read(
    path: &str,
    kind: ProviderKind,
    raw: &mut RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ChannelSettings, ConfigError> {
    let spec = kind.spec();
    let used: &[&str] = match kind {
        ProviderKind::Azure => &["api_version", "azure_ad_token"],
        ProviderKind::Bedrock => &["access_key_id", "secret_access_key", "session_token"],
        ProviderKind::Vertex => &[
            "project",
            "location",
            "credentials_file",
            "access_token",
            "token_url",
        ],
        ProviderKind::OpenAi | ProviderKind::Anthropic | ProviderKind::Gemini => &[],
    };
    if let Some(key) = given_keys(raw).into_iter().find(|key| !used.contains(key)) {
        return Err(ConfigError::at(
            format!("{path}.{key}"),
            format!("`{key}` does not apply to kind \"{kind}\""),
        ));
    }
    let configured = raw.base_url.clone();
    match kind {
        ProviderKind::Azure => azure(path, spec, raw, configured),
        ProviderKind::Bedrock => bedrock(path, spec, raw, configured, env),
        ProviderKind::Vertex => vertex(path, spec, raw, configured),
        ProviderKind::OpenAi | ProviderKind::Anthropic | ProviderKind::Gemini => {
            Ok(ChannelSettings {
                base_url: spec.base_url(configured.as_deref(), &[]),
                ..ChannelSettings::default()
            })
        }
    }
}

/// The channel keys present in `raw`.
fn given_keys(raw: &RawProvider) -> Vec<&'static str> {
    let keys = [
        ("api_version", raw.api_version.is_some()),
        ("azure_ad_token", raw.azure_ad_token.is_some()),
        ("access_key_id", raw.access_key_id.is_some()),
        ("secret_access_key", raw.secret_access_key.is_some()),
        ("session_token", raw.session_token.is_some()),
        ("project", raw.project.is_some()),
        ("location", raw.location.is_some()),
        ("credentials_file", raw.credentials_file.is_some()),
        ("access_token", raw.access_token.is_some()),
        ("token_url", raw.token_url.is_some()),
    ];
    keys.into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
}

fn missing(path: &str, key: &str, why: &str) -> ConfigError {
    ConfigError::at(format!("{path}.{key}"), format!("missing: {why}"))
}

/// A non-empty value, or `None`.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn azure(
    path: &str,
    spec: &ProviderSpec,
    raw: &mut RawProvider,
    configured: Option<String>,
) -> Result<ChannelSettings, ConfigError> {
    let Some(base) = present(configured) else {
        return Err(missing(
            path,
            "base_url",
            "an Azure OpenAI provider needs its resource endpoint, e.g. \"https://NAME.openai.azure.com\"",
        ));
    };
    let token = present(raw.azure_ad_token.take());
    let has_key = raw.api_key.as_ref().is_some_and(|k| !k.is_empty());
    if token.is_some() && has_key {
        return Err(ConfigError::at(
            format!("{path}.azure_ad_token"),
            "give either `api_key` or `azure_ad_token`, not both",
        ));
    }
    if token.is_none() && !has_key {
        return Err(missing(
            path,
            "api_key",
            "an Azure OpenAI provider needs `api_key` or `azure_ad_token` (an Entra ID token)",
        ));
    }
    let version = spec
        .version_query
        .map(|query| {
            let value =
                present(raw.api_version.take()).unwrap_or_else(|| query.default.to_string());
            (query.name.to_string(), value)
        })
        .into_iter()
        .collect();
    Ok(ChannelSettings {
        base_url: spec.base_url(Some(&base), &[]),
        query: version,
        auth: token.map(|token| ChannelAuth::Bearer(Secret::new(token))),
    })
}

fn bedrock(
    path: &str,
    spec: &ProviderSpec,
    raw: &mut RawProvider,
    configured: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ChannelSettings, ConfigError> {
    if raw.api_key.is_some() {
        return Err(ConfigError::at(
            format!("{path}.api_key"),
            "Bedrock signs requests with `access_key_id` and `secret_access_key`; remove `api_key`",
        ));
    }
    let Some(region) = present(raw.region.clone()).or_else(|| present(env("AWS_REGION"))) else {
        return Err(missing(
            path,
            "region",
            "a Bedrock provider needs its AWS region, e.g. \"us-east-1\" (or AWS_REGION)",
        ));
    };
    let from_env = raw.access_key_id.is_none() && raw.secret_access_key.is_none();
    let pick = |value: Option<String>, var: &str| {
        present(value).or_else(|| if from_env { present(env(var)) } else { None })
    };
    let access_key_id = pick(raw.access_key_id.take(), "AWS_ACCESS_KEY_ID").ok_or_else(|| {
        missing(
            path,
            "access_key_id",
            "a Bedrock provider needs AWS credentials (or AWS_ACCESS_KEY_ID)",
        )
    })?;
    let secret_access_key = pick(raw.secret_access_key.take(), "AWS_SECRET_ACCESS_KEY")
        .ok_or_else(|| {
            missing(
                path,
                "secret_access_key",
                "a Bedrock provider needs AWS credentials (or AWS_SECRET_ACCESS_KEY)",
            )
        })?;
    let session_token = pick(raw.session_token.take(), "AWS_SESSION_TOKEN");
    let Auth::SigV4 { service } = spec.auth else {
        return Err(ConfigError::at(path, "this kind does not sign with SigV4"));
    };
    let credentials = AwsCredentials {
        access_key_id: Secret::new(access_key_id),
        secret_access_key: Secret::new(secret_access_key),
        session_token: session_token.map(Secret::new),
        region: region.clone(),
        service,
    };
    Ok(ChannelSettings {
        base_url: spec.base_url(configured.as_deref(), &[("region", &region)]),
        query: Vec::new(),
        auth: Some(ChannelAuth::Aws(Arc::new(credentials))),
    })
}

fn vertex(
    path: &str,
    spec: &ProviderSpec,
    raw: &mut RawProvider,
    configured: Option<String>,
) -> Result<ChannelSettings, ConfigError> {
    if raw.api_key.is_some() {
        return Err(ConfigError::at(
            format!("{path}.api_key"),
            "Vertex AI takes `access_token` or `credentials_file`; remove `api_key`",
        ));
    }
    let project = present(raw.project.take()).ok_or_else(|| {
        missing(
            path,
            "project",
            "a Vertex AI provider needs its Google Cloud project id",
        )
    })?;
    let location = present(raw.location.take()).ok_or_else(|| {
        missing(
            path,
            "location",
            "a Vertex AI provider needs its location, e.g. \"us-east5\" or \"global\"",
        )
    })?;
    let token = present(raw.access_token.take());
    let file = present(raw.credentials_file.take());
    let token_url = present(raw.token_url.take());
    let auth = match (token, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                format!("{path}.access_token"),
                "give either `access_token` or `credentials_file`, not both",
            ))
        }
        (None, None) => {
            return Err(missing(
                path,
                "credentials_file",
                "a Vertex AI provider needs `credentials_file` (a service account's JSON key) or `access_token`",
            ))
        }
        (Some(token), None) => {
            if token_url.is_some() {
                return Err(ConfigError::at(
                    format!("{path}.token_url"),
                    "`token_url` applies only with `credentials_file`",
                ));
            }
            GoogleToken::given(Secret::new(token))
        }
        (None, Some(file)) => service_account(path, &file, token_url)?,
    };
    Ok(ChannelSettings {
        base_url: spec.base_url(
            configured.as_deref(),
            &[("project", &project), ("location", &location)],
        ),
        query: Vec::new(),
        auth: Some(ChannelAuth::Google(Arc::new(auth))),
    })
}

/// The token source of the service account whose JSON key is in `file`. Errors name the
/// file and the problem, never its contents.
fn service_account(
    path: &str,
    file: &str,
    token_url: Option<String>,
) -> Result<GoogleToken, ConfigError> {
    let at = format!("{path}.credentials_file");
    let text = std::fs::read_to_string(file)
        .map_err(|error| ConfigError::at(&at, format!("cannot read `{file}`: {error}")))?;
    let account: ServiceAccount = serde_json::from_str(&text).map_err(|_| {
        ConfigError::at(
            &at,
            format!("`{file}` is not a service account's JSON key (client_email and private_key)"),
        )
    })?;
    let token_url = token_url.unwrap_or_else(|| crate::channels::DEFAULT_TOKEN_URL.to_string());
    if url::Url::parse(&token_url).is_err() {
        return Err(ConfigError::at(format!("{path}.token_url"), "not a URL"));
    }
    GoogleToken::for_account(account, token_url)
        .map_err(|why| ConfigError::at(&at, format!("`{file}`: {why}")))
}
