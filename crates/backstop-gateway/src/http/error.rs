//! Errors the gateway answers with, rendered in the caller's protocol.
//! Rendering has no side effects: an error is logged once, at the edge.

use axum::response::{IntoResponse, Response};
use backstop_protocol::{error_body, error_body_with_param, Protocol};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use std::time::Duration;

use super::ServedMeta;

/// What went wrong, as a category with a status and a short code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or fails validation (400).
    InvalidRequest,
    /// Missing or wrong client key (401).
    Unauthorized,
    /// A part of the API that is switched off (403).
    Forbidden,
    /// Unknown model or path (404).
    NotFound,
    /// Body over the configured limit (413).
    TooLarge,
    /// The client did not send its request body in time (408).
    Timeout,
    /// Every candidate failed with transient failures, or every circuit is open (503).
    Unavailable,
    /// No upstream can serve this model at all (e.g. no provider configured) (503).
    NotConfigured,
    /// An upstream rejected the request itself; its status is kept.
    Upstream,
    /// A client key over its budget or rate limit (429).
    RateLimited,
    /// A bug in the gateway (500).
    Internal,
    /// The only answer left would call an irreversible tool from a guarded tier (503).
    ActionHeld,
    /// A request with the same `Idempotency-Key` is still being answered (409).
    InProgress,
    /// An `Idempotency-Key` reused with another request body (422).
    KeyReused,
}

impl ErrorKind {
    /// Short code used as the metrics label and the error body's `type`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::NotConfigured => "api_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Internal => "api_error",
            ErrorKind::ActionHeld => "irreversible_action_held",
            ErrorKind::InProgress => "idempotency_key_in_progress",
            ErrorKind::KeyReused => "idempotency_key_reused",
            ErrorKind::RateLimited => "rate_limit_error",
        }
    }

    fn default_status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Unavailable | ErrorKind::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ActionHeld => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::InProgress => StatusCode::CONFLICT,
            ErrorKind::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answer: kind, status, message, and an optional `Retry-After`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Category.
    pub kind: ErrorKind,
    /// HTTP status sent.
    pub status: StatusCode,
    /// Human-readable message naming what failed.
    pub message: String,
    /// The request field at fault, sent as OpenAI's `param` (the message names it as well).
    pub param: Option<String>,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
    /// An upstream error body already in the caller's protocol, sent as is.
    pub body: Option<Bytes>,
    /// The `x-backstop-*` headers, when the request reached the attempt loop.
    pub meta: Option<Box<ServedMeta>>,
}

impl ApiError {
    /// An error of `kind` with its usual status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: kind.default_status(),
            message: message.into(),
            param: None,
            retry_after: None,
            body: None,
            meta: None,
        }
    }

    /// A 400 for a request that failed validation, naming the field at fault.
    pub fn invalid_request(error: backstop_protocol::InvalidRequest) -> Self {
        let mut api_error = Self::new(ErrorKind::InvalidRequest, error.to_string());
        api_error.param = error.param;
        api_error
    }

    /// Sets `Retry-After`.
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// Renders the error in `protocol`.
    pub fn render(&self, protocol: Protocol) -> Response {
        let (status, kind) = (self.status.as_u16(), self.kind.code());
        let body = match (&self.body, &self.param) {
            (Some(body), _) => body.clone(),
            (None, Some(param)) => Bytes::from(error_body_with_param(
                protocol,
                status,
                kind,
                param,
                &self.message,
            )),
            (None, None) => Bytes::from(error_body(protocol, status, kind, &self.message)),
        };
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(meta) = &self.meta {
            meta.apply(response.headers_mut());
        }
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}
