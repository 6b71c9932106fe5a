//! Wire types, codecs and translation for the LLM APIs Backstop speaks: OpenAI Chat Completions,
//! the OpenAI Responses API, Anthropic Messages and Gemini `generateContent`.
//!
//! This crate does no I/O. It gives the gateway five things:
//!
//! * strict validation of a client's request ([`validate_request`]) before it goes anywhere, with
//!   an error naming the offending field;
//! * a fast passthrough path ([`read_envelope`], [`rewrite_model`]) that looks at only the few
//!   fields routing needs and forwards every other byte untouched, so same-protocol traffic pays
//!   no re-serialisation cost;
//! * a protocol-neutral model ([`ChatRequest`], [`ChatResponse`], [`StreamEvent`]) with decoders and
//!   encoders per provider, used when the caller and the upstream speak different protocols;
//! * SSE framing ([`SseDecoder`], [`write_sse`]) and error handling ([`classify_error`],
//!   [`error_body`]) that map each provider's real error wording onto one set of failure kinds;
//! * a [`ProviderSpec`] for each [`ProviderKind`] of upstream: its endpoints, auth header,
//!   defaults and stream quirks, so the gateway never matches on the provider itself.
//!
//! ```
//! use backstop_protocol::{read_envelope, rewrite_model};
//! let body = br#"{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
//! let env = read_envelope(body).unwrap();
//! assert_eq!(env.model, "smart");
//! assert!(env.stream);
//! let out = rewrite_model(body, "gpt-4o").unwrap();
//! assert_eq!(&out[..], &br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#[..]);
//! ```

#![warn(missing_docs)]

pub mod anthropic;
mod call_id;
mod canonical;
mod collect;
mod embeddings;
mod envelope;
mod error;
pub mod gemini;
mod json;
pub mod openai;
mod protocol;
mod providers;
pub mod responses;
mod sse;
mod stream;
mod structured;
mod summary;
mod translate;
mod usage;
mod validate;

pub use canonical::{
    join_text, ChatRequest, ChatResponse, ContentPart, Encoded, FinishReason, ImageSource, Message,
    Role, StreamEvent, Tool, ToolChoice, Usage,
};

pub use collect::ResponseCollector;
pub use embeddings::{
    decode_gemini_embeddings, encode_gemini_embeddings, encode_openai_embeddings,
    read_openai_embeddings, validate_embeddings, EmbeddingInput, EmbeddingsRequest,
    MAX_EMBEDDING_INPUTS,
};
pub use envelope::{forward_pieces, read_envelope, rewrite_model, with_stream_usage, Envelope};
pub use error::{
    classify_error, error_body, error_body_with_param, translate_error, UpstreamError,
    UpstreamErrorKind,
};
pub use protocol::{Protocol, ProtocolError};
pub use providers::{
    Auth, BodyVersion, Framing, ProviderKind, ProviderSpec, Terminator, VersionHeader, VersionQuery,
};
pub use sse::{write_sse, SseDecoder, SseEvent, MAX_EVENT_SIZE};
pub use stream::{StreamDecoder, StreamEncoder};
pub use summary::{read_summary, AnswerSummary};
pub use translate::{decode_request, decode_response, encode_request, encode_response};
pub use usage::read_usage;
pub use validate::{invalid_request_of, validate_request, InvalidRequest};
