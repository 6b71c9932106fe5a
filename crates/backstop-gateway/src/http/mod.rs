//! HTTP-facing pieces shared by the routes: who may call, reading bodies, error answers and
//! response metadata.

mod auth;
mod body;
mod detach;
mod error;
mod meta;

pub use auth::{
    check_client_key, check_observer_key, constant_time_eq, identify_client, presented_key,
};
pub use body::{read_client_body, read_json_body, read_limited, BodyTimeout};
pub use detach::detach;
pub use error::{ApiError, ErrorKind};
pub use meta::{ServedMeta, COST_USD};

/// The header that carries the request id (set by the edge on every request and answer).
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// A random version-4 UUID from the thread-local generator (seeded from the system's, no system
/// call per id): request ids, lease tokens.
pub fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}
