use super::*;

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
        assert_eq!(ProviderKind::native(spec.protocol), kind);
        assert_eq!(spec.name, spec.protocol.as_str());
    }
    assert_eq!(ProviderKind::from_name("azure"), None);
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
        let owners = ProviderKind::ALL
            .iter()
            .filter(|kind| kind.spec().owns_model(model))
            .count();
        assert_eq!(owners, 1, "{model}");
    }
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
        for other in ProviderKind::ALL {
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
