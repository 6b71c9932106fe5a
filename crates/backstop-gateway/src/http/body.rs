//! Reading a request body whole: bounded in size, and in time by the server's body deadline.

use super::{ApiError, ErrorKind};
use axum::body::Body;
use http::header::{HeaderMap, CONTENT_ENCODING};
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

/// Reads whole a body the gateway parses itself (a JSON request): as [`read_limited`], after refusing with a
/// 400 that names it a `Content-Encoding` other than `identity`, which the gateway does not undo (a compressed
/// body would otherwise fail as "not valid JSON").
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    limit_name: &str,
) -> Result<bytes::Bytes, ApiError> {
    refuse_encoded(headers)?;
    read_limited(body, limit, limit_name).await
}

/// Reads whole the body of a client's API call (model, Responses, embeddings, MCP): [`read_json_body`] under
/// `server.max_body_size`.
pub async fn read_client_body(
    headers: &HeaderMap,
    body: Body,
    config: &crate::config::Config,
) -> Result<bytes::Bytes, ApiError> {
    let limit = config.server.max_body_size;
    read_json_body(headers, body, limit, "server.max_body_size").await
}

fn refuse_encoded(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(encoding) = headers.get(CONTENT_ENCODING) else {
        return Ok(());
    };
    let value = encoding.to_str().unwrap_or_default().trim();
    if value.eq_ignore_ascii_case("identity") {
        return Ok(());
    }
    let named = if !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
    {
        format!("`{value}`")
    } else {
        "of this kind".to_owned()
    };
    Err(ApiError::new(
        ErrorKind::InvalidRequest,
        format!(
            "the request body has a Content-Encoding {named}, which the gateway does not decode: send it uncompressed"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_ENCODING,
            http::HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn an_encoded_body_is_refused_by_name_and_identity_is_not() {
        assert!(refuse_encoded(&HeaderMap::new()).is_ok());
        assert!(refuse_encoded(&encoded("identity")).is_ok());
        assert!(refuse_encoded(&encoded(" Identity ")).is_ok());
        let error = refuse_encoded(&encoded("gzip")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert!(error.message.contains("`gzip`"), "{}", error.message);
        let odd = refuse_encoded(&encoded(&"x;".repeat(40))).unwrap_err();
        assert!(!odd.message.contains("x;"), "{}", odd.message);
    }
}
