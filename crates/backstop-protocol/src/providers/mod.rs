//! What the gateway must know about each kind of upstream provider, in one place.
//!
//! A [`ProviderKind`] names a provider API (`kind` in the configuration); its
//! [`ProviderSpec`] says which wire [`Protocol`] it speaks and everything else that differs
//! between providers: endpoint paths, the auth header, fixed headers, the official base URL,
//! how its streams end and carry usage, whether it continues an assistant prefill, and the
//! quirks of its error bodies. The gateway asks the spec and never matches on the kind itself,
//! so a new kind is one module here (plus its fake in the mock).

use serde_json::Value;
use std::fmt;

use crate::error::{classify_with, UpstreamError};
use crate::Protocol;

mod anthropic;
mod azure;
mod bedrock;
mod gemini;
mod openai;
mod vertex;

/// A kind of upstream provider API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// The OpenAI API, and every OpenAI-compatible server.
    OpenAi,
    /// The Anthropic API.
    Anthropic,
    /// The Google Gemini API (Generative Language).
    Gemini,
    /// Azure OpenAI: the OpenAI wire format at a deployment's URL.
    Azure,
    /// AWS Bedrock: Anthropic models through InvokeModel, signed with SigV4.
    Bedrock,
    /// Google Vertex AI: Anthropic models through `rawPredict`, Gemini models through
    /// `generateContent`, with an OAuth access token.
    Vertex,
}

impl ProviderKind {
    /// Every kind, in the order they are listed to users.
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Azure,
        ProviderKind::Bedrock,
        ProviderKind::Vertex,
    ];

    /// The kinds whose own API defines a protocol, reached with an API key alone (the ones
    /// zero-config mode builds from the environment).
    pub const NATIVE: [ProviderKind; 3] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];

    /// What there is to know about this kind. For Vertex, which speaks a protocol per
    /// publisher, this is its Anthropic side; [`ProviderKind::spec_for`] picks by model.
    pub fn spec(self) -> &'static ProviderSpec {
        match self {
            ProviderKind::OpenAi => &openai::SPEC,
            ProviderKind::Anthropic => &anthropic::SPEC,
            ProviderKind::Gemini => &gemini::SPEC,
            ProviderKind::Azure => &azure::SPEC,
            ProviderKind::Bedrock => &bedrock::SPEC,
            ProviderKind::Vertex => &vertex::CLAUDE,
        }
    }

    /// The spec of `model` on this kind: Vertex serves Claude models (`claude-*`) in the
    /// Anthropic format and every other publisher model in Gemini's.
    pub fn spec_for(self, model: &str) -> &'static ProviderSpec {
        match self {
            ProviderKind::Vertex if !model.starts_with("claude") => &vertex::GEMINI,
            other => other.spec(),
        }
    }

    /// The spec of this kind's own Responses API (`POST /responses`), for a provider that
    /// speaks it natively; `None` for a kind that has none.
    pub fn responses_spec(self) -> Option<&'static ProviderSpec> {
        match self {
            ProviderKind::OpenAi => Some(&openai::RESPONSES),
            _ => None,
        }
    }

    /// Whether this kind is a cloud channel (Azure, Bedrock, Vertex) rather than a model
    /// maker's own API.
    pub fn is_channel(self) -> bool {
        !Self::NATIVE.contains(&self)
    }

    /// The kind whose official API defines protocol `p`.
    pub fn native(p: Protocol) -> Self {
        match p {
            Protocol::OpenAi | Protocol::Responses => ProviderKind::OpenAi,
            Protocol::Anthropic => ProviderKind::Anthropic,
            Protocol::Gemini => ProviderKind::Gemini,
        }
    }

    /// The spec of the official API that defines protocol `p` (for Responses, OpenAI's
    /// `/responses`, not its Chat Completions).
    pub fn native_spec(p: Protocol) -> &'static ProviderSpec {
        match p {
            Protocol::Responses => &openai::RESPONSES,
            other => Self::native(other).spec(),
        }
    }

    /// The kind named `name` in the configuration (`openai`, `anthropic`, `gemini`, `azure`,
    /// `bedrock`, `vertex`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.spec().name == name)
    }

    /// The name used in the configuration and in logs.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a provider takes its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer KEY`.
    Bearer,
    /// The key alone as the value of this header (lower-case name).
    Header(&'static str),
    /// An AWS Signature Version 4 over the whole request, for this signing service name.
    SigV4 {
        /// The service name in the credential scope (`bedrock`).
        service: &'static str,
    },
    /// `Authorization: Bearer TOKEN` with a Google OAuth access token, given or obtained
    /// from a service-account key.
    GoogleOAuth,
}

/// A version the provider wants in the request body, with fields the body must not carry
/// (Anthropic on Bedrock and Vertex: `anthropic_version`, no `model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyVersion {
    /// The body field that carries the version.
    pub field: &'static str,
    /// The value sent when the configuration sets none.
    pub default: &'static str,
    /// Top-level fields removed from the body (the endpoint says them instead).
    pub remove: &'static [&'static str],
}

/// A version the provider wants as a query parameter on every request (Azure's
/// `api-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionQuery {
    /// The parameter's name.
    pub name: &'static str,
    /// The value sent when the configuration sets none.
    pub default: &'static str,
}

/// How a provider frames a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events.
    Sse,
    /// The AWS event-stream binary framing, each `chunk` event carrying one base64-encoded
    /// event of the provider's protocol (Bedrock's InvokeModelWithResponseStream).
    AwsEventStream,
}

/// A header a provider wants on every request, whose value the configuration may set
/// (a provider's `anthropic_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionHeader {
    /// The header's lower-case name.
    pub name: &'static str,
    /// The value sent when the configuration sets none.
    pub default: &'static str,
}

/// The server-sent event that ends a provider's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminator {
    /// The `event:` field, if the provider names its events.
    pub event: Option<&'static str>,
    /// The `data:` field.
    pub data: &'static str,
}

/// How a provider's error bodies differ from the common rules of [`crate::classify_error`].
#[derive(Clone, Copy)]
pub(crate) struct ErrorRules {
    /// Whether a (possibly successful) body is a policy refusal.
    pub refused: fn(&Value) -> bool,
    /// Whether an error is exhausted billing or quota rather than a rate limit, beyond the
    /// words every provider uses; `hay` is the lower-cased message and codes.
    pub quota: fn(hay: &str, root: &Value) -> bool,
}

/// Everything that differs between two kinds of upstream provider.
#[derive(Clone, Copy)]
pub struct ProviderSpec {
    /// The kind this spec describes.
    pub kind: ProviderKind,
    /// Its name in the configuration (`kind = "..."`) and in logs.
    pub name: &'static str,
    /// The wire protocol of its requests, answers and streams.
    pub protocol: Protocol,
    /// The official base URL, used when the configuration gives none; `{region}` and
    /// `{location}` stand for the provider's region or location.
    pub default_base_url: &'static str,
    /// A path between the base URL and the endpoint path, the same for every model of a
    /// provider (Vertex's `/v1/projects/{project}/locations/{location}`); empty for most.
    pub base_path: &'static str,
    /// The path of a chat request after the base URL; `{model}` stands for the upstream model.
    chat_path: &'static str,
    /// The same for a streaming chat request.
    stream_path: &'static str,
    /// The same for an embeddings request (OpenAI's shape, or Gemini's `batchEmbedContents`);
    /// `None` when the provider has no embeddings API.
    embeddings_path: Option<&'static str>,
    /// The most inputs one embeddings call may carry; larger requests are split.
    pub max_embeddings_batch: usize,
    /// How the API key is sent.
    pub auth: Auth,
    /// The API version header sent on every request, if the provider has one.
    pub version_header: Option<VersionHeader>,
    /// The API version carried in the body, if the provider wants one there.
    pub body_version: Option<BodyVersion>,
    /// The API version carried in the query string, if the provider wants one there.
    pub version_query: Option<VersionQuery>,
    /// How its streamed answers are framed.
    pub framing: Framing,
    /// The caller's headers (feature flags such as `anthropic-beta`) forwarded to this provider
    /// when the caller speaks its protocol.
    pub forwarded_headers: &'static [&'static str],
    /// The event that ends its streams; `None` when a stream just ends.
    pub stream_terminator: Option<Terminator>,
    /// Usage comes in a final event of its own after the finish reason (so a relay waits for
    /// it), rather than on or before the event with the finish reason.
    pub usage_after_finish: bool,
    /// A streaming request reports usage only when it asks with `stream_options.include_usage`.
    pub usage_needs_stream_options: bool,
    /// Whether it continues a trailing assistant message (a prefill) by default, rather than
    /// answering it as a new turn.
    pub continues_prefill: bool,
    /// The environment variable holding a key for it in zero-config mode.
    pub api_key_env: &'static str,
    /// The prefixes of its model names, by which zero-config mode routes a bare model name.
    pub model_prefixes: &'static [&'static str],
    /// A successful answer its content filter stopped (Azure's 200 with `finish_reason:
    /// "content_filter"`) counts as a content-filter failure while nothing has reached the
    /// client, rather than as an answer.
    pub refusal_is_failure: bool,
    /// The quirks of its error bodies.
    pub(crate) errors: ErrorRules,
}

impl fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ProviderSpec {
    /// The URL of a chat request for `model` at `base_url` (with or without a trailing slash).
    pub fn endpoint(&self, base_url: &str, model: &str, stream: bool) -> String {
        let path = if stream {
            self.stream_path
        } else {
            self.chat_path
        };
        let base = base_url.trim_end_matches('/');
        format!("{base}{}", path.replace("{model}", &path_segment(model)))
    }

    /// The URL of an embeddings request for `model` at `base_url`, if the provider has an
    /// embeddings API.
    pub fn embeddings_endpoint(&self, base_url: &str, model: &str) -> Option<String> {
        let path = self.embeddings_path?;
        let base = base_url.trim_end_matches('/');
        Some(format!(
            "{base}{}",
            path.replace("{model}", &path_segment(model))
        ))
    }

    /// The header that carries `key`: its lower-case name and its value (for a signed
    /// provider, the bearer form; signing needs the whole request).
    pub fn auth_header(&self, key: &str) -> (&'static str, String) {
        match self.auth {
            Auth::Header(name) => (name, key.to_string()),
            Auth::Bearer | Auth::GoogleOAuth | Auth::SigV4 { .. } => {
                ("authorization", format!("Bearer {key}"))
            }
        }
    }

    /// The base URL of a provider of this kind: `configured` if given, else the official
    /// one; then the kind's base path. `{name}` placeholders are filled from `vars`
    /// (`region`, `location`, `project`), each value as one path or host segment.
    pub fn base_url(&self, configured: Option<&str>, vars: &[(&str, &str)]) -> String {
        let mut base = configured
            .unwrap_or(self.default_base_url)
            .trim_end_matches('/')
            .to_string();
        base.push_str(self.base_path);
        for (name, value) in vars {
            base = base.replace(&format!("{{{name}}}"), &path_segment(value));
        }
        if configured.is_none() {
            // Vertex's `global` location is served by the host without a region prefix.
            base = base.replacen("https://global-", "https://", 1);
        }
        base
    }

    /// `body` as this provider wants it: the body version set (to `configured` or the
    /// default) and the fields the endpoint says removed. Unchanged for a provider without a
    /// body version; an error when `body` is not a JSON object.
    pub fn adapt_body(
        &self,
        body: &[u8],
        configured: Option<&str>,
    ) -> Result<bytes::Bytes, crate::ProtocolError> {
        let Some(version) = self.body_version else {
            return Ok(bytes::Bytes::copy_from_slice(body));
        };
        let mut object: serde_json::Map<String, Value> = serde_json::from_slice(body)
            .map_err(|error| crate::ProtocolError::Invalid(format!("request body: {error}")))?;
        for field in version.remove {
            object.remove(*field);
        }
        let value = configured.unwrap_or(version.default);
        object.insert(version.field.to_string(), Value::from(value));
        serde_json::to_vec(&object)
            .map(bytes::Bytes::from)
            .map_err(|error| crate::ProtocolError::Invalid(format!("request body: {error}")))
    }

    /// The version header to send, with `configured` as its value when given, else the
    /// provider's default; `None` when the provider has no such header.
    pub fn version_header(&self, configured: Option<String>) -> Option<(&'static str, String)> {
        self.version_header.map(|header| {
            let value = configured.unwrap_or_else(|| header.default.to_string());
            (header.name, value)
        })
    }

    /// Whether `model` is one of its model names, by prefix (zero-config routing).
    pub fn owns_model(&self, model: &str) -> bool {
        self.model_prefixes
            .iter()
            .any(|prefix| model.starts_with(prefix))
    }

    /// Whether `body`, a successful answer, is one this provider's content filter stopped and
    /// that counts as a failure ([`ProviderSpec::refusal_is_failure`]).
    pub fn refused_answer(&self, body: &[u8]) -> bool {
        self.refusal_is_failure
            && self.classify_error(200, body).kind == crate::UpstreamErrorKind::ContentFilter
    }

    /// Classifies an error this provider answered with `status` and `body` (also a
    /// successful body that may be a refusal, or an error event inside a stream).
    pub fn classify_error(&self, status: u16, body: &[u8]) -> UpstreamError {
        classify_with(&self.errors, status, body)
    }
}

#[cfg(test)]
mod tests;

/// `text` as one URL path segment: every byte but the unreserved ones and `@` percent-encoded, so
/// that a model name cannot add a path segment, a query or a `:method` of its own.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
