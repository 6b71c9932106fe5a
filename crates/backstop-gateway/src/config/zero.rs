//! Zero-config mode: `backstop serve` with no file builds providers from
//! `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and `GEMINI_API_KEY`, and from the clouds' standard
//! variables (see [`super::zero_clouds`]), and serves any model name of those providers
//! directly.

use super::types::*;
use super::{GuardSettings, IdempotencySettings, DEFAULT_GUARD_TIERS};
use backstop_protocol::ProviderKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds the zero-config gateway from `lookup` (the environment): a provider, named after
/// its kind, for every kind whose key variable is set, and one for every cloud whose
/// credentials are (a cloud that cannot be used is logged and left out).
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
                    responses: kind.responses_spec().is_some(),
                    status_page: super::validate_tools::default_status_page(spec.default_base_url),
                }),
            );
        }
    }
    let (clouds, skipped) = super::zero_clouds::cloud_providers(lookup);
    for provider in clouds {
        providers.insert(provider.name.clone(), Arc::new(provider));
    }
    for why in skipped {
        tracing::warn!("{why}");
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
        queue: super::QueueSettings::default(),
        telemetry: None,
        zero_config: true,
        tools: BTreeMap::new(),
        mcp: BTreeMap::new(),
        guard: GuardSettings::default(),
        idempotency: IdempotencySettings::default(),
        rate_limit: Default::default(),
    }
}

/// The environment variables zero-config mode reads keys from, as a user reads them:
/// `OPENAI_API_KEY, ..., AZURE_OPENAI_ENDPOINT or GOOGLE_APPLICATION_CREDENTIALS`.
pub fn key_variables() -> String {
    super::or_list(
        ProviderKind::NATIVE
            .iter()
            .map(|kind| kind.spec().api_key_env.to_string())
            .chain(super::zero_clouds::cloud_variables()),
    )
}

/// The provider kind a bare model name belongs to, by its well-known prefix (Bedrock's model
/// ids are its own).
fn kind_of(model: &str) -> Option<ProviderKind> {
    ProviderKind::ALL
        .into_iter()
        .find(|kind| kind.spec().owns_model(model))
}

/// The provider that serves a model name of `kind`: the provider of that kind, else a cloud
/// channel that takes the same names for the same protocol (Azure's deployments named after
/// their model, Vertex's publisher model ids), so that a machine with only a cloud's
/// credentials serves that family's models.
fn provider_for(config: &Config, kind: ProviderKind, name: &str) -> Option<Arc<Provider>> {
    let own = config.providers.values().find(|p| p.kind == kind);
    let stand_in = || {
        config.providers.values().find(|p| {
            p.kind.is_channel()
                && p.spec().model_prefixes.is_empty()
                && Target::new((*p).clone(), name.to_string(), 1)
                    .is_ok_and(|t| ProviderKind::native(t.spec().protocol) == kind)
        })
    };
    own.or_else(stand_in).cloned()
}

/// In zero-config mode, a public model made on the fly for a provider's model name.
pub fn zero_config_model(config: &Config, name: &str) -> Option<Model> {
    if !config.zero_config {
        return None;
    }
    let kind = kind_of(name)?;
    let provider = provider_for(config, kind, name)?;
    Some(Model {
        name: name.to_string(),
        trace_name: crate::telemetry::shared(name),
        targets: vec![Target::new(provider, name.to_string(), 1).ok()?],
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
        queue_on_failure: false,
        max_corrections: Some(DEFAULT_MAX_CORRECTIONS),
        max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
        max_rescue_text: DEFAULT_MAX_RESCUE_TEXT,
        cache: None,
        guard_tiers: DEFAULT_GUARD_TIERS.to_vec(),
        policy: Default::default(),
    })
}
