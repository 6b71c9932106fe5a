//! OpenAI Chat Completions: requests, responses and streams (`chat.completion.chunk`).

mod chunk;
mod request;
mod response;
pub(crate) mod stream;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub(crate) use response::{finish_from, finish_to, response_id, usage_to};
