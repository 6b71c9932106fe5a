//! Who may call: the key a client presents, checked against the configured client, admin
//! and observer keys in constant time.

use super::{ApiError, ErrorKind};
use crate::config::Auth;
use http::HeaderMap;

/// The key a caller presents: `x-api-key: K` or `Authorization: Bearer K`, the scheme
/// in any case and followed by any amount of whitespace.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = || {
        let value = headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .trim();
        let (scheme, key) = value.split_once(char::is_whitespace)?;
        scheme.eq_ignore_ascii_case("bearer").then_some(key)
    };
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(bearer)
        .map(str::trim)
}

/// Accepts `Authorization: Bearer K` or `x-api-key: K` when client keys are configured.
pub fn check_client_key(auth: Option<&Auth>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(auth) = auth.filter(|auth| !auth.client_keys.is_empty()) else {
        return Ok(());
    };
    let presented = presented_key(headers);
    match presented {
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "missing client key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
        )),
        Some(key)
            if auth
                .client_keys
                .iter()
                .any(|k| constant_time_eq(k.expose(), key.trim())) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(ErrorKind::Unauthorized, "invalid client key")),
    }
}

/// Compares two keys in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// With `auth.protect_metrics`, `/metrics` and `/status` need a client key or the admin key.
pub fn check_observer_key(auth: Option<&Auth>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(auth) = auth.filter(|auth| auth.protect_metrics) else {
        return Ok(());
    };
    let Some(presented) = presented_key(headers) else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "this endpoint needs a client key or the admin key (auth.protect_metrics): send `Authorization: Bearer KEY`",
        ));
    };
    let known = auth.client_keys.iter().chain(auth.admin_key.iter());
    let mut accepted = false;
    for key in known {
        accepted |= constant_time_eq(key.expose(), presented);
    }
    if accepted {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::Unauthorized, "invalid key"))
    }
}
