//! The demo's built-in configuration: the public model `smart`, served by two channels of
//! the same model (`openai` and `azure`, the Azure OpenAI kind, each a mock), falling back
//! to `backup` on an Anthropic-protocol mock, so the fallback also shows translation; and
//! the public model `claude`, the same Claude model on the Anthropic API (that mock) and
//! on AWS Bedrock (a mock that checks the SigV4 signature).
//! Retries and breakers are short so that a whole story fits in well under a minute.

use crate::config::{self, Config, ConfigError};
use std::time::Duration;

/// The public model the demo's clients ask for.
pub const MODEL: &str = "smart";
/// The primary model's two channels.
pub const PRIMARY: [&str; 2] = ["openai/gpt-4o", "azure/gpt-4o"];
/// The fallback model of `smart`.
pub const BACKUP: &str = "backup";
/// The fallback target.
pub const FALLBACK: &str = "anthropic/claude-sonnet-4-5";
/// The public model of the same-model story.
pub const SAME_MODEL: &str = "claude";
/// Its two channels: the Anthropic API (the fallback's target too) and Bedrock.
pub const CHANNELS: [&str; 2] = [
    FALLBACK,
    "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
];

/// The base URLs of the three mock providers.
#[derive(Debug, Clone)]
pub struct MockUrls {
    /// The `openai` channel.
    pub openai: String,
    /// The `azure` channel.
    pub azure: String,
    /// The `anthropic` fallback and Anthropic API.
    pub anthropic: String,
    /// The `bedrock` channel.
    pub bedrock: String,
}

/// The demo gateway's config for these mocks, with breakers open for `open_for`.
pub fn demo_config(urls: &MockUrls, open_for: Duration) -> Result<Config, ConfigError> {
    let text = format!(
        r#"
state = "memory"

[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
api_key = "demo-not-a-secret"

[providers.azure]
kind = "azure"
base_url = "{azure}"
api_key = "demo-not-a-secret"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}"
api_key = "demo-not-a-secret"

[providers.bedrock]
kind = "bedrock"
base_url = "{bedrock}"
region = "us-east-1"
access_key_id = "AKIDBACKSTOPDEMO"
secret_access_key = "{bedrock_secret}"

[models.smart]
targets = [
  {{ provider = "openai", model = "gpt-4o" }},
  {{ provider = "azure", model = "gpt-4o" }},
]
fallbacks = ["backup"]

[models.backup]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]

[models.claude]
targets = [
  {{ provider = "anthropic", model = "claude-sonnet-4-5" }},
  {{ provider = "bedrock", model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }},
]

[retry]
max_attempts = 2
base_delay = "20ms"
max_delay = "300ms"

[timeouts]
first_byte = "2s"
idle = "2s"
total = "10s"

[circuit_breaker]
failure_threshold = 3
open_for = "{open_for}ms"
success_threshold = 1
"#,
        openai = urls.openai,
        azure = urls.azure,
        anthropic = urls.anthropic,
        bedrock = urls.bedrock,
        bedrock_secret = backstop_mock::BEDROCK_SECRET_ACCESS_KEY,
        open_for = open_for.as_millis(),
    );
    config::parse(&text, &|_| None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_built_in_config_is_valid_and_routes_as_the_story_says() {
        let urls = MockUrls {
            openai: "http://127.0.0.1:1".into(),
            azure: "http://127.0.0.1:2".into(),
            anthropic: "http://127.0.0.1:3".into(),
            bedrock: "http://127.0.0.1:4".into(),
        };
        let config = demo_config(&urls, Duration::from_secs(3)).unwrap();
        let smart = &config.models[MODEL];
        let labels: Vec<&str> = smart.targets.iter().map(|t| &*t.label).collect();
        assert_eq!(labels, PRIMARY);
        assert_eq!(smart.fallbacks, vec!["backup".to_string()]);
        assert_eq!(config.models["backup"].targets[0].label.as_ref(), FALLBACK);
        assert_eq!(config.breaker.open_for, Duration::from_secs(3));
        let claude = &config.models[SAME_MODEL];
        let labels: Vec<&str> = claude.targets.iter().map(|t| &*t.label).collect();
        assert_eq!(labels, CHANNELS);
        assert!(claude.fallbacks.is_empty());
    }
}
