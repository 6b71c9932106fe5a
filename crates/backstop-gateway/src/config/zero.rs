//! Zero-config mode: `backstop serve` with no file builds providers from
//! `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and `GEMINI_API_KEY`, and serves any model
//! name of those providers directly.

use super::types::*;
use super::validate::{default_base_url, DEFAULT_ANTHROPIC_VERSION};
use backstop_protocol::Protocol;
use std::collections::BTreeMap;
use std::sync::Arc;

const PROVIDERS: [(&str, &str, Protocol); 3] = [
    ("openai", "OPENAI_API_KEY", Protocol::OpenAi),
    ("anthropic", "ANTHROPIC_API_KEY", Protocol::Anthropic),
    ("gemini", "GEMINI_API_KEY", Protocol::Gemini),
];

/// Builds the zero-config gateway from `lookup` (the environment).
pub fn zero_config(lookup: &dyn Fn(&str) -> Option<String>) -> Config {
    let mut providers = BTreeMap::new();
    for (name, variable, kind) in PROVIDERS {
        if let Some(key) = lookup(variable).filter(|key| !key.is_empty()) {
            providers.insert(
                name.to_string(),
                Arc::new(Provider {
                    name: name.to_string(),
                    kind,
                    base_url: default_base_url(kind).to_string(),
                    api_key: Some(Secret::new(key)),
                    region: None,
                    headers: Vec::new(),
                    anthropic_version: DEFAULT_ANTHROPIC_VERSION.to_string(),
                }),
            );
        }
    }
    Config {
        listen: default_listen(),
        state: StateSpec::Sqlite(".backstop/state.db".into()),
        auth: None,
        providers,
        models: BTreeMap::new(),
        timeouts: Timeouts::default(),
        breaker: BreakerSettings::default(),
        retry: RetrySettings::default(),
        server: ServerSettings::default(),
        zero_config: true,
    }
}

/// The provider kind a bare model name belongs to, by its well-known prefix.
fn kind_of(model: &str) -> Option<Protocol> {
    const OPENAI: [&str; 6] = ["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"];
    if OPENAI.iter().any(|prefix| model.starts_with(prefix)) {
        Some(Protocol::OpenAi)
    } else if model.starts_with("claude-") {
        Some(Protocol::Anthropic)
    } else if model.starts_with("gemini-") || model.starts_with("gemma-") {
        Some(Protocol::Gemini)
    } else {
        None
    }
}

/// In zero-config mode, a public model made on the fly for a provider's model name.
pub fn zero_config_model(config: &Config, name: &str) -> Option<Model> {
    if !config.zero_config {
        return None;
    }
    let kind = kind_of(name)?;
    let provider = config.providers.values().find(|p| p.kind == kind)?;
    Some(Model {
        name: name.to_string(),
        targets: vec![Target::new(provider.clone(), name.to_string(), 1).ok()?],
        fallbacks: Vec::new(),
        context_window: None,
        price: None,
        retry: config.retry.clone(),
        balance: Balance::Weighted,
        on_content_filter: ContentFilterPolicy::Fallback,
        prefill: None,
        stream_buffer: StreamBuffer::Off,
        max_rescues: DEFAULT_MAX_RESCUES,
        hedge: None,
        max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
        max_rescue_text: DEFAULT_MAX_RESCUE_TEXT,
    })
}
