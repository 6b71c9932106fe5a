//! Classification of upstream outcomes onto the contract's failure classes.
//! Every upstream error kind is decided here, once, by an exhaustive match.

use backstop_core::FailureClass;
use backstop_protocol::UpstreamErrorKind;

/// The class of an upstream HTTP error of `kind` with `status`.
pub fn class_of(kind: UpstreamErrorKind, status: u16) -> FailureClass {
    match kind {
        UpstreamErrorKind::RateLimited
        | UpstreamErrorKind::Overloaded
        | UpstreamErrorKind::ServerError
        | UpstreamErrorKind::Timeout => FailureClass::Transient,
        UpstreamErrorKind::ContextLength => FailureClass::ContextLength,
        UpstreamErrorKind::ContentFilter => FailureClass::ContentFilter,
        UpstreamErrorKind::Unauthorized
        | UpstreamErrorKind::PermissionDenied
        | UpstreamErrorKind::QuotaExhausted => FailureClass::TargetBroken,
        UpstreamErrorKind::ModelNotFound | UpstreamErrorKind::InvalidRequest => {
            FailureClass::Permanent
        }
        UpstreamErrorKind::Other => class_of_status(status),
    }
}

/// The class of a bare status code, when the body says nothing more.
pub fn class_of_status(status: u16) -> FailureClass {
    match status {
        408 | 425 | 429 | 500..=599 => FailureClass::Transient,
        401..=403 => FailureClass::TargetBroken,
        _ => FailureClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_table() {
        let rows = [
            (UpstreamErrorKind::RateLimited, 429, FailureClass::Transient),
            (UpstreamErrorKind::Overloaded, 529, FailureClass::Transient),
            (UpstreamErrorKind::ServerError, 503, FailureClass::Transient),
            (UpstreamErrorKind::Timeout, 408, FailureClass::Transient),
            (
                UpstreamErrorKind::ContextLength,
                400,
                FailureClass::ContextLength,
            ),
            (
                UpstreamErrorKind::ContentFilter,
                400,
                FailureClass::ContentFilter,
            ),
            (
                UpstreamErrorKind::Unauthorized,
                401,
                FailureClass::TargetBroken,
            ),
            (
                UpstreamErrorKind::PermissionDenied,
                403,
                FailureClass::TargetBroken,
            ),
            (
                UpstreamErrorKind::QuotaExhausted,
                402,
                FailureClass::TargetBroken,
            ),
            (
                UpstreamErrorKind::ModelNotFound,
                404,
                FailureClass::Permanent,
            ),
            (
                UpstreamErrorKind::InvalidRequest,
                422,
                FailureClass::Permanent,
            ),
            (UpstreamErrorKind::Other, 502, FailureClass::Transient),
            (UpstreamErrorKind::Other, 504, FailureClass::Transient),
            (UpstreamErrorKind::Other, 401, FailureClass::TargetBroken),
            (UpstreamErrorKind::Other, 418, FailureClass::Permanent),
        ];
        for (kind, status, class) in rows {
            assert_eq!(class_of(kind, status), class, "{kind:?} {status}");
        }
    }
}
