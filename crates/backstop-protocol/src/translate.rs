//! Protocol-dispatching entry points over the per-provider codecs.
//!
//! The gateway knows the client's and the target's [`Protocol`] only at run time; these
//! functions pick the right module so it does not have to match on protocols itself.

use crate::canonical::{ChatRequest, ChatResponse, Encoded};
use crate::{anthropic, gemini, openai, responses, Protocol, ProtocolError};

/// Decodes a request body in protocol `p`.
pub fn decode_request(p: Protocol, body: &[u8]) -> Result<ChatRequest, ProtocolError> {
    match p {
        Protocol::OpenAi => openai::decode_request(body),
        Protocol::Anthropic => anthropic::decode_request(body),
        Protocol::Gemini => gemini::decode_request(body),
        Protocol::Responses => responses::decode_request(body),
    }
}

/// Encodes a request for an upstream of protocol `p` serving `upstream_model`.
pub fn encode_request(
    p: Protocol,
    req: &ChatRequest,
    upstream_model: &str,
) -> Result<Encoded, ProtocolError> {
    match p {
        Protocol::OpenAi => openai::encode_request(req, upstream_model),
        Protocol::Anthropic => anthropic::encode_request(req, upstream_model),
        Protocol::Gemini => gemini::encode_request(req, upstream_model),
        Protocol::Responses => Err(ProtocolError::Invalid(
            "requests are sent to Responses API upstreams as the client wrote them, never translated"
                .into(),
        )),
    }
}

/// Decodes a response body in protocol `p`.
pub fn decode_response(p: Protocol, body: &[u8]) -> Result<ChatResponse, ProtocolError> {
    match p {
        Protocol::OpenAi => openai::decode_response(body),
        Protocol::Anthropic => anthropic::decode_response(body),
        Protocol::Gemini => gemini::decode_response(body),
        Protocol::Responses => responses::decode_response(body),
    }
}

/// Encodes a response for a client of protocol `p`.
pub fn encode_response(p: Protocol, resp: &ChatResponse) -> Vec<u8> {
    match p {
        Protocol::OpenAi => openai::encode_response(resp),
        Protocol::Anthropic => anthropic::encode_response(resp),
        Protocol::Gemini => gemini::encode_response(resp),
        Protocol::Responses => responses::encode_response(resp),
    }
}
