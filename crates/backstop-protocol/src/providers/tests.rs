use super::*;
use serde_json::Value;

const BASES: [&str; 2] = [
    "https://llm.example.com/api",
    "https://llm.example.com/api/",
];

fn endpoints(kind: ProviderKind, base: &str, model: &str) -> [String; 2] {
    let spec = kind.spec();
    [
        spec.endpoint(base, model, false),
        spec.endpoint(base, model, true),
    ]
}

#[test]
fn every_kind_has_its_own_spec_under_its_name() {
    for kind in ProviderKind::ALL {
        let spec = kind.spec();
        assert_eq!(spec.kind, kind);
        assert_eq!(ProviderKind::from_name(spec.name), Some(kind));
        assert_eq!(kind.to_string(), spec.name);
        assert_eq!(kind.is_channel(), !ProviderKind::NATIVE.contains(&kind));
    }
    for kind in ProviderKind::NATIVE {
        let spec = kind.spec();
        assert_eq!(ProviderKind::native(spec.protocol), kind);
        assert_eq!(spec.name, spec.protocol.as_str());
        assert_eq!(spec.base_url(None, &[]), spec.default_base_url);
    }
    assert_eq!(ProviderKind::from_name("watsonx"), None);
    assert_eq!(ProviderKind::from_name("OpenAI"), None);
}

#[test]
fn openai() {
    let spec = ProviderKind::OpenAi.spec();
    for base in BASES {
        let url = "https://llm.example.com/api/chat/completions";
        assert_eq!(endpoints(ProviderKind::OpenAi, base, "gpt-4o"), [url, url]);
    }
    assert_eq!(
        spec.auth_header("sk-1"),
        ("authorization", "Bearer sk-1".to_string())
    );
    assert_eq!(spec.version_header(None), None);
    assert_eq!(spec.version_header(Some("2024-01-01".into())), None);
    assert_eq!(spec.default_base_url, "https://api.openai.com/v1");
    assert_eq!(spec.forwarded_headers, ["openai-beta"]);
    let done = spec.stream_terminator.unwrap();
    assert_eq!((done.event, done.data), (None, "[DONE]"));
    assert!(spec.usage_after_finish && spec.usage_needs_stream_options);
    assert!(!spec.continues_prefill);
    assert_eq!(spec.api_key_env, "OPENAI_API_KEY");
    for model in [
        "gpt-4o",
        "o1-mini",
        "o3",
        "o4-mini",
        "chatgpt-4o-latest",
        "codex-mini",
    ] {
        assert!(spec.owns_model(model), "{model}");
    }
    assert!(!spec.owns_model("claude-3-5-haiku"));
}

#[test]
fn anthropic() {
    let spec = ProviderKind::Anthropic.spec();
    for base in BASES {
        let url = "https://llm.example.com/api/v1/messages";
        assert_eq!(
            endpoints(ProviderKind::Anthropic, base, "claude-sonnet-4"),
            [url, url]
        );
    }
    assert_eq!(
        spec.auth_header("sk-ant"),
        ("x-api-key", "sk-ant".to_string())
    );
    assert_eq!(
        spec.version_header(None),
        Some(("anthropic-version", "2023-06-01".to_string()))
    );
    assert_eq!(
        spec.version_header(Some("2024-10-22".into())),
        Some(("anthropic-version", "2024-10-22".to_string()))
    );
    assert_eq!(spec.default_base_url, "https://api.anthropic.com");
    assert_eq!(spec.forwarded_headers, ["anthropic-beta"]);
    let stop = spec.stream_terminator.unwrap();
    assert_eq!(
        (stop.event, stop.data),
        (Some("message_stop"), r#"{"type":"message_stop"}"#)
    );
    assert!(!spec.usage_after_finish && !spec.usage_needs_stream_options);
    assert!(spec.continues_prefill);
    assert_eq!(spec.api_key_env, "ANTHROPIC_API_KEY");
    assert!(spec.owns_model("claude-3-5-haiku"));
    assert!(!spec.owns_model("gpt-4o"));
}

#[test]
fn gemini() {
    let spec = ProviderKind::Gemini.spec();
    for base in BASES {
        assert_eq!(
            endpoints(ProviderKind::Gemini, base, "gemini-2.0-flash"),
            [
                "https://llm.example.com/api/v1beta/models/gemini-2.0-flash:generateContent",
                "https://llm.example.com/api/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            ]
        );
    }
    assert_eq!(
        spec.auth_header("AIza"),
        ("x-goog-api-key", "AIza".to_string())
    );
    assert_eq!(spec.version_header(None), None);
    assert_eq!(
        spec.default_base_url,
        "https://generativelanguage.googleapis.com"
    );
    assert!(spec.forwarded_headers.is_empty());
    assert_eq!(spec.stream_terminator, None);
    assert!(!spec.usage_after_finish && !spec.usage_needs_stream_options);
    assert!(!spec.continues_prefill);
    assert_eq!(spec.api_key_env, "GEMINI_API_KEY");
    assert!(spec.owns_model("gemini-2.5-pro") && spec.owns_model("gemma-3"));
    assert!(!spec.owns_model("gpt-4o"));
}

#[test]
fn model_prefixes_do_not_overlap() {
    for model in ["gpt-4o", "o3", "claude-opus-4", "gemini-2.5-pro", "gemma-3"] {
        let owners = ProviderKind::NATIVE
            .iter()
            .filter(|kind| kind.spec().owns_model(model))
            .count();
        assert_eq!(owners, 1, "{model}");
    }
    for model in [
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-opus-4",
    ] {
        let owners = ProviderKind::ALL
            .iter()
            .filter(|kind| kind.spec().owns_model(model))
            .count();
        assert_eq!(owners, 1, "{model}");
    }
    assert!(ProviderKind::Bedrock
        .spec()
        .owns_model("arn:aws:bedrock:us-east-1:123456789012:inference-profile/x"));
    assert!(ProviderKind::ALL
        .iter()
        .all(|kind| !kind.spec().owns_model("llama-3")));
}

#[test]
fn error_quirks_are_the_providers_own() {
    // A 429 worded as a quota: a rate limit at Gemini, exhausted billing elsewhere.
    let body = br#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED"}}"#;
    let kind_at = |kind: ProviderKind| kind.spec().classify_error(429, body).kind;
    assert_eq!(
        kind_at(ProviderKind::Gemini),
        crate::UpstreamErrorKind::RateLimited
    );
    assert_eq!(
        kind_at(ProviderKind::OpenAi),
        crate::UpstreamErrorKind::QuotaExhausted
    );
    // Each provider's own refusal in a successful body.
    let refusals: [(ProviderKind, &[u8]); 3] = [
        (
            ProviderKind::OpenAi,
            br#"{"choices":[{"finish_reason":"content_filter"}]}"#,
        ),
        (ProviderKind::Anthropic, br#"{"stop_reason":"refusal"}"#),
        (
            ProviderKind::Gemini,
            br#"[{"candidates":[{"finishReason":"SAFETY"}]}]"#,
        ),
    ];
    for (kind, body) in refusals {
        for other in ProviderKind::NATIVE {
            let expected = if other == kind {
                crate::UpstreamErrorKind::ContentFilter
            } else {
                crate::UpstreamErrorKind::Other
            };
            assert_eq!(
                other.spec().classify_error(200, body).kind,
                expected,
                "{kind} body at {other}"
            );
        }
    }
}

#[test]
fn a_model_name_stays_one_path_segment() {
    let spec = ProviderKind::Gemini.spec();
    assert_eq!(
        spec.endpoint("https://g.example", "gemini-2.5-flash", false),
        "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        spec.endpoint("https://g.example", "x/../y:streamGenerateContent?key=k#", false),
        "https://g.example/v1beta/models/x%2F..%2Fy%3AstreamGenerateContent%3Fkey%3Dk%23:generateContent"
    );
    assert_eq!(
        spec.endpoint("https://g.example", "claude-sonnet-4-5@20250929", true),
        "https://g.example/v1beta/models/claude-sonnet-4-5@20250929:streamGenerateContent?alt=sse"
    );
}

#[test]
fn azure_speaks_openai_at_a_deployment_with_an_api_version() {
    let spec = ProviderKind::Azure.spec();
    let base = spec.base_url(Some("https://res.openai.azure.com/"), &[]);
    assert_eq!(
        spec.endpoint(&base, "gpt4o-prod", true),
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
    );
    assert_eq!(spec.protocol, Protocol::OpenAi);
    assert_eq!(spec.auth_header("k"), ("api-key", "k".to_string()));
    let query = spec.version_query.unwrap();
    assert_eq!((query.name, query.default), ("api-version", "2024-10-21"));
    let filtered = br#"{"error":{"code":"content_filter","message":"The response was filtered","innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"violence":{"filtered":true}}}}}"#;
    assert_eq!(
        spec.classify_error(400, filtered).kind,
        crate::UpstreamErrorKind::ContentFilter
    );
    let refused = br#"{"choices":[{"finish_reason":"content_filter"}]}"#;
    assert_eq!(
        spec.classify_error(200, refused).kind,
        crate::UpstreamErrorKind::ContentFilter
    );
    let tokens = br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#;
    assert_eq!(
        spec.classify_error(429, tokens).kind,
        crate::UpstreamErrorKind::RateLimited
    );
}

#[test]
fn bedrock_invokes_the_model_in_the_url_with_the_version_in_the_body() {
    let spec = ProviderKind::Bedrock.spec();
    let base = spec.base_url(None, &[("region", "us-east-1")]);
    assert_eq!(base, "https://bedrock-runtime.us-east-1.amazonaws.com");
    let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    assert_eq!(
        spec.endpoint(&base, model, false),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    );
    assert_eq!(
        spec.endpoint(&base, "arn:aws:bedrock:us-east-1:1:inference-profile/x", true),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/invoke-with-response-stream"
    );
    assert_eq!(spec.framing, Framing::AwsEventStream);
    assert_eq!(spec.auth, Auth::SigV4 { service: "bedrock" });
    let body = spec
        .adapt_body(
            br#"{"model":"m","stream":true,"max_tokens":5,"messages":[]}"#,
            None,
        )
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"max_tokens":5,"messages":[],"anthropic_version":"bedrock-2023-05-31"})
    );
    let body = spec
        .adapt_body(br#"{"model":"m"}"#, Some("bedrock-2099-01-01"))
        .unwrap();
    assert_eq!(&body[..], br#"{"anthropic_version":"bedrock-2099-01-01"}"#);
    assert!(spec.adapt_body(b"[1]", None).is_err());
    use crate::UpstreamErrorKind as K;
    let cases: [(u16, &[u8], K); 6] = [
        (
            429,
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            K::RateLimited,
        ),
        (
            429,
            br#"{"message":"Model is not ready to serve inference requests."}"#,
            K::RateLimited,
        ),
        (
            503,
            br#"{"message":"Bedrock is unable to process your request."}"#,
            K::ServerError,
        ),
        (
            400,
            br#"{"message":"Input is too long for requested model."}"#,
            K::ContextLength,
        ),
        (
            403,
            br#"{"message":"You don't have access to the model with the specified model ID."}"#,
            K::PermissionDenied,
        ),
        (
            400,
            br#"{"message":"Malformed input request: extraneous key [x] is not permitted"}"#,
            K::InvalidRequest,
        ),
    ];
    for (status, body, kind) in cases {
        assert_eq!(
            spec.classify_error(status, body).kind,
            kind,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn vertex_picks_the_publisher_by_model_and_the_host_by_location() {
    let claude = ProviderKind::Vertex.spec_for("claude-sonnet-4-5@20250929");
    let gemini = ProviderKind::Vertex.spec_for("gemini-2.5-flash");
    assert_eq!(
        (claude.protocol, gemini.protocol),
        (Protocol::Anthropic, Protocol::Gemini)
    );
    let vars = [("project", "p-1"), ("location", "us-east5")];
    let base = claude.base_url(None, &vars);
    assert_eq!(
        base,
        "https://us-east5-aiplatform.googleapis.com/v1/projects/p-1/locations/us-east5"
    );
    assert_eq!(
        claude.endpoint(&base, "claude-sonnet-4-5@20250929", true),
        format!("{base}/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict")
    );
    assert_eq!(
        gemini.endpoint(&base, "gemini-2.5-flash", true),
        format!("{base}/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    );
    let global = claude.base_url(None, &[("project", "p"), ("location", "global")]);
    assert_eq!(
        global,
        "https://aiplatform.googleapis.com/v1/projects/p/locations/global"
    );
    let mock = claude.base_url(Some("http://127.0.0.1:9/"), &vars);
    assert_eq!(
        mock,
        "http://127.0.0.1:9/v1/projects/p-1/locations/us-east5"
    );
    let body = claude
        .adapt_body(br#"{"model":"m","stream":true}"#, None)
        .unwrap();
    assert_eq!(
        &body[..],
        br#"{"anthropic_version":"vertex-2023-10-16","stream":true}"#
    );
    assert_eq!(
        &gemini.adapt_body(br#"{"contents":[]}"#, None).unwrap()[..],
        br#"{"contents":[]}"#
    );
    use crate::UpstreamErrorKind as K;
    let quota = br#"{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: claude.","status":"RESOURCE_EXHAUSTED"}}"#;
    assert_eq!(claude.classify_error(429, quota).kind, K::RateLimited);
    let denied = br#"{"error":{"code":403,"message":"Permission 'aiplatform.endpoints.predict' denied","status":"PERMISSION_DENIED"}}"#;
    assert_eq!(claude.classify_error(403, denied).kind, K::PermissionDenied);
    let long = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
    assert_eq!(claude.classify_error(400, long).kind, K::ContextLength);
    let overloaded =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(claude.classify_error(529, overloaded).kind, K::Overloaded);
}

#[test]
fn openai_responses_api_is_its_own_spec() {
    let spec = ProviderKind::OpenAi
        .responses_spec()
        .expect("OpenAI speaks the Responses API");
    assert_eq!(spec.protocol, Protocol::Responses);
    assert_eq!(spec.kind, ProviderKind::OpenAi);
    for base in BASES {
        for stream in [false, true] {
            assert_eq!(
                spec.endpoint(base, "gpt-4.1", stream),
                "https://llm.example.com/api/responses"
            );
        }
    }
    assert_eq!(spec.stream_terminator, None);
    assert!(!spec.usage_needs_stream_options && !spec.usage_after_finish);
    assert!(std::ptr::eq(
        ProviderKind::native_spec(Protocol::Responses),
        spec
    ));
    assert!(std::ptr::eq(
        ProviderKind::native_spec(Protocol::OpenAi),
        ProviderKind::OpenAi.spec()
    ));
    for kind in ProviderKind::ALL.into_iter().skip(1) {
        assert!(kind.responses_spec().is_none(), "{kind}");
    }
    let cut = br#"{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}"#;
    let classified = spec.classify_error(200, cut);
    assert_eq!(classified.kind, crate::UpstreamErrorKind::ContentFilter);
}
