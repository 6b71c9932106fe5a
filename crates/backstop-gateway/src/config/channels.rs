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
    let Some(region) = present(raw.region.clone())
        .or_else(|| present(env("AWS_REGION")))
        .or_else(|| present(env("AWS_DEFAULT_REGION")))
    else {
        return Err(missing(
            path,
            "region",
            "a Bedrock provider needs its AWS region, e.g. \"us-east-1\" (or AWS_REGION or AWS_DEFAULT_REGION)",
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

#[cfg(test)]
mod tests {
    use crate::config::{parse, routing_plan};

    fn env(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENV".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret-0123456789".into()),
            _ => None,
        }
    }

    fn error_of(text: &str) -> String {
        match parse(text, &env) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(error) => error.to_string(),
        }
    }

    fn with_model(provider: &str, model: &str) -> String {
        format!("{provider}[models.m]\ntargets = [{{ provider = \"p\", model = \"{model}\" }}]\n")
    }

    #[test]
    fn each_channel_names_its_missing_key() {
        let cases = [
            ("kind = \"azure\"\napi_key = \"k\"\n", "providers.p.base_url", "resource endpoint"),
            ("kind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\n", "providers.p.api_key", "azure_ad_token"),
            ("kind = \"bedrock\"\n", "providers.p.region", "AWS region"),
            ("kind = \"bedrock\"\nregion = \"us-east-1\"\naccess_key_id = \"AKID\"\n", "providers.p.secret_access_key", "AWS credentials"),
            ("kind = \"vertex\"\nlocation = \"us-east5\"\naccess_token = \"ya29.x\"\n", "providers.p.project", "project id"),
            ("kind = \"vertex\"\nproject = \"p\"\naccess_token = \"ya29.x\"\n", "providers.p.location", "location"),
            ("kind = \"vertex\"\nproject = \"p\"\nlocation = \"global\"\n", "providers.p.credentials_file", "access_token"),
            ("kind = \"vertex\"\nproject = \"p\"\nlocation = \"l\"\ncredentials_file = \"/nonexistent/sa.json\"\n", "providers.p.credentials_file", "cannot read `/nonexistent/sa.json`"),
            ("kind = \"openai\"\nproject = \"p\"\n", "providers.p.project", "does not apply to kind \"openai\""),
            ("kind = \"bedrock\"\nregion = \"us-east-1\"\napi_version = \"x\"\n", "providers.p.api_version", "does not apply to kind \"bedrock\""),
            ("kind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"\n", "providers.p.api_key", "remove `api_key`"),
        ];
        for (provider, key, words) in cases {
            let error = error_of(&format!("[providers.p]\n{provider}"));
            assert!(
                error.starts_with(&format!("config error at `{key}`")),
                "{error}"
            );
            assert!(error.contains(words), "{error}");
        }
    }

    #[test]
    fn bedrock_falls_back_on_the_aws_environment_only_as_a_whole() {
        let text = with_model(
            "[providers.p]\nkind = \"bedrock\"\nregion = \"eu-west-3\"\n",
            "anthropic.claude-v1:0",
        );
        let config = parse(&text, &env).unwrap();
        let plan = routing_plan(&config);
        assert!(plan.contains("AWS SigV4 in eu-west-3"), "{plan}");
        assert!(plan.contains("https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-v1%3A0/invoke"), "{plan}");
        assert!(
            !plan.contains("env-secret-0123456789") && !plan.contains("AKIDFROMENV"),
            "{plan}"
        );
        assert!(config
            .redactor()
            .text("x env-secret-0123456789 y")
            .contains("***"));
    }

    #[test]
    fn the_plan_shows_each_channel_url_and_auth_never_a_secret() {
        let text = "[providers.az]\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\nazure_ad_token = \"eyJ-secret-token\"\n\
            [providers.vx]\nkind = \"vertex\"\nproject = \"proj\"\nlocation = \"global\"\naccess_token = \"ya29.secret-token\"\n\
            [models.m]\ntargets = [{ provider = \"az\", model = \"dep\" }, { provider = \"vx\", model = \"gemini-2.5-flash\" }]\n";
        let config = parse(text, &env).unwrap();
        let plan = routing_plan(&config);
        assert!(plan.contains("https://r.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21, Entra ID bearer token"), "{plan}");
        assert!(plan.contains("https://aiplatform.googleapis.com/v1/projects/proj/locations/global/publishers/google/models/gemini-2.5-flash:generateContent, OAuth access token"), "{plan}");
        assert!(!plan.contains("secret-token"), "{plan}");
        let redactor = config.redactor();
        assert_eq!(
            redactor.text("eyJ-secret-token ya29.secret-token"),
            "*** ***"
        );
    }

    #[test]
    fn a_service_account_key_is_read_and_its_errors_never_show_it() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vertex-service-account.json"
        );
        let text = with_model(&format!("[providers.p]\nkind = \"vertex\"\nproject = \"p\"\nlocation = \"us-east5\"\ncredentials_file = \"{file}\"\n"), "claude-sonnet-4-5@20250929");
        let plan = routing_plan(&parse(&text, &env).unwrap());
        assert!(plan.contains("service account backstop-test@backstop-test.iam.gserviceaccount.com (credentials_file), tokens from https://oauth2.googleapis.com/token"), "{plan}");
        assert!(!plan.contains("PRIVATE KEY"), "{plan}");
        let bad = std::env::temp_dir().join(format!("backstop-bad-sa-{}.json", std::process::id()));
        std::fs::write(
            &bad,
            r#"{"client_email": "x@y", "private_key": "not-a-pem-secret-material"}"#,
        )
        .unwrap();
        let text = format!("[providers.p]\nkind = \"vertex\"\nproject = \"p\"\nlocation = \"l\"\ncredentials_file = \"{}\"\n", bad.display());
        let error = error_of(&text);
        let _ = std::fs::remove_file(&bad);
        assert!(error.contains("not an RSA private key in PEM"), "{error}");
        assert!(!error.contains("not-a-pem-secret-material"), "{error}");
    }
}
