//! Zero-config from the clouds' standard environment variables: the variables their own
//! SDKs and command-line tools read make a `bedrock`, `azure` or `vertex` provider, checked
//! exactly as a `[providers.NAME]` block with the same keys would be. A cloud whose
//! credentials are there but whose other settings are not (no region, no project) is left
//! out with a warning that names what is missing, never a value.

use super::raw::RawProvider;
use super::types::Provider;

/// Looks an environment variable up.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How one cloud's provider is made from the environment.
struct FromEnv {
    /// The provider's name (its kind's).
    name: &'static str,
    /// The variables whose presence means the machine has this cloud's credentials.
    credentials: &'static str,
    /// The other variables it reads.
    settings: &'static str,
    /// The provider block the environment amounts to, when its credentials are set.
    raw: fn(Lookup<'_>) -> Option<RawProvider>,
}

const CLOUDS: [FromEnv; 3] = [
    FromEnv {
        name: "bedrock",
        credentials: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        settings: "AWS_SESSION_TOKEN, AWS_REGION or AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        raw: bedrock,
    },
    FromEnv {
        name: "azure",
        credentials: "AZURE_OPENAI_ENDPOINT",
        settings: "AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN, OPENAI_API_VERSION",
        raw: azure,
    },
    FromEnv {
        name: "vertex",
        credentials: "GOOGLE_APPLICATION_CREDENTIALS",
        settings: "GOOGLE_CLOUD_PROJECT or ANTHROPIC_VERTEX_PROJECT_ID, CLOUD_ML_REGION or GOOGLE_CLOUD_LOCATION",
        raw: vertex,
    },
];

/// The environment variables that make a cloud provider, one entry per cloud
/// (`AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`, ...).
pub fn cloud_variables() -> impl Iterator<Item = String> {
    CLOUDS.iter().map(|cloud| cloud.credentials.to_string())
}

/// A variable's value, when it is set and not blank.
fn var(lookup: Lookup<'_>, name: &str) -> Option<String> {
    lookup(name).filter(|value| !value.trim().is_empty())
}

/// The first of `names` that is set.
fn first(lookup: Lookup<'_>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| var(lookup, name))
}

/// AWS keys: the credentials, session token and region are read from `AWS_*` by the Bedrock
/// provider itself when its block gives none (see `config::channels`); the endpoint, as the
/// AWS SDKs do, from `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` or `AWS_ENDPOINT_URL` when set.
fn bedrock(lookup: Lookup<'_>) -> Option<RawProvider> {
    var(lookup, "AWS_ACCESS_KEY_ID")?;
    var(lookup, "AWS_SECRET_ACCESS_KEY")?;
    Some(RawProvider {
        kind: "bedrock".into(),
        base_url: first(
            lookup,
            &["AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"],
        ),
        ..RawProvider::default()
    })
}

/// The variables the `openai` SDK's `AzureOpenAI` client reads.
fn azure(lookup: Lookup<'_>) -> Option<RawProvider> {
    let endpoint = var(lookup, "AZURE_OPENAI_ENDPOINT")?;
    let api_key = var(lookup, "AZURE_OPENAI_API_KEY");
    let azure_ad_token = match api_key {
        Some(_) => None,
        None => var(lookup, "AZURE_OPENAI_AD_TOKEN"),
    };
    Some(RawProvider {
        kind: "azure".into(),
        base_url: Some(endpoint),
        api_key,
        azure_ad_token,
        api_version: var(lookup, "OPENAI_API_VERSION"),
        ..RawProvider::default()
    })
}

/// A service account's key file, with the project and location the Google Cloud tools
/// (`GOOGLE_CLOUD_PROJECT`, `GOOGLE_CLOUD_LOCATION`) or the `anthropic` SDK's Vertex client
/// (`ANTHROPIC_VERTEX_PROJECT_ID`, `CLOUD_ML_REGION`) read; the location defaults to `global`.
fn vertex(lookup: Lookup<'_>) -> Option<RawProvider> {
    let credentials_file = var(lookup, "GOOGLE_APPLICATION_CREDENTIALS")?;
    let location = first(lookup, &["CLOUD_ML_REGION", "GOOGLE_CLOUD_LOCATION"])
        .unwrap_or_else(|| "global".to_string());
    Some(RawProvider {
        kind: "vertex".into(),
        project: first(
            lookup,
            &["GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_PROJECT_ID"],
        ),
        location: Some(location),
        credentials_file: Some(credentials_file),
        ..RawProvider::default()
    })
}

/// The cloud providers the environment gives, and for each cloud whose credentials are set
/// but that cannot be used, why.
pub fn cloud_providers(lookup: Lookup<'_>) -> (Vec<Provider>, Vec<String>) {
    let mut providers = Vec::new();
    let mut skipped = Vec::new();
    for cloud in &CLOUDS {
        let Some(raw) = (cloud.raw)(lookup) else {
            continue;
        };
        match super::validate::provider_from_raw(cloud.name, raw, lookup) {
            Ok(provider) => providers.push(provider),
            Err(error) => skipped.push(format!(
                "{} is set but no {} provider could be made from it (with {}): {}",
                cloud.credentials, cloud.name, cloud.settings, error.message
            )),
        }
    }
    (providers, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{routing_plan, zero_config, zero_config_model};
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn service_account_file() -> &'static str {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vertex-service-account.json"
        )
    }

    #[test]
    fn aws_credentials_alone_make_a_bedrock_provider_serving_bedrock_model_ids() {
        let lookup = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDZEROCONFIG"),
            ("AWS_SECRET_ACCESS_KEY", "zero-config-secret-key"),
            ("AWS_SESSION_TOKEN", "zero-config-session"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
        ]);
        let config = zero_config(&lookup);
        assert_eq!(config.providers.keys().collect::<Vec<_>>(), ["bedrock"]);
        let id = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let model = zero_config_model(&config, id).unwrap();
        assert_eq!(*model.targets[0].label, *format!("bedrock/{id}"));
        assert_eq!(
            model.targets[0].endpoint(false).as_str(),
            "https://bedrock-runtime.eu-central-1.amazonaws.com/model/eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
        );
        let target = &model.targets[0];
        assert_eq!(
            target.uri(false).to_string(),
            target.endpoint(false).as_str()
        );
        assert_eq!(target.uri(true).to_string(), target.endpoint(true).as_str());
        assert!(zero_config_model(&config, "gpt-4o").is_none());
        let plan = routing_plan(&config);
        assert!(
            plan.contains("bedrock at https://bedrock-runtime.eu-central-1.amazonaws.com, AWS SigV4 in eu-central-1 with a session token"),
            "{plan}"
        );
        for secret in [
            "zero-config-secret-key",
            "zero-config-session",
            "AKIDZEROCONFIG",
        ] {
            assert!(!plan.contains(secret), "{plan}");
            assert_eq!(config.redactor().text(secret), "***");
        }
    }

    #[test]
    fn azure_variables_make_a_provider_that_serves_openai_names_without_an_openai_key() {
        let lookup = env(&[
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com"),
            ("AZURE_OPENAI_API_KEY", "azure-zero-config-key"),
            ("OPENAI_API_VERSION", "2025-01-01-preview"),
        ]);
        let config = zero_config(&lookup);
        let model = zero_config_model(&config, "gpt-4o").unwrap();
        assert_eq!(model.targets[0].label.as_ref(), "azure/gpt-4o");
        assert_eq!(
            model.targets[0].endpoint(false).as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview"
        );
        let target = &model.targets[0];
        assert_eq!(
            target.uri(false).to_string(),
            target.endpoint(false).as_str()
        );
        assert_eq!(target.uri(true).to_string(), target.endpoint(true).as_str());
        assert!(zero_config_model(&config, "claude-sonnet-4-5").is_none());
        let plan = routing_plan(&config);
        assert!(
            plan.contains("azure at https://res.openai.azure.com, API key in api-key"),
            "{plan}"
        );
        assert!(!plan.contains("azure-zero-config-key"), "{plan}");
        // With OpenAI's own key as well, OpenAI's names go to OpenAI.
        let both = env(&[
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com"),
            ("AZURE_OPENAI_API_KEY", "azure-zero-config-key"),
            ("OPENAI_API_KEY", "sk-zero"),
        ]);
        let config = zero_config(&both);
        let model = zero_config_model(&config, "gpt-4o").unwrap();
        assert_eq!(model.targets[0].label.as_ref(), "openai/gpt-4o");
    }

    #[test]
    fn a_service_account_makes_a_vertex_provider_for_claude_and_gemini_names() {
        let lookup = env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", service_account_file()),
            ("GOOGLE_CLOUD_PROJECT", "zero-project"),
            ("CLOUD_ML_REGION", "us-east5"),
        ]);
        let config = zero_config(&lookup);
        let claude = zero_config_model(&config, "claude-sonnet-4-5@20250929").unwrap();
        assert_eq!(
            claude.targets[0].endpoint(false).as_str(),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/zero-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        let gemini = zero_config_model(&config, "gemini-2.5-flash").unwrap();
        assert!(gemini.targets[0]
            .endpoint(false)
            .as_str()
            .ends_with("/publishers/google/models/gemini-2.5-flash:generateContent"));
        let plan = routing_plan(&config);
        assert!(
            plan.contains("service account backstop-test@backstop-test.iam.gserviceaccount.com"),
            "{plan}"
        );
        assert!(!plan.contains("PRIVATE KEY"), "{plan}");
        let global = env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", service_account_file()),
            ("ANTHROPIC_VERTEX_PROJECT_ID", "zero-project"),
        ]);
        let config = zero_config(&global);
        let gemini = zero_config_model(&config, "gemini-2.5-flash").unwrap();
        assert!(gemini.targets[0].endpoint(false).as_str().starts_with(
            "https://aiplatform.googleapis.com/v1/projects/zero-project/locations/global/"
        ));
    }

    #[test]
    fn a_cloud_missing_a_setting_is_left_out_and_says_which() {
        let lookup = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDZEROCONFIG"),
            ("AWS_SECRET_ACCESS_KEY", "zero-config-secret-key"),
            ("GOOGLE_APPLICATION_CREDENTIALS", service_account_file()),
            ("ANTHROPIC_API_KEY", "sk-ant-zero"),
        ]);
        let (providers, skipped) = cloud_providers(&lookup);
        assert!(providers.is_empty());
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("AWS_DEFAULT_REGION"), "{skipped:?}");
        assert!(skipped[1].contains("project id"), "{skipped:?}");
        assert!(skipped[1].contains("GOOGLE_CLOUD_PROJECT"), "{skipped:?}");
        assert!(!skipped.concat().contains("zero-config-secret-key"));
        let config = zero_config(&lookup);
        assert_eq!(config.providers.keys().collect::<Vec<_>>(), ["anthropic"]);
        assert_eq!(
            crate::config::key_variables(),
            "OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AZURE_OPENAI_ENDPOINT or GOOGLE_APPLICATION_CREDENTIALS"
        );
    }
}
