//! Provider error bodies mapped onto one set of failure kinds, and error bodies in each protocol.
//!
//! The gateway decides what to do with a failed attempt (retry, fail over, give up) from a
//! [`UpstreamErrorKind`]. Status codes alone are not enough: a context-length overflow, a content
//! filter hit and a plain bad request are all HTTP 400, and an exhausted billing quota is a 429 just
//! like a rate limit. [`classify_error`] therefore reads the provider's own `type` / `code` /
//! `status` fields and its documented wording first, and falls back to the status code. It also
//! works on status 200, for errors delivered inside a stream (Anthropic `event: error`).

use serde_json::{json, Value};

use crate::providers::ErrorRules;
use crate::{Protocol, ProviderKind};

/// What kind of failure an upstream error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// 429: too many requests or tokens per unit of time.
    RateLimited,
    /// 529 / `overloaded_error` / a 503 that says the model is overloaded.
    Overloaded,
    /// 500, 502, other 5xx.
    ServerError,
    /// The prompt (plus `max_tokens`) does not fit the model's context window.
    ContextLength,
    /// The provider's content filter or policy refused the request or the output.
    ContentFilter,
    /// 401: the key is missing, wrong or expired.
    Unauthorized,
    /// 403: the key may not use this model or region.
    PermissionDenied,
    /// Billing or quota exhausted (`insufficient_quota`, 402, credit balance too low).
    QuotaExhausted,
    /// 404: the model does not exist for this provider.
    ModelNotFound,
    /// Any other 4xx: the request itself is wrong.
    InvalidRequest,
    /// 408 / 504 / `timeout_error`: the provider gave up.
    Timeout,
    /// Nothing recognisable.
    Other,
}

impl UpstreamErrorKind {
    /// A short snake_case label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
            Self::ContextLength => "context_length",
            Self::ContentFilter => "content_filter",
            Self::Unauthorized => "unauthorized",
            Self::PermissionDenied => "permission_denied",
            Self::QuotaExhausted => "quota_exhausted",
            Self::ModelNotFound => "model_not_found",
            Self::InvalidRequest => "invalid_request",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }

    /// The error `type` a client of protocol `client` expects for this kind.
    pub fn error_type(self, client: Protocol) -> &'static str {
        let anthropic = matches!(client, Protocol::Anthropic);
        match self {
            Self::RateLimited => "rate_limit_error",
            Self::Overloaded if anthropic => "overloaded_error",
            Self::Overloaded | Self::ServerError | Self::Timeout | Self::Other => {
                if anthropic {
                    "api_error"
                } else {
                    "server_error"
                }
            }
            Self::ContextLength | Self::ContentFilter | Self::InvalidRequest => {
                "invalid_request_error"
            }
            Self::Unauthorized => "authentication_error",
            Self::PermissionDenied => "permission_error",
            Self::QuotaExhausted if anthropic => "billing_error",
            Self::QuotaExhausted => "insufficient_quota",
            Self::ModelNotFound if anthropic => "not_found_error",
            Self::ModelNotFound => "invalid_request_error",
        }
    }

    /// The OpenAI `code` that goes with this kind, where OpenAI defines one.
    pub fn openai_code(self) -> Option<&'static str> {
        match self {
            Self::RateLimited => Some("rate_limit_exceeded"),
            Self::ContextLength => Some("context_length_exceeded"),
            Self::ContentFilter => Some("content_filter"),
            Self::Unauthorized => Some("invalid_api_key"),
            Self::QuotaExhausted => Some("insufficient_quota"),
            Self::ModelNotFound => Some("model_not_found"),
            Self::Overloaded
            | Self::ServerError
            | Self::PermissionDenied
            | Self::InvalidRequest
            | Self::Timeout
            | Self::Other => None,
        }
    }
}

/// A classified upstream error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    /// What kind of failure it is.
    pub kind: UpstreamErrorKind,
    /// The provider's own message, or empty when the body had none.
    pub message: String,
}

/// The parts of an error body that classification looks at.
#[derive(Default)]
struct Parts {
    message: String,
    /// `type`, `code`, `status` and nested codes, lower-cased and space-separated.
    codes: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parts(root: &Value) -> Parts {
    // Gemini streaming endpoints wrap the error in a one-element array.
    let root = match root {
        Value::Array(items) => items.first().unwrap_or(root),
        other => other,
    };
    let mut p = Parts::default();
    let err = match root.get("error") {
        Some(Value::String(s)) => {
            p.message = s.clone();
            root
        }
        Some(e @ Value::Object(_)) => e,
        _ => root,
    };
    if p.message.is_empty() {
        p.message = ["message", "detail"]
            .iter()
            .find_map(|k| err.get(*k).and_then(text))
            .unwrap_or_default();
    }
    let mut codes = Vec::new();
    for k in ["type", "code", "status"] {
        codes.extend(err.get(k).and_then(text));
    }
    if let Some(inner) = err.get("innererror").or_else(|| err.get("inner_error")) {
        codes.extend(inner.get("code").and_then(text));
    }
    if let Some(Value::Array(details)) = err.get("details") {
        for d in details {
            codes.extend(d.get("reason").and_then(text));
        }
    }
    p.codes = codes.join(" ").to_lowercase();
    p
}

const CONTEXT_WORDS: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "input is too long",
    "exceed context limit",
    "exceeds the maximum number of tokens",
    "input token count",
    "too many tokens",
    "reduce the length of the messages",
];

const FILTER_WORDS: &[&str] = &[
    "content_filter",
    "content_policy_violation",
    "responsibleaipolicyviolation",
    "content management policy",
    "content filtering policy",
    "blocked by content filter",
    "blockreason",
    "prompt was blocked",
];

fn has_any(hay: &str, words: &[&str]) -> bool {
    words.iter().any(|w| hay.contains(w))
}

/// The error an upstream reported as an event inside an otherwise successful stream.
pub(crate) fn stream_error_event(p: Protocol, data: &str) -> crate::ProtocolError {
    let error = classify_error(p, 200, data.as_bytes());
    crate::ProtocolError::Upstream {
        kind: error.kind,
        message: error.message,
    }
}

/// Classifies an upstream error from its status code and body.
///
/// `p` is the protocol the upstream speaks; the rules are those of the provider that defines
/// it (see [`crate::ProviderSpec::classify_error`] for another provider's). The body may be
/// empty or not JSON; the status code then decides. Works for status 200 too (errors inside
/// streams, refusals in a success body).
pub fn classify_error(p: Protocol, status: u16, body: &[u8]) -> UpstreamError {
    ProviderKind::native(p).spec().classify_error(status, body)
}

/// Classifies an upstream error by the common rules and the provider's `rules`.
pub(crate) fn classify_with(rules: &ErrorRules, status: u16, body: &[u8]) -> UpstreamError {
    let root: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let parts = parts(&root);
    let msg = parts.message.to_lowercase();
    let hay = format!("{msg} {}", parts.codes);
    let kind = classify_parts(rules, status, &root, &hay);
    UpstreamError {
        kind,
        message: parts.message,
    }
}

fn classify_parts(rules: &ErrorRules, status: u16, root: &Value, hay: &str) -> UpstreamErrorKind {
    use UpstreamErrorKind as K;
    if status != 429 && has_any(hay, CONTEXT_WORDS) {
        return K::ContextLength;
    }
    if has_any(hay, FILTER_WORDS) || (rules.refused)(root) {
        return K::ContentFilter;
    }
    if status == 402 || has_any(hay, QUOTA_WORDS) || (rules.quota)(hay, root) {
        return K::QuotaExhausted;
    }
    if has_any(
        hay,
        &[
            "api key not valid",
            "api_key_invalid",
            "api key expired",
            "invalid_api_key",
            "invalid x-api-key",
            "incorrect api key",
        ],
    ) {
        return K::Unauthorized;
    }
    if hay.contains("location is not supported") || hay.contains("unsupported_country") {
        return K::PermissionDenied;
    }
    match status {
        401 => K::Unauthorized,
        403 => K::PermissionDenied,
        404 => K::ModelNotFound,
        408 | 504 => K::Timeout,
        429 => K::RateLimited,
        529 => K::Overloaded,
        500..=599 if hay.contains("overloaded") || hay.contains("unavailable") => K::Overloaded,
        500..=599 => K::ServerError,
        400..=499 => K::InvalidRequest,
        _ => classify_codes(hay),
    }
}

/// Words of exhausted billing or quota in every provider's errors.
const QUOTA_WORDS: &[&str] = &[
    "insufficient_quota",
    "billing_error",
    "billing_not_active",
    "credit balance is too low",
];

/// Billing or quota exhaustion in the words of OpenAI and Anthropic, as opposed to a
/// per-minute rate limit.
pub(crate) fn quota_in_words(hay: &str, _root: &Value) -> bool {
    hay.contains("exceeded your current quota") || hay.contains("billing")
}

/// Classification from the provider's `type` / `code` / `status` alone (no usable HTTP status).
fn classify_codes(hay: &str) -> UpstreamErrorKind {
    use UpstreamErrorKind as K;
    const TABLE: &[(&str, UpstreamErrorKind)] = &[
        ("overloaded", K::Overloaded),
        ("rate_limit", K::RateLimited),
        ("resource_exhausted", K::RateLimited),
        ("authentication_error", K::Unauthorized),
        ("unauthenticated", K::Unauthorized),
        ("permission", K::PermissionDenied),
        ("not_found", K::ModelNotFound),
        ("timeout", K::Timeout),
        ("deadline_exceeded", K::Timeout),
        ("unavailable", K::Overloaded),
        ("api_error", K::ServerError),
        ("server_error", K::ServerError),
        ("internal", K::ServerError),
        ("invalid_request", K::InvalidRequest),
        ("invalid_argument", K::InvalidRequest),
        ("failed_precondition", K::InvalidRequest),
    ];
    TABLE
        .iter()
        .find(|(w, _)| hay.contains(w))
        .map_or(K::Other, |(_, k)| *k)
}

/// The gRPC-style status name Gemini puts in its error bodies.
fn gemini_status(status: u16) -> &'static str {
    match status {
        400 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        503 | 529 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// An error body in protocol `p`; `param`, OpenAI's name of the offending request field, is
/// dropped in the other protocols, whose bodies have no such field.
fn render(
    p: Protocol,
    status: u16,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Vec<u8> {
    let body = match p {
        Protocol::OpenAi | Protocol::Responses => json!({
            "error": { "message": message, "type": kind, "param": param, "code": code }
        }),
        Protocol::Anthropic => json!({
            "type": "error",
            "error": { "type": kind, "message": message }
        }),
        Protocol::Gemini => json!({
            "error": { "code": status, "message": message, "status": gemini_status(status) }
        }),
    };
    body.to_string().into_bytes()
}

/// An error body in protocol `p` (the client's).
///
/// OpenAI: `{"error":{"message","type","param":null,"code"}}` with `code` set to `kind`;
/// Anthropic: `{"type":"error","error":{"type","message"}}`; Gemini:
/// `{"error":{"code","message","status"}}`.
pub fn error_body(p: Protocol, status: u16, kind: &str, message: &str) -> Vec<u8> {
    render(p, status, kind, Some(kind), None, message)
}

/// An error body in protocol `p` about the field `param` of the client's request: as
/// [`error_body`], with OpenAI's `param` set (in the other protocols the message names it).
pub fn error_body_with_param(
    p: Protocol,
    status: u16,
    kind: &str,
    param: &str,
    message: &str,
) -> Vec<u8> {
    render(p, status, kind, Some(kind), Some(param), message)
}

/// Re-renders an upstream error body (protocol `from`) in the client's protocol `to`, keeping
/// the provider's message and mapping its kind onto the client's error types.
pub fn translate_error(from: Protocol, to: Protocol, status: u16, body: &[u8]) -> Vec<u8> {
    let err = classify_error(from, status, body);
    let message = if err.message.is_empty() {
        format!("upstream {from} provider returned HTTP {status}")
    } else {
        err.message
    };
    let code = match to {
        Protocol::OpenAi | Protocol::Responses => err.kind.openai_code(),
        Protocol::Anthropic | Protocol::Gemini => None,
    };
    render(to, status, err.kind.error_type(to), code, None, &message)
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
