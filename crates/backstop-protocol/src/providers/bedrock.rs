//! AWS Bedrock: Anthropic models through InvokeModel and InvokeModelWithResponseStream.
//!
//! InvokeModel takes the Anthropic Messages body itself (with `anthropic_version` in the body
//! and neither `model` nor `stream`: the URL says both), so tools, images, prefill, stop
//! sequences and the stream's events keep their Anthropic meaning exactly; Converse would
//! translate every request into a third format and lose some of that.

use super::Terminator;
use super::{anthropic, Auth, BodyVersion, ErrorRules, Framing, ProviderKind, ProviderSpec};
use crate::error::quota_in_words;
use crate::Protocol;

/// AWS Bedrock (Bedrock Runtime).
pub(super) const SPEC: ProviderSpec = ProviderSpec {
    kind: ProviderKind::Bedrock,
    name: "bedrock",
    protocol: Protocol::Anthropic,
    embeddings_path: None,
    max_embeddings_batch: 0,
    default_base_url: "https://bedrock-runtime.{region}.amazonaws.com",
    base_path: "",
    chat_path: "/model/{model}/invoke",
    stream_path: "/model/{model}/invoke-with-response-stream",
    auth: Auth::SigV4 { service: "bedrock" },
    version_header: None,
    body_version: Some(BodyVersion {
        field: "anthropic_version",
        default: "bedrock-2023-05-31",
        remove: &["model", "stream"],
    }),
    version_query: None,
    framing: Framing::AwsEventStream,
    forwarded_headers: &[],
    stream_terminator: Some(Terminator {
        event: Some("message_stop"),
        data: r#"{"type":"message_stop"}"#,
    }),
    usage_after_finish: false,
    usage_needs_stream_options: false,
    continues_prefill: true,
    api_key_env: "AWS_ACCESS_KEY_ID",
    model_prefixes: &[
        "anthropic.",
        "us.anthropic.",
        "eu.anthropic.",
        "apac.anthropic.",
        "jp.anthropic.",
        "au.anthropic.",
        "global.anthropic.",
        "arn:aws:bedrock:",
    ],
    refusal_is_failure: false,
    errors: ErrorRules {
        refused: anthropic::refused,
        quota,
    },
};

/// Exhausted billing in the common words, or Bedrock's `ServiceQuotaExceededException`.
fn quota(hay: &str, root: &serde_json::Value) -> bool {
    quota_in_words(hay, root) || hay.contains("exceeded the service quota")
}
