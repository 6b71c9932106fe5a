//! HTTP-facing pieces shared by the routes: who may call, reading bodies, error answers and
//! response metadata.

mod auth;
mod body;
mod error;
mod meta;

pub use auth::{
    check_client_key, check_observer_key, constant_time_eq, identify_client, presented_key,
};
pub use body::{read_client_body, read_json_body, read_limited, BodyTimeout};
pub use error::{ApiError, ErrorKind};
pub use meta::{ServedMeta, COST_USD};
