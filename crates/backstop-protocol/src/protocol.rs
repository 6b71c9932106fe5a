//! The protocol identifier and the crate's error type.
//!
//! One small error enum covers every codec: callers (the gateway) only need to tell "the client sent
//! something wrong" ([`ProtocolError::Json`], [`ProtocolError::MissingField`],
//! [`ProtocolError::Invalid`]) from "this cannot be expressed in the target protocol"
//! ([`ProtocolError::Unsupported`]); all of them become a 400 at the edge.

use std::fmt;
use std::str::FromStr;

/// A wire protocol spoken by a client or an upstream provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions (and every OpenAI-compatible server).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent` / `streamGenerateContent`.
    Gemini,
    /// The OpenAI Responses API (`POST /v1/responses`), spoken by clients and by
    /// OpenAI-compatible upstreams declared with `responses = true`.
    Responses,
}

impl Protocol {
    /// The lower-case name used in configuration and logs: `openai`, `anthropic`, `gemini`,
    /// `responses`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
            Protocol::Responses => "responses",
        }
    }
}

impl FromStr for Protocol {
    type Err = ProtocolError;

    /// Parses `openai`, `anthropic` or `gemini` (the configuration's provider `kind`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Protocol::OpenAi),
            "anthropic" => Ok(Protocol::Anthropic),
            "gemini" => Ok(Protocol::Gemini),
            other => Err(ProtocolError::Invalid(format!(
                "unknown protocol `{other}` (expected openai, anthropic or gemini)"
            ))),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body could not be read, written or translated.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The body is not valid JSON, or a field has the wrong JSON type. The message carries
    /// serde's line and column.
    #[error("malformed JSON: {source}")]
    Json {
        /// The underlying parse error.
        #[from]
        source: serde_json::Error,
    },
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A parameter has no equivalent in the target protocol and dropping it would change the
    /// meaning of the request.
    #[error("parameter `{param}` cannot be translated to the {target} protocol")]
    Unsupported {
        /// The offending parameter, as the client named it.
        param: String,
        /// The protocol that cannot express it.
        target: Protocol,
    },
    /// The body is well-formed JSON but not a valid request, response or event.
    #[error("invalid body: {0}")]
    Invalid(String),
    /// A Responses API request asks for something only OpenAI's own servers provide (a hosted
    /// tool, a background run, ...): it can be forwarded, unchanged, to an upstream that speaks
    /// the Responses API natively, and translated for no other.
    #[error("invalid body: {0}")]
    ServerSide(String),
    /// The upstream reported an error inside an otherwise successful stream.
    #[error("upstream error in stream ({}): {message}", kind.as_str())]
    Upstream {
        /// The classified kind.
        kind: crate::UpstreamErrorKind,
        /// The provider's message.
        message: String,
    },
    /// A server-sent event grew beyond [`crate::MAX_EVENT_SIZE`].
    #[error(
        "server-sent event exceeds the maximum size of {} bytes",
        crate::MAX_EVENT_SIZE
    )]
    EventTooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Gemini] {
            assert_eq!(p.to_string().parse::<Protocol>().unwrap(), p);
        }
        assert!("azure".parse::<Protocol>().is_err());
    }
}
