//! The `Prefer` request header (RFC 7240): `respond-async` asks for a 202 and a job instead of waiting.

use crate::http::{ApiError, ErrorKind};
use http::HeaderMap;

/// Whether the request prefers an asynchronous answer; a malformed `Prefer` is a 400 naming the header.
pub fn respond_async(headers: &HeaderMap) -> Result<bool, ApiError> {
    let mut asked = false;
    for value in headers.get_all("prefer") {
        let text = value.to_str().map_err(|_| malformed("not ASCII"))?;
        for preference in text.split(',') {
            let name = preference
                .split([';', '='])
                .next()
                .unwrap_or_default()
                .trim();
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(malformed(&format!(
                    "`{}` is not a preference",
                    preference.trim()
                )));
            }
            asked |= name.eq_ignore_ascii_case("respond-async");
        }
    }
    Ok(asked)
}

fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn malformed(why: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        format!("invalid `Prefer` header: {why}; use e.g. `Prefer: respond-async`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> Result<bool, ApiError> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", value.parse().unwrap());
        }
        respond_async(&headers)
    }

    #[test]
    fn respond_async_among_other_preferences() {
        assert!(!prefer(&[]).unwrap());
        assert!(prefer(&["respond-async"]).unwrap());
        assert!(prefer(&["return=minimal", "Respond-Async, wait=10"]).unwrap());
        assert!(!prefer(&["wait=5; foo=\"bar\""]).unwrap());
    }

    #[test]
    fn a_malformed_header_is_refused_naming_it() {
        for bad in ["", "respond-async,,", "respond async", "(x)"] {
            let error = prefer(&[bad]).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains("`Prefer`"), "{}", error.message);
        }
    }
}
