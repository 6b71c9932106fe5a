//! Zero-config mode: `backstop serve` with no file builds providers from
//! `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and `GEMINI_API_KEY`, and serves any model
//! name of those providers directly.

use super::types::*;
use backstop_protocol::ProviderKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds the zero-config gateway from `lookup` (the environment): a provider, named after
/// its kind, for every kind whose key variable is set.
pub fn zero_config(lookup: &dyn Fn(&str) -> Option<String>) -> Config {
    let mut providers = BTreeMap::new();
    for kind in ProviderKind::NATIVE {
        let spec = kind.spec();
        if let Some(key) = lookup(spec.api_key_env).filter(|key| !key.is_empty()) {
            providers.insert(
                spec.name.to_string(),
                Arc::new(Provider {
                    name: spec.name.to_string(),
                    kind,
                    base_url: spec.default_base_url.to_string(),
                    api_key: Some(Secret::new(key)),
                    region: None,
                    headers: Vec::new(),
                    version_header: spec.version_header(None),
                    body_version: None,
                    query: Vec::new(),
                    channel_auth: None,
                    status_page: super::validate_tools::default_status_page(spec.default_base_url),
                }),
            );
        }
    }
    Config {
        listen: default_listen(),
        state: StateSpec::default(),
        state_prefix: backstop_state::DEFAULT_PREFIX.to_string(),
        auth: None,
        providers,
        models: BTreeMap::new(),
        timeouts: Timeouts::default(),
        breaker: BreakerSettings::default(),
        retry: RetrySettings::default(),
        server: ServerSettings::default(),
        responses: ResponsesSettings::default(),
        telemetry: None,
        zero_config: true,
        tools: BTreeMap::new(),
        mcp: BTreeMap::new(),
        rate_limit: Default::default(),
    }
}

/// The environment variables zero-config mode reads keys from, as a user reads them:
/// `OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY`.
pub fn key_variables() -> String {
    super::or_list(
        ProviderKind::NATIVE
            .iter()
            .map(|kind| kind.spec().api_key_env.to_string()),
    )
}

/// The provider kind a bare model name belongs to, by its well-known prefix.
fn kind_of(model: &str) -> Option<ProviderKind> {
    ProviderKind::NATIVE
        .into_iter()
        .find(|kind| kind.spec().owns_model(model))
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
        embedding_space: None,
        context_window: None,
        price: None,
        retry: config.retry.clone(),
        balance: Balance::Weighted,
        on_content_filter: ContentFilterPolicy::Fallback,
        prefill: None,
        stream_buffer: StreamBuffer::Off,
        max_rescues: DEFAULT_MAX_RESCUES,
        idle: None,
        rescue_restart: true,
        hedge: None,
        static_response: None,
        max_corrections: None,
        max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
        max_rescue_text: DEFAULT_MAX_RESCUE_TEXT,
        policy: Default::default(),
    })
}
