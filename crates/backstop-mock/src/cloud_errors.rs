//! The cloud channels' own error responses: Azure OpenAI (OpenAI's shape with Azure's codes,
//! content filter results and rate-limit headers), AWS Bedrock (`{"message"}` with the
//! exception in `x-amzn-ErrorType`) and Vertex AI (Google's shape, except that Claude's
//! model-level errors come in Anthropic's).

use serde_json::{json, Value};

use crate::errors::{anthropic, gemini, goog, oai, openai, reason, Context, ErrorCase, ErrorReply};

/// Azure's answer for `case`.
pub(crate) fn azure(case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    match case {
        ErrorCase::RateLimit => {
            let wait = cx.retry_after.unwrap_or("1");
            let mut reply = azure_error(
                429,
                "429",
                format!(
                    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have \
                     exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after {wait} \
                     seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase \
                     the default rate limit."
                ),
            );
            let millis = wait.parse::<u64>().map_or(1000, |s| s * 1000);
            reply.headers.push(("retry-after-ms", millis.to_string()));
            reply.headers.push(("x-ratelimit-remaining-tokens", "0".to_owned()));
            reply
        }
        ErrorCase::ContentFilter => {
            let filtered = json!({ "filtered": true, "severity": "high" });
            let safe = json!({ "filtered": false, "severity": "safe" });
            ErrorReply {
                status: 400,
                body: json!({ "error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management \
                                policy. Please modify your prompt and retry. To learn more about our content filtering \
                                policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
                    "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {
                            "hate": safe, "jailbreak": { "filtered": false, "detected": false },
                            "self_harm": safe, "sexual": safe, "violence": filtered
                        }
                    }
                }}),
                headers: Vec::new(),
            }
        }
        ErrorCase::Unauthorized => azure_error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key \
             for an active subscription and use a correct regional API endpoint for your resource.",
        ),
        ErrorCase::UnknownModel => azure_error(
            404,
            "DeploymentNotFound",
            format!(
                "The API deployment for this resource does not exist. If you created the deployment within the last \
                 5 minutes, please wait a moment and try again. ({})",
                cx.model
            ),
        ),
        other => openai(other, cx),
    }
}

fn azure_error(status: u16, code: &str, message: impl Into<String>) -> ErrorReply {
    let mut reply = oai(
        status,
        message.into(),
        Value::Null,
        Value::Null,
        json!(code),
    );
    if let Some(error) = reply.body["error"].as_object_mut() {
        error.retain(|key, _| key == "code" || key == "message");
    }
    reply
}

/// Bedrock's answer for `case`.
pub(crate) fn bedrock(case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    match case {
        ErrorCase::RateLimit => aws(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        ErrorCase::Overloaded => aws(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
        ErrorCase::ContextLength => aws(400, "ValidationException", "Input is too long for requested model."),
        ErrorCase::ContentFilter => {
            aws(400, "ValidationException", "Output blocked by content filtering policy")
        }
        ErrorCase::Unauthorized => aws(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        ),
        ErrorCase::Forbidden => aws(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        ErrorCase::InsufficientQuota => aws(
            400,
            "ServiceQuotaExceededException",
            "Your request exceeded the service quota for your account. You can view your quotas at \
             https://docs.aws.amazon.com/servicequotas/latest/userguide/gs-request-quota.html.",
        ),
        ErrorCase::UnknownModel => aws(
            400,
            "ValidationException",
            format!("The provided model identifier is invalid. ({})", cx.model),
        ),
        ErrorCase::RejectPrefill => aws(400, "ValidationException", crate::errors::PREFILL),
        ErrorCase::Invalid(message) => aws(400, "ValidationException", message),
        ErrorCase::Status(status) => match status {
            424 => aws(424, "ModelErrorException", "The model returned an error."),
            429 => aws(429, "ThrottlingException", "Too many requests, please wait before trying again."),
            408 => aws(408, "ModelTimeoutException", "Model has timed out in processing the request."),
            503 | 529 => aws(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
            s if s >= 500 => aws(s, "InternalServerException", reason(s)),
            s => aws(s, "ValidationException", reason(s)),
        },
    }
}

fn aws(status: u16, exception: &str, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        status,
        body: json!({ "message": message.into() }),
        headers: vec![
            (
                "x-amzn-errortype",
                format!("{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            ),
            (
                "x-amzn-requestid",
                "7f1b7e2c-0000-4000-8000-backstopmock".to_owned(),
            ),
        ],
    }
}

/// Vertex's answer for `case`: Claude's model-level errors in Anthropic's format, the rest
/// (quota, permission, auth, and every Gemini error) in Google's.
pub(crate) fn vertex(case: ErrorCase, cx: &Context<'_>) -> ErrorReply {
    let claude = cx.model.starts_with("claude");
    match case {
        ErrorCase::RateLimit | ErrorCase::Status(429) => goog(
            429,
            "RESOURCE_EXHAUSTED",
            format!(
                "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base \
                 model: {}. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
                cx.model
            ),
        ),
        ErrorCase::Unauthorized | ErrorCase::Status(401) => goog(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other \
             valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        ),
        ErrorCase::Forbidden | ErrorCase::Status(403) => goog(
            403,
            "PERMISSION_DENIED",
            "Permission 'aiplatform.endpoints.predict' denied on resource (or it may not exist).",
        ),
        ErrorCase::UnknownModel => goog(
            404,
            "NOT_FOUND",
            format!("Publisher Model `{}` not found.", cx.model),
        ),
        other if claude => anthropic(other, cx),
        other => gemini(other, cx),
    }
}
