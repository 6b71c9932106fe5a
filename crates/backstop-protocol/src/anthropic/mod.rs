//! Anthropic Messages: requests, responses and streams (`message_start` ... `message_stop`).

mod request;
mod response;
pub(crate) mod stream;
pub(crate) mod tool_ids;

pub use request::{decode_request, encode_request, DEFAULT_MAX_TOKENS};
pub use response::{decode_response, encode_response};
pub(crate) use response::{finish_from, finish_to, message_id, usage_from, usage_to};
