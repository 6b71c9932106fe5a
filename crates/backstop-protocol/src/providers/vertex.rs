//! Google Vertex AI: Claude through `rawPredict` / `streamRawPredict` in the Anthropic format,
//! Gemini through `generateContent` / `streamGenerateContent` in Gemini's, both under a
//! project and location and with an OAuth access token.

use super::{
    anthropic, gemini, Auth, BodyVersion, ErrorRules, Framing, ProviderKind, ProviderSpec,
    Terminator,
};
use crate::Protocol;

/// The official host for a regional location; the `global` location has no region prefix.
const HOST: &str = "https://{location}-aiplatform.googleapis.com";

/// The path of every model of one project and location.
const PROJECT_PATH: &str = "/v1/projects/{project}/locations/{location}";

/// Claude models on Vertex (publisher `anthropic`).
pub(super) const CLAUDE: ProviderSpec = ProviderSpec {
    kind: ProviderKind::Vertex,
    name: "vertex",
    protocol: Protocol::Anthropic,
    embeddings_path: None,
    max_embeddings_batch: 0,
    default_base_url: HOST,
    base_path: PROJECT_PATH,
    chat_path: "/publishers/anthropic/models/{model}:rawPredict",
    stream_path: "/publishers/anthropic/models/{model}:streamRawPredict",
    auth: Auth::GoogleOAuth,
    version_header: None,
    body_version: Some(BodyVersion {
        field: "anthropic_version",
        default: "vertex-2023-10-16",
        remove: &["model"],
    }),
    version_query: None,
    framing: Framing::Sse,
    forwarded_headers: &[],
    stream_terminator: Some(Terminator {
        event: Some("message_stop"),
        data: r#"{"type":"message_stop"}"#,
    }),
    usage_after_finish: false,
    usage_needs_stream_options: false,
    continues_prefill: true,
    api_key_env: "GOOGLE_APPLICATION_CREDENTIALS",
    model_prefixes: &[],
    refusal_is_failure: false,
    errors: ErrorRules {
        refused: anthropic::refused,
        quota: gemini::quota,
    },
};

/// Gemini (and every other Google publisher model) on Vertex.
pub(super) const GEMINI: ProviderSpec = ProviderSpec {
    protocol: Protocol::Gemini,
    chat_path: "/publishers/google/models/{model}:generateContent",
    stream_path: "/publishers/google/models/{model}:streamGenerateContent?alt=sse",
    body_version: None,
    stream_terminator: None,
    continues_prefill: false,
    errors: ErrorRules {
        refused: gemini::refused,
        quota: gemini::quota,
    },
    ..CLAUDE
};
