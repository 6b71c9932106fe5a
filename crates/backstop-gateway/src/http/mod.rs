//! HTTP-facing pieces shared by the routes: error answers and response metadata.

mod error;
mod meta;

pub use error::{ApiError, ErrorKind};
pub use meta::ServedMeta;
