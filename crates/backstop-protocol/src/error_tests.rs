use super::*;
use UpstreamErrorKind as K;

const OA: Protocol = Protocol::OpenAi;
const AN: Protocol = Protocol::Anthropic;
const GE: Protocol = Protocol::Gemini;

/// (protocol, status, body, expected kind, expected message fragment)
const TABLE: &[(Protocol, u16, &str, UpstreamErrorKind, &str)] = &[
    // OpenAI
    (
        OA,
        400,
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        K::ContextLength,
        "maximum context length",
    ),
    (
        OA,
        400,
        r#"{"error":{"message":"Input is too long","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}"#,
        K::ContextLength,
        "too long",
    ),
    (
        OA,
        429,
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        K::QuotaExhausted,
        "current quota",
    ),
    (
        OA,
        429,
        r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        K::RateLimited,
        "Rate limit",
    ),
    (
        OA,
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-****.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        K::Unauthorized,
        "Incorrect API key",
    ),
    (
        OA,
        403,
        r#"{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}"#,
        K::PermissionDenied,
        "Country",
    ),
    (
        OA,
        404,
        r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
        K::ModelNotFound,
        "does not exist",
    ),
    (
        OA,
        400,
        r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#,
        K::InvalidRequest,
        "temperature",
    ),
    (
        OA,
        400,
        r#"{"error":{"message":"Your request was rejected as a result of our safety system.","type":"invalid_request_error","param":null,"code":"content_policy_violation"}}"#,
        K::ContentFilter,
        "safety system",
    ),
    (
        OA,
        400,
        r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#,
        K::ContentFilter,
        "content management",
    ),
    (
        OA,
        400,
        r#"{"error":{"message":"blocked","code":"invalid_prompt","innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#,
        K::ContentFilter,
        "blocked",
    ),
    (
        OA,
        500,
        r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
        K::ServerError,
        "server had an error",
    ),
    (
        OA,
        503,
        r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
        K::Overloaded,
        "overloaded",
    ),
    (OA, 502, "<html>Bad gateway</html>", K::ServerError, ""),
    (OA, 504, "", K::Timeout, ""),
    (OA, 408, "", K::Timeout, ""),
    (
        OA,
        402,
        r#"{"error":"payment required"}"#,
        K::QuotaExhausted,
        "payment required",
    ),
    (
        OA,
        400,
        r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","code":400}"#,
        K::ContextLength,
        "4096",
    ),
    (
        OA,
        200,
        r#"{"id":"x","choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":null}}]}"#,
        K::ContentFilter,
        "",
    ),
    // Anthropic
    (
        AN,
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        K::ContextLength,
        "prompt is too long",
    ),
    (
        AN,
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 190000 + 20000 > 200000, decrease input length or `max_tokens` and try again"}}"#,
        K::ContextLength,
        "exceed context limit",
    ),
    (
        AN,
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Output blocked by content filtering policy"}}"#,
        K::ContentFilter,
        "content filtering",
    ),
    (
        AN,
        200,
        r#"{"id":"msg_1","type":"message","role":"assistant","content":[],"stop_reason":"refusal","usage":{"input_tokens":5,"output_tokens":0}}"#,
        K::ContentFilter,
        "",
    ),
    (
        AN,
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#,
        K::QuotaExhausted,
        "credit balance",
    ),
    (
        AN,
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
        K::InvalidRequest,
        "max_tokens",
    ),
    (
        AN,
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        K::Unauthorized,
        "x-api-key",
    ),
    (
        AN,
        403,
        r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#,
        K::PermissionDenied,
        "permission",
    ),
    (
        AN,
        404,
        r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
        K::ModelNotFound,
        "claude-9",
    ),
    (
        AN,
        413,
        r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
        K::InvalidRequest,
        "maximum allowed",
    ),
    (
        AN,
        429,
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
        K::RateLimited,
        "per-minute",
    ),
    (
        AN,
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
        K::ServerError,
        "Internal",
    ),
    (
        AN,
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        K::Overloaded,
        "Overloaded",
    ),
    // Anthropic errors inside a 200 stream
    (
        AN,
        200,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        K::Overloaded,
        "Overloaded",
    ),
    (
        AN,
        200,
        r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
        K::ServerError,
        "Internal",
    ),
    (
        AN,
        200,
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        K::RateLimited,
        "slow down",
    ),
    (
        AN,
        200,
        r#"{"type":"error","error":{"type":"mystery","message":"?"}}"#,
        K::Other,
        "?",
    ),
    // Gemini
    (
        GE,
        400,
        r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
        K::ContextLength,
        "input token count",
    ),
    (
        GE,
        400,
        r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
        K::Unauthorized,
        "API key not valid",
    ),
    (
        GE,
        400,
        r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
        K::PermissionDenied,
        "location",
    ),
    (
        GE,
        400,
        r#"{"error":{"code":400,"message":"Invalid value at 'generation_config.temperature'","status":"INVALID_ARGUMENT"}}"#,
        K::InvalidRequest,
        "temperature",
    ),
    (
        GE,
        429,
        r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]}]}}"#,
        K::RateLimited,
        "current quota",
    ),
    (
        GE,
        429,
        r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#,
        K::QuotaExhausted,
        "current quota",
    ),
    (
        GE,
        403,
        r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#,
        K::PermissionDenied,
        "unregistered",
    ),
    (
        GE,
        404,
        r#"{"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta","status":"NOT_FOUND"}}"#,
        K::ModelNotFound,
        "not found",
    ),
    (
        GE,
        500,
        r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#,
        K::ServerError,
        "internal error",
    ),
    (
        GE,
        503,
        r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
        K::Overloaded,
        "overloaded",
    ),
    (
        GE,
        504,
        r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#,
        K::Timeout,
        "Deadline",
    ),
    (
        GE,
        200,
        r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":8}}"#,
        K::ContentFilter,
        "",
    ),
    (
        GE,
        200,
        r#"{"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]}]}"#,
        K::ContentFilter,
        "",
    ),
    (
        GE,
        200,
        r#"{"candidates":[{"finishReason":"PROHIBITED_CONTENT","index":0}]}"#,
        K::ContentFilter,
        "",
    ),
    (
        GE,
        500,
        r#"[{"error":{"code":500,"message":"wrapped","status":"INTERNAL"}}]"#,
        K::ServerError,
        "wrapped",
    ),
    (
        GE,
        200,
        r#"[{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}]"#,
        K::Overloaded,
        "busy",
    ),
];

#[test]
fn classification_table() {
    for (i, (p, status, body, kind, fragment)) in TABLE.iter().enumerate() {
        let got = classify_error(*p, *status, body.as_bytes());
        assert_eq!(got.kind, *kind, "row {i}: {p} {status} {body}");
        assert!(
            got.message.contains(fragment),
            "row {i}: message {:?} lacks {fragment:?}",
            got.message
        );
    }
}

#[test]
fn error_bodies_have_each_protocols_shape() {
    let oa: Value =
        serde_json::from_slice(&error_body(OA, 429, "rate_limit_error", "slow")).unwrap();
    assert_eq!(
        oa,
        json!({"error":{"message":"slow","type":"rate_limit_error","param":null,"code":"rate_limit_error"}})
    );
    let an: Value =
        serde_json::from_slice(&error_body(AN, 404, "not_found_error", "no \"x\"")).unwrap();
    assert_eq!(
        an,
        json!({"type":"error","error":{"type":"not_found_error","message":"no \"x\""}})
    );
    let ge: Value = serde_json::from_slice(&error_body(GE, 429, "rate_limit_error", "m")).unwrap();
    assert_eq!(ge["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(ge["error"]["code"], 429);
}

#[test]
fn a_field_error_names_its_param_in_openai_only() {
    let kind = "invalid_request_error";
    let message = "messages[2].role: unknown role \"wizard\"";
    let oa: Value = serde_json::from_slice(&error_body_with_param(
        OA,
        400,
        kind,
        "messages[2].role",
        message,
    ))
    .unwrap();
    assert_eq!(
        oa,
        json!({"error":{"message":message,"type":kind,"param":"messages[2].role","code":kind}})
    );
    let an: Value = serde_json::from_slice(&error_body_with_param(
        AN,
        400,
        kind,
        "messages[2].role",
        message,
    ))
    .unwrap();
    assert_eq!(
        an,
        json!({"type":"error","error":{"type":kind,"message":message}})
    );
}

#[test]
fn translate_keeps_message_and_maps_type() {
    let body = TABLE[19].2; // Anthropic prompt too long
    let oa: Value = serde_json::from_slice(&translate_error(AN, OA, 400, body.as_bytes())).unwrap();
    assert_eq!(oa["error"]["type"], "invalid_request_error");
    assert_eq!(oa["error"]["code"], "context_length_exceeded");
    assert!(oa["error"]["message"]
        .as_str()
        .unwrap()
        .contains("prompt is too long"));

    let body = r#"{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}"#;
    let an: Value = serde_json::from_slice(&translate_error(OA, AN, 429, body.as_bytes())).unwrap();
    assert_eq!(
        an,
        json!({"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached"}})
    );

    let an: Value = serde_json::from_slice(&translate_error(GE, AN, 503, b"oops")).unwrap();
    assert_eq!(an["error"]["type"], "api_error");
    assert!(an["error"]["message"].as_str().unwrap().contains("503"));
    let an: Value = serde_json::from_slice(&translate_error(
        AN,
        AN,
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ))
    .unwrap();
    assert_eq!(an["error"]["type"], "overloaded_error");
}
