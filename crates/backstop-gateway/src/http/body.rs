//! Reading a request body whole: bounded in size, and in time by the server's body deadline.

use super::{ApiError, ErrorKind};
use axum::body::Body;
use std::time::Duration;

/// The error a request body gives when it has not arrived by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {:?} (server.body_timeout)",
            self.0
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// Reads `body` whole: 413 naming `limit_name` once it passes `limit` bytes, 408 when it is
/// late past the server's body deadline ([`BodyTimeout`]).
pub async fn read_limited(
    body: Body,
    limit: u64,
    limit_name: &str,
) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|error| {
            let causes =
                || std::iter::successors(std::error::Error::source(&error), |e| e.source());
            if let Some(timeout) = causes().find_map(|e| e.downcast_ref::<BodyTimeout>()) {
                ApiError::new(ErrorKind::Timeout, timeout.to_string())
            } else if causes().any(|e| e.is::<http_body_util::LengthLimitError>()) {
                ApiError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "request body is larger than the limit of {limit} bytes ({limit_name})"
                    ),
                )
            } else {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    format!("could not read the request body: {error}"),
                )
            }
        })
}
