//! The Google Gemini API (Generative Language).

use serde_json::Value;

use super::{Auth, ErrorRules, Framing, ProviderKind, ProviderSpec};
use crate::Protocol;

/// The Gemini API.
pub(super) const SPEC: ProviderSpec = ProviderSpec {
    kind: ProviderKind::Gemini,
    name: "gemini",
    protocol: Protocol::Gemini,
    default_base_url: "https://generativelanguage.googleapis.com",
    base_path: "",
    chat_path: "/v1beta/models/{model}:generateContent",
    stream_path: "/v1beta/models/{model}:streamGenerateContent?alt=sse",
    embeddings_path: Some("/v1beta/models/{model}:batchEmbedContents"),
    max_embeddings_batch: 100,
    auth: Auth::Header("x-goog-api-key"),
    version_header: None,
    body_version: None,
    version_query: None,
    framing: Framing::Sse,
    forwarded_headers: &[],
    stream_terminator: None,
    usage_after_finish: false,
    usage_needs_stream_options: false,
    continues_prefill: false,
    api_key_env: "GEMINI_API_KEY",
    model_prefixes: &["gemini-", "gemma-"],
    refusal_is_failure: false,
    errors: ErrorRules { refused, quota },
};

/// The finish reasons of a candidate stopped by a safety or policy filter (`OTHER` only
/// counts in `promptFeedback.blockReason`).
const BLOCK_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "IMAGE_SAFETY",
];

/// Streaming endpoints wrap a body in a one-element array.
fn unwrap(root: &Value) -> &Value {
    match root {
        Value::Array(items) => items.first().unwrap_or(root),
        other => other,
    }
}

/// A prompt blocked (`promptFeedback.blockReason`) or a candidate stopped by a filter.
pub(super) fn refused(root: &Value) -> bool {
    let root = unwrap(root);
    root.pointer("/promptFeedback/blockReason").is_some()
        || root
            .get("candidates")
            .and_then(Value::as_array)
            .is_some_and(|candidates| {
                candidates.iter().any(|c| {
                    c.get("finishReason")
                        .and_then(Value::as_str)
                        .is_some_and(|reason| BLOCK_REASONS.contains(&reason))
                })
            })
}

/// Gemini words every 429 as "exceeded your current quota ... billing", so only daily or
/// zero quotas count as exhausted.
pub(super) fn quota(_hay: &str, root: &Value) -> bool {
    let raw = root.to_string().to_lowercase();
    raw.contains("perday") || raw.contains("limit: 0")
}
