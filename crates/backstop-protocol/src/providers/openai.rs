//! The OpenAI API, and every OpenAI-compatible server.

use serde_json::Value;

use super::{Auth, ErrorRules, Framing, ProviderKind, ProviderSpec, Terminator};
use crate::error::quota_in_words;
use crate::Protocol;

/// The OpenAI API.
pub(super) const SPEC: ProviderSpec = ProviderSpec {
    kind: ProviderKind::OpenAi,
    name: "openai",
    protocol: Protocol::OpenAi,
    default_base_url: "https://api.openai.com/v1",
    base_path: "",
    chat_path: "/chat/completions",
    stream_path: "/chat/completions",
    embeddings_path: Some("/embeddings"),
    max_embeddings_batch: 2048,
    auth: Auth::Bearer,
    version_header: None,
    body_version: None,
    version_query: None,
    framing: Framing::Sse,
    forwarded_headers: &["openai-beta"],
    stream_terminator: Some(Terminator {
        event: None,
        data: "[DONE]",
    }),
    usage_after_finish: true,
    usage_needs_stream_options: true,
    continues_prefill: false,
    api_key_env: "OPENAI_API_KEY",
    model_prefixes: &["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"],
    refusal_is_failure: false,
    errors: ErrorRules {
        refused,
        quota: quota_in_words,
    },
};

/// The OpenAI Responses API (`POST /responses`) of the same servers: an OpenAI target that
/// speaks it natively serves a Responses client's request as it was written. Its streams end
/// with `response.completed` (no terminator of their own) and carry usage in it.
pub(super) const RESPONSES: ProviderSpec = ProviderSpec {
    protocol: Protocol::Responses,
    chat_path: "/responses",
    stream_path: "/responses",
    stream_terminator: None,
    usage_after_finish: false,
    usage_needs_stream_options: false,
    errors: ErrorRules {
        refused: response_refused,
        quota: quota_in_words,
    },
    ..SPEC
};

/// A response the content filter cut short.
fn response_refused(root: &Value) -> bool {
    root.pointer("/incomplete_details/reason")
        .and_then(Value::as_str)
        == Some("content_filter")
}

/// A choice that finished on the content filter.
pub(super) fn refused(root: &Value) -> bool {
    root.pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        == Some("content_filter")
}
