//! The Anthropic API.

use serde_json::Value;

use super::{Auth, ErrorRules, Framing, ProviderKind, ProviderSpec, Terminator, VersionHeader};
use crate::error::quota_in_words;
use crate::Protocol;

/// The Anthropic API.
pub(super) const SPEC: ProviderSpec = ProviderSpec {
    kind: ProviderKind::Anthropic,
    name: "anthropic",
    protocol: Protocol::Anthropic,
    default_base_url: "https://api.anthropic.com",
    base_path: "",
    chat_path: "/v1/messages",
    stream_path: "/v1/messages",
    embeddings_path: None,
    max_embeddings_batch: 0,
    auth: Auth::Header("x-api-key"),
    version_header: Some(VersionHeader {
        name: "anthropic-version",
        default: "2023-06-01",
    }),
    body_version: None,
    version_query: None,
    framing: Framing::Sse,
    forwarded_headers: &["anthropic-beta"],
    stream_terminator: Some(Terminator {
        event: Some("message_stop"),
        data: r#"{"type":"message_stop"}"#,
    }),
    usage_after_finish: false,
    usage_needs_stream_options: false,
    continues_prefill: true,
    api_key_env: "ANTHROPIC_API_KEY",
    model_prefixes: &["claude-"],
    refusal_is_failure: false,
    errors: ErrorRules {
        refused,
        quota: quota_in_words,
    },
};

/// A message that stopped with `stop_reason: "refusal"`.
pub(super) fn refused(root: &Value) -> bool {
    root.get("stop_reason").and_then(Value::as_str) == Some("refusal")
}
