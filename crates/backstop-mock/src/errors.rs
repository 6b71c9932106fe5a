//! Each provider's real error responses: status, JSON body shape, wording, codes and headers.
//!
//! Clients and gateways classify failures by these bodies (`context_length_exceeded`,
//! `overloaded_error`, `RESOURCE_EXHAUSTED`, ...), so the wording follows what the providers
//! actually send, not a generic placeholder.

use serde_json::{json, Value};

use crate::fault::Route;

/// The error situations the mock can produce.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ErrorCase {
    Status(u16),
    RateLimit,
    Overloaded,
    ContextLength,
    ContentFilter,
    Unauthorized,
    Forbidden,
    InsufficientQuota,
    UnknownModel,
    RejectPrefill,
    /// A malformed request: the provider's 400 with this message.
    Invalid(String),
}

impl ErrorCase {
    /// Whether a request that carries neither a prompt nor a model name (`GET /v1/models`) can
    /// get this error: availability and account errors can, errors about a prompt or model cannot.
    pub(crate) fn on_model_list(&self) -> bool {
        match self {
            ErrorCase::Status(_)
            | ErrorCase::RateLimit
            | ErrorCase::Overloaded
            | ErrorCase::Unauthorized
            | ErrorCase::Forbidden => true,
            ErrorCase::ContextLength
            | ErrorCase::ContentFilter
            | ErrorCase::InsufficientQuota
            | ErrorCase::UnknownModel
            | ErrorCase::RejectPrefill
            | ErrorCase::Invalid(_) => false,
        }
    }
}

/// A rendered error response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorReply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// What the error is about.
pub(crate) struct Context<'a> {
    pub(crate) model: &'a str,
    pub(crate) retry_after: Option<&'a str>,
    pub(crate) input_tokens: u64,
}

pub(crate) const PREFILL: &str =
    "This model does not support assistant message prefill. The conversation must end with a user message.";

/// Maps a bare status onto the named case that providers use for it.
fn normalize(case: ErrorCase) -> ErrorCase {
    match case {
        ErrorCase::Status(429) => ErrorCase::RateLimit,
        ErrorCase::Status(401) => ErrorCase::Unauthorized,
        ErrorCase::Status(403) => ErrorCase::Forbidden,
        ErrorCase::Status(404) => ErrorCase::UnknownModel,
        other => other,
    }
}

/// Renders `case` as the provider behind `route` would.
pub(crate) fn render(route: Route, case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    let case = normalize(case);
    let mut reply = match route {
        Route::Openai | Route::Models => openai(case, cx),
        Route::Anthropic => anthropic(case, cx),
        Route::Gemini => gemini(case, cx),
        Route::Azure => crate::cloud_errors::azure(case, cx),
        Route::Bedrock => crate::cloud_errors::bedrock(case, cx),
        Route::Vertex => crate::cloud_errors::vertex(case, cx),
    };
    if let Some(after) = cx.retry_after {
        reply.headers.push(("retry-after", after.to_owned()));
    }
    reply
}

/// The JSON of the error event a provider sends in the middle of a stream that has already
/// answered 200: OpenAI (and OpenAI-compatible servers) and Gemini put their 500 error body in a
/// data line; Anthropic sends its overload error without the `request_id` of the HTTP body.
pub(crate) fn stream_error(route: Route) -> Value {
    let cx = Context {
        model: "",
        retry_after: None,
        input_tokens: 0,
    };
    match route {
        Route::Openai | Route::Models | Route::Gemini | Route::Azure | Route::Bedrock => {
            render(route, ErrorCase::Status(500), &cx).body
        }
        Route::Anthropic | Route::Vertex => {
            let body = render(route, ErrorCase::Overloaded, &cx).body;
            json!({ "type": "error", "error": body["error"] })
        }
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

pub(crate) fn oai(
    status: u16,
    message: String,
    kind: Value,
    param: Value,
    code: Value,
) -> ErrorReply {
    ErrorReply {
        status,
        body: json!({ "error": { "message": message, "type": kind, "param": param, "code": code } }),
        headers: Vec::new(),
    }
}

pub(crate) fn openai(case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    let model = cx.model;
    match case {
        ErrorCase::RateLimit => {
            let wait = cx.retry_after.map_or_else(|| "20ms".to_owned(), |s| format!("{s}s"));
            let mut reply = oai(
                429,
                format!(
                    "Rate limit reached for {model} in organization org-backstopmock on requests per min (RPM): \
                     Limit 500, Used 500, Requested 1. Please try again in {wait}. Visit \
                     https://platform.openai.com/account/rate-limits to learn more."
                ),
                json!("requests"),
                Value::Null,
                json!("rate_limit_exceeded"),
            );
            reply.headers = vec![
                ("x-ratelimit-limit-requests", "500".into()),
                ("x-ratelimit-limit-tokens", "30000".into()),
                ("x-ratelimit-remaining-requests", "0".into()),
                ("x-ratelimit-remaining-tokens", "29000".into()),
                ("x-ratelimit-reset-requests", wait),
                ("x-ratelimit-reset-tokens", "2s".into()),
            ];
            reply
        }
        ErrorCase::InsufficientQuota => oai(
            429,
            "You exceeded your current quota, please check your plan and billing details. For more information on \
             this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
                .into(),
            json!("insufficient_quota"),
            Value::Null,
            json!("insufficient_quota"),
        ),
        ErrorCase::Overloaded => oai(
            503,
            "The server is overloaded or not ready yet.".into(),
            json!("server_error"),
            Value::Null,
            Value::Null,
        ),
        ErrorCase::ContextLength => oai(
            400,
            format!(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in {} tokens. \
                 Please reduce the length of the messages.",
                cx.input_tokens.max(130_000)
            ),
            json!("invalid_request_error"),
            json!("messages"),
            json!("context_length_exceeded"),
        ),
        ErrorCase::ContentFilter => oai(
            400,
            "The response was filtered due to the prompt triggering content management policy. Please modify your \
             prompt and retry."
                .into(),
            json!("invalid_request_error"),
            json!("prompt"),
            json!("content_filter"),
        ),
        ErrorCase::Unauthorized => oai(
            401,
            "Incorrect API key provided: sk-***. You can find your API key at https://platform.openai.com/account/api-keys."
                .into(),
            json!("invalid_request_error"),
            Value::Null,
            json!("invalid_api_key"),
        ),
        ErrorCase::Forbidden => oai(
            403,
            "Country, region, or territory not supported".into(),
            json!("request_forbidden"),
            Value::Null,
            json!("unsupported_country_region_territory"),
        ),
        ErrorCase::UnknownModel => oai(
            404,
            format!("The model `{model}` does not exist or you do not have access to it."),
            json!("invalid_request_error"),
            Value::Null,
            json!("model_not_found"),
        ),
        ErrorCase::RejectPrefill => {
            oai(400, PREFILL.into(), json!("invalid_request_error"), json!("messages"), Value::Null)
        }
        ErrorCase::Invalid(message) => oai(400, message, json!("invalid_request_error"), Value::Null, Value::Null),
        ErrorCase::Status(status) => match status {
            402 => oai(
                402,
                "Insufficient balance: your account has run out of credits.".into(),
                json!("insufficient_quota"),
                Value::Null,
                json!("insufficient_quota"),
            ),
            500 => oai(
                500,
                "The server had an error while processing your request. Sorry about that!".into(),
                json!("server_error"),
                Value::Null,
                Value::Null,
            ),
            502 => oai(502, "Bad gateway.".into(), json!("cf_bad_gateway"), Value::Null, json!(502)),
            503 => oai(503, "Service Unavailable.".into(), json!("server_error"), Value::Null, Value::Null),
            504 => oai(504, "Gateway timeout.".into(), json!("cf_gateway_timeout"), Value::Null, json!(504)),
            s if s >= 500 => oai(s, format!("{}.", reason(s)), json!("server_error"), Value::Null, Value::Null),
            s => oai(s, format!("{}.", reason(s)), json!("invalid_request_error"), Value::Null, Value::Null),
        },
    }
}

pub(crate) fn ant(status: u16, kind: &str, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        status,
        body: json!({
            "type": "error",
            "error": { "type": kind, "message": message.into() },
            "request_id": "req_011mockbackstop",
        }),
        headers: Vec::new(),
    }
}

pub(crate) fn anthropic(case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    match case {
        ErrorCase::RateLimit => {
            let mut reply = ant(
                429,
                "rate_limit_error",
                "This request would exceed your organization's rate limit of 50 requests per minute. For details, \
                 refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current \
                 usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may \
                 also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate \
                 limit increase.",
            );
            reply.headers = vec![
                ("anthropic-ratelimit-requests-limit", "50".into()),
                ("anthropic-ratelimit-requests-remaining", "0".into()),
                ("anthropic-ratelimit-requests-reset", "2030-01-01T00:00:00Z".into()),
                ("anthropic-ratelimit-tokens-limit", "40000".into()),
                ("anthropic-ratelimit-tokens-remaining", "40000".into()),
                ("anthropic-ratelimit-input-tokens-limit", "40000".into()),
                ("anthropic-ratelimit-input-tokens-remaining", "40000".into()),
                ("anthropic-ratelimit-output-tokens-limit", "8000".into()),
                ("anthropic-ratelimit-output-tokens-remaining", "8000".into()),
                ("x-should-retry", "true".into()),
            ];
            reply
        }
        ErrorCase::Overloaded => ant(529, "overloaded_error", "Overloaded"),
        ErrorCase::ContextLength => ant(
            400,
            "invalid_request_error",
            format!("prompt is too long: {} tokens > 200000 maximum", cx.input_tokens.max(210_000)),
        ),
        ErrorCase::ContentFilter => ant(400, "invalid_request_error", "Output blocked by content filtering policy"),
        ErrorCase::Unauthorized => ant(401, "authentication_error", "invalid x-api-key"),
        ErrorCase::Forbidden => {
            ant(403, "permission_error", "Your API key does not have permission to use the specified resource.")
        }
        ErrorCase::InsufficientQuota => ant(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or \
             purchase credits.",
        ),
        ErrorCase::UnknownModel => ant(404, "not_found_error", format!("model: {}", cx.model)),
        ErrorCase::RejectPrefill => ant(400, "invalid_request_error", PREFILL),
        ErrorCase::Invalid(message) => ant(400, "invalid_request_error", message),
        ErrorCase::Status(status) => match status {
            402 => ant(402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
            413 => ant(413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
            500 => ant(500, "api_error", "Internal server error"),
            529 => ant(529, "overloaded_error", "Overloaded"),
            s if s >= 500 => ant(s, "api_error", reason(s)),
            s => ant(s, "invalid_request_error", reason(s)),
        },
    }
}

pub(crate) fn goog(status: u16, grpc: &str, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        status,
        body: json!({ "error": { "code": status, "message": message.into(), "status": grpc } }),
        headers: Vec::new(),
    }
}

pub(crate) fn gemini(case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    match case {
        ErrorCase::RateLimit | ErrorCase::InsufficientQuota => {
            let mut reply = goog(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details. For more information \
                 on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
            );
            if let (ErrorCase::RateLimit, Some(after)) = (&case, cx.retry_after) {
                reply.body["error"]["details"] = json!([{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{after}s"),
                }]);
            }
            reply
        }
        ErrorCase::Overloaded => goog(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        ErrorCase::ContextLength => goog(
            400,
            "INVALID_ARGUMENT",
            format!(
                "The input token count ({}) exceeds the maximum number of tokens allowed (1048576).",
                cx.input_tokens.max(1_200_000)
            ),
        ),
        ErrorCase::ContentFilter => ErrorReply {
            status: 200,
            body: json!({
                "promptFeedback": {
                    "blockReason": "SAFETY",
                    "safetyRatings": [{ "category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH" }],
                },
                "usageMetadata": { "promptTokenCount": cx.input_tokens, "totalTokenCount": cx.input_tokens },
                "modelVersion": cx.model,
            }),
            headers: Vec::new(),
        },
        ErrorCase::Unauthorized => goog(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other \
             valid authentication credential.",
        ),
        ErrorCase::Forbidden => goog(403, "PERMISSION_DENIED", "The caller does not have permission"),
        ErrorCase::UnknownModel => goog(
            404,
            "NOT_FOUND",
            format!(
                "models/{} is not found for API version v1beta, or is not supported for generateContent. Call \
                 ListModels to see the list of available models and their supported methods.",
                cx.model
            ),
        ),
        ErrorCase::RejectPrefill => goog(400, "INVALID_ARGUMENT", PREFILL),
        ErrorCase::Invalid(message) => goog(400, "INVALID_ARGUMENT", message),
        ErrorCase::Status(status) => match status {
            400 => goog(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            500 => goog(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting",
            ),
            503 => goog(503, "UNAVAILABLE", "The service is currently unavailable."),
            504 => goog(504, "DEADLINE_EXCEEDED", "The request timed out. Please try again."),
            s if s >= 500 => goog(s, "UNAVAILABLE", reason(s)),
            s => goog(s, "FAILED_PRECONDITION", reason(s)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context {
            model: "m-1",
            retry_after: Some("2"),
            input_tokens: 10,
        }
    }

    #[test]
    fn openai_context_length_has_the_real_code_and_wording() {
        let r = render(Route::Openai, ErrorCase::ContextLength, &cx());
        assert_eq!(r.status, 400);
        assert_eq!(r.body["error"]["code"], "context_length_exceeded");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("This model's maximum context length is 128000"));
    }

    #[test]
    fn rate_limits_carry_provider_headers_and_retry_after() {
        let r = render(Route::Openai, ErrorCase::Status(429), &cx());
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("retry-after", "2".into())));
        assert!(r
            .headers
            .iter()
            .any(|(k, _)| *k == "x-ratelimit-remaining-requests"));
        let r = render(
            Route::Anthropic,
            ErrorCase::RateLimit,
            &Context {
                retry_after: None,
                ..cx()
            },
        );
        assert_eq!(r.body["error"]["type"], "rate_limit_error");
        assert!(r
            .headers
            .iter()
            .any(|(k, _)| *k == "anthropic-ratelimit-requests-remaining"));
        assert!(!r.headers.iter().any(|(k, _)| *k == "retry-after"));
        let r = render(Route::Gemini, ErrorCase::RateLimit, &cx());
        assert_eq!(r.body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(r.body["error"]["details"][0]["retryDelay"], "2s");
    }

    #[test]
    fn anthropic_overloaded_is_529() {
        let r = render(Route::Anthropic, ErrorCase::Overloaded, &cx());
        assert_eq!(r.status, 529);
        assert_eq!(r.body["type"], "error");
        assert_eq!(
            r.body["error"],
            json!({"type": "overloaded_error", "message": "Overloaded"})
        );
        let r = render(Route::Anthropic, ErrorCase::ContextLength, &cx());
        assert_eq!(
            r.body["error"]["message"],
            "prompt is too long: 210000 tokens > 200000 maximum"
        );
    }

    #[test]
    fn stream_errors_are_each_providers_event_payload() {
        assert_eq!(
            stream_error(Route::Openai),
            json!({ "error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error", "param": null, "code": null
            }})
        );
        assert_eq!(
            stream_error(Route::Anthropic),
            json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
        );
        let gemini = stream_error(Route::Gemini);
        assert_eq!(gemini["error"]["code"], 500);
        assert_eq!(gemini["error"]["status"], "INTERNAL");
    }

    #[test]
    fn statuses_map_to_named_cases() {
        assert_eq!(
            render(Route::Openai, ErrorCase::Status(404), &cx()).body["error"]["code"],
            "model_not_found"
        );
        assert_eq!(
            render(Route::Anthropic, ErrorCase::Status(401), &cx()).body["error"]["type"],
            "authentication_error"
        );
        assert_eq!(
            render(Route::Gemini, ErrorCase::Status(403), &cx()).body["error"]["status"],
            "PERMISSION_DENIED"
        );
        assert_eq!(
            render(Route::Openai, ErrorCase::Status(502), &cx()).body["error"]["type"],
            "cf_bad_gateway"
        );
        assert_eq!(
            render(Route::Anthropic, ErrorCase::Status(500), &cx()).body["error"]["type"],
            "api_error"
        );
        assert_eq!(
            render(Route::Gemini, ErrorCase::Status(500), &cx()).status,
            500
        );
    }
}
