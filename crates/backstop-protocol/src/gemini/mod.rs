//! Google Gemini `generateContent` / `streamGenerateContent`: requests, responses and streams.
//!
//! Gemini carries the model name in the URL, not the body, so [`encode_request`] ignores it;
//! the caller builds `/v1beta/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`).
//! Gemini streams have no terminator event: the chunk that carries `finishReason` ends the
//! response, and the decoder emits [`crate::StreamEvent::Done`] after it.

mod request;
mod response;
pub(crate) mod stream;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub(crate) use response::{finish_from, finish_to, usage_from, usage_to};
