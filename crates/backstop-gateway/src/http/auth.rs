//! Who may call: the key a client presents, checked against the configured client, admin
//! and observer keys in constant time.

use super::{ApiError, ErrorKind};
use crate::config::{Auth, ClientKey};
use http::HeaderMap;
use std::sync::Arc;

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
    identify_client(auth, headers).map(drop)
}

/// The client key the caller presents (`None` when no key is required), or a 401: a missing or unknown key
/// is refused whenever keys are configured.
pub fn identify_client(
    auth: Option<&Auth>,
    headers: &HeaderMap,
) -> Result<Option<Arc<ClientKey>>, ApiError> {
    let Some(auth) = auth.filter(|auth| auth.requires_client_key()) else {
        return Ok(None);
    };
    match presented_key(headers) {
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "missing client key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
        )),
        Some(key) => match auth.identify(key.trim()) {
            Some(found) => Ok(Some(found)),
            None => Err(ApiError::new(ErrorKind::Unauthorized, "invalid client key")),
        },
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
    let mut accepted = auth.identify(presented).is_some();
    for key in auth.admin_key.iter() {
        accepted |= constant_time_eq(key.expose(), presented);
    }
    if accepted {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::Unauthorized, "invalid key"))
    }
}
