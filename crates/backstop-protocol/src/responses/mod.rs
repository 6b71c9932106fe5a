//! The OpenAI Responses API (`POST /v1/responses`): requests, `response` objects and the typed
//! event stream. Clients speak it to Backstop; any target serves it through the canonical model.

mod decode;
mod request;
mod response;
pub(crate) mod stream;

pub use decode::decode_response;
pub(crate) use decode::Decoder;
pub use request::decode_request;
pub use response::encode_response;
