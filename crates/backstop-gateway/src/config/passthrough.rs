//! A provider's `responses` key: whether it speaks the OpenAI Responses API natively, so that a
//! Responses client's request is forwarded to its `/responses` instead of being translated to
//! Chat Completions.

use super::error::ConfigError;
use backstop_protocol::ProviderKind;

/// The host of the official OpenAI API, which speaks the Responses API.
const OPENAI_HOST: &str = "api.openai.com";

/// Whether the provider at `path`, of `kind` at `base_url`, speaks the Responses API natively:
/// as `configured`, else only the official OpenAI API does (an OpenAI-compatible server at
/// another URL may not have `/responses`, so it is asked for Chat Completions unless it says
/// `responses = true`). Only an OpenAI-compatible kind can say so.
pub fn speaks_responses(
    path: &str,
    kind: ProviderKind,
    base_url: &str,
    configured: Option<bool>,
) -> Result<bool, ConfigError> {
    let capable = kind.responses_spec().is_some();
    match configured {
        Some(true) if !capable => Err(ConfigError::at(
            format!("{path}.responses"),
            format!(
                "a `{kind}` provider does not speak the OpenAI Responses API; `responses = true` is for kind = \"openai\""
            ),
        )),
        Some(value) => Ok(value),
        None => Ok(capable && is_official_openai(base_url)),
    }
}

fn is_official_openai(base_url: &str) -> bool {
    url::Url::parse(base_url)
        .ok()
        .is_some_and(|url| url.host_str() == Some(OPENAI_HOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_official_api_speaks_it_unless_told() {
        let openai = ProviderKind::OpenAi;
        let at = |base, configured| speaks_responses("providers.p", openai, base, configured);
        assert!(at("https://api.openai.com/v1", None).unwrap());
        assert!(!at("http://127.0.0.1:8000/v1", None).unwrap());
        assert!(at("http://127.0.0.1:8000/v1", Some(true)).unwrap());
        assert!(!at("https://api.openai.com/v1", Some(false)).unwrap());
        let error = speaks_responses(
            "providers.claude",
            ProviderKind::Anthropic,
            "https://api.anthropic.com",
            Some(true),
        )
        .unwrap_err();
        assert!(error.to_string().contains("providers.claude.responses"));
        assert!(!speaks_responses(
            "providers.claude",
            ProviderKind::Anthropic,
            "https://api.anthropic.com",
            None
        )
        .unwrap());
    }
}
