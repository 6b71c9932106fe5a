//! A failed attempt: its class, what the upstream said, and the hint it gave.

use crate::redact::Redactor;
use crate::upstream::{TransportError, TransportKind};
use backstop_core::FailureClass;
use backstop_protocol::Protocol;
use bytes::Bytes;
use std::fmt;
use std::time::Duration;

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The contract's class, which decides the remedy.
    pub class: FailureClass,
    /// Upstream HTTP status, when there was one.
    pub status: Option<u16>,
    /// What happened, in words (no secrets: what an upstream says is [`Failure::redacted`]).
    pub message: String,
    /// The upstream's hint of when to try again.
    pub retry_after: Option<Duration>,
    /// The upstream's error body and the protocol it is in, to return to the caller
    /// when the failure is the request's own fault.
    pub upstream_body: Option<(Protocol, Bytes)>,
}

impl Failure {
    /// A failure with no upstream response (transport, timeout, malformed body).
    pub fn local(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            status: None,
            message: message.into(),
            retry_after: None,
            upstream_body: None,
        }
    }
}

impl Failure {
    /// This failure with every known secret masked in the upstream's message and body.
    /// Everything an upstream says passes here before it reaches a client, a log line or
    /// a failure summary: an upstream that echoes the key it received must not leak it.
    pub fn redacted(mut self, redactor: &Redactor) -> Self {
        self.message = redactor.text(&self.message);
        if let Some((_, body)) = &mut self.upstream_body {
            if redactor.finds_in(body) {
                *body = Bytes::from(redactor.bytes(body));
            }
        }
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({status}, {})", self.message, self.class.as_str()),
            None => write!(f, "{} ({})", self.message, self.class.as_str()),
        }
    }
}

/// The class of a transport error before any response. A certificate the upstream presents
/// and we do not trust (unknown issuer, expired, for another name) will not fix itself: the
/// target is broken, like one that rejects our key. Anything else (refused, reset) may pass.
pub fn transport_class(error: &TransportError) -> FailureClass {
    if is_untrusted_certificate(error) {
        FailureClass::TargetBroken
    } else {
        FailureClass::Transient
    }
}

/// Whether rustls rejected the peer's certificate anywhere in `error`'s chain, including
/// inside the nested `io::Error`s the TLS connector wraps it in (whose `source` skips them).
fn is_untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls::Error::InvalidCertificate(_)) = error.downcast_ref() {
        return true;
    }
    let wrapped = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| is_untrusted_certificate(inner));
    wrapped || error.source().is_some_and(is_untrusted_certificate)
}

/// Describes a transport error by its kind and innermost cause, without the URL (which may
/// carry a key for some providers).
pub fn describe_transport(error: &TransportError) -> String {
    let what = match error.kind() {
        TransportKind::Connect => "connection failed",
        TransportKind::Timeout => "timed out",
        TransportKind::Body => "response body broke off",
        TransportKind::Request => "connection reset or closed before a response",
        TransportKind::Other => "transport error",
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}
