//! Azure OpenAI: the OpenAI wire format at a deployment's URL, versioned by a query parameter.

use super::{
    openai, Auth, ErrorRules, Framing, ProviderKind, ProviderSpec, Terminator, VersionQuery,
};
use crate::error::quota_in_words;
use crate::Protocol;

/// Azure OpenAI. A target's model is the deployment name; the resource endpoint is the base
/// URL (there is no official default: each resource has its own host).
pub(super) const SPEC: ProviderSpec = ProviderSpec {
    kind: ProviderKind::Azure,
    name: "azure",
    protocol: Protocol::OpenAi,
    embeddings_path: None,
    max_embeddings_batch: 0,
    default_base_url: "https://{resource}.openai.azure.com",
    base_path: "",
    chat_path: "/openai/deployments/{model}/chat/completions",
    stream_path: "/openai/deployments/{model}/chat/completions",
    auth: Auth::Header("api-key"),
    version_header: None,
    body_version: None,
    version_query: Some(VersionQuery {
        name: "api-version",
        default: "2024-10-21",
    }),
    framing: Framing::Sse,
    forwarded_headers: &[],
    stream_terminator: Some(Terminator {
        event: None,
        data: "[DONE]",
    }),
    usage_after_finish: true,
    usage_needs_stream_options: true,
    continues_prefill: false,
    api_key_env: "AZURE_OPENAI_API_KEY",
    model_prefixes: &[],
    refusal_is_failure: true,
    errors: ErrorRules {
        refused: openai::refused,
        quota: quota_in_words,
    },
};
