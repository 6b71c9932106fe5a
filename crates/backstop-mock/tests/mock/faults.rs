//! HTTP-level faults: error bodies per provider, selection, count / window / probability.

use std::time::Duration;

use backstop_mock::{Fault, FaultKind, MockConfig, Route};
use serde_json::{json, Value};

use super::*;

/// Sends one request on `route` and returns status, headers and JSON body.
async fn hit(h: &Harness, route: Route, model: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = match route {
        Route::Openai => h.openai(chat(model)).await,
        Route::Anthropic => h.anthropic(messages(model)).await,
        Route::Gemini => h.gemini(model, "generateContent", contents()).await,
        Route::Models => h.client.get(h.url("/v1/models")).send().await.unwrap(),
        Route::Azure | Route::Bedrock | Route::Vertex => {
            unreachable!("the cloud channels are checked with their official SDKs in tests/e2e")
        }
    };
    let headers = resp.headers().clone();
    let (status, body) = status_json(resp).await;
    (status, headers, body)
}

/// The provider's error "code" for a body: OpenAI `code`/`type`, Anthropic `type`, Gemini `status`.
fn code(route: Route, body: &Value) -> String {
    let e = &body["error"];
    let v = match route {
        Route::Openai | Route::Models => {
            if e["code"].is_string() {
                e["code"].clone()
            } else {
                e["type"].clone()
            }
        }
        Route::Anthropic => e["type"].clone(),
        Route::Gemini | Route::Vertex => e["status"].clone(),
        Route::Azure => e["code"].clone(),
        Route::Bedrock => body["message"].clone(),
    };
    v.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_error_kind_has_each_providers_real_status_and_code() {
    use FaultKind as K;
    let cases: Vec<(FaultKind, [(u16, &str); 3])> = vec![
        (
            K::RateLimit { retry_after: None },
            [
                (429, "rate_limit_exceeded"),
                (429, "rate_limit_error"),
                (429, "RESOURCE_EXHAUSTED"),
            ],
        ),
        (
            K::Overloaded,
            [
                (503, "server_error"),
                (529, "overloaded_error"),
                (503, "UNAVAILABLE"),
            ],
        ),
        (
            K::ContextLength,
            [
                (400, "context_length_exceeded"),
                (400, "invalid_request_error"),
                (400, "INVALID_ARGUMENT"),
            ],
        ),
        (
            K::Unauthorized,
            [
                (401, "invalid_api_key"),
                (401, "authentication_error"),
                (401, "UNAUTHENTICATED"),
            ],
        ),
        (
            K::Forbidden,
            [
                (403, "unsupported_country_region_territory"),
                (403, "permission_error"),
                (403, "PERMISSION_DENIED"),
            ],
        ),
        (
            K::InsufficientQuota,
            [
                (429, "insufficient_quota"),
                (400, "invalid_request_error"),
                (429, "RESOURCE_EXHAUSTED"),
            ],
        ),
        (
            K::UnknownModel,
            [
                (404, "model_not_found"),
                (404, "not_found_error"),
                (404, "NOT_FOUND"),
            ],
        ),
        (
            K::Status {
                status: 500,
                retry_after: None,
            },
            [(500, "server_error"), (500, "api_error"), (500, "INTERNAL")],
        ),
        (
            K::Status {
                status: 502,
                retry_after: None,
            },
            [
                (502, "cf_bad_gateway"),
                (502, "api_error"),
                (502, "UNAVAILABLE"),
            ],
        ),
        (
            K::Status {
                status: 503,
                retry_after: None,
            },
            [
                (503, "server_error"),
                (503, "api_error"),
                (503, "UNAVAILABLE"),
            ],
        ),
        (
            K::Status {
                status: 402,
                retry_after: None,
            },
            [
                (402, "insufficient_quota"),
                (402, "billing_error"),
                (402, "FAILED_PRECONDITION"),
            ],
        ),
        (
            K::Status {
                status: 529,
                retry_after: None,
            },
            [
                (529, "server_error"),
                (529, "overloaded_error"),
                (529, "UNAVAILABLE"),
            ],
        ),
    ];
    let h = Harness::start().await;
    for (kind, expected) in cases {
        for (route, (status, want)) in [Route::Openai, Route::Anthropic, Route::Gemini]
            .into_iter()
            .zip(expected)
        {
            h.mock.clear_faults();
            h.mock.add_fault(Fault::new(kind.clone()).route(route));
            let (got, _, body) = hit(&h, route, "model-x").await;
            assert_eq!(got, status, "{kind:?} on {route:?}: {body}");
            assert_eq!(code(route, &body), want, "{kind:?} on {route:?}: {body}");
            if route == Route::Anthropic {
                assert_eq!(body["type"], "error");
            }
        }
    }
}

#[tokio::test]
async fn wording_of_the_classic_errors() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::new(FaultKind::ContextLength).route(Route::Openai));
    let (_, _, body) = hit(&h, Route::Openai, "gpt-4o").await;
    assert!(body["error"]["message"].as_str().unwrap().starts_with(
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens"
    ));
    h.mock
        .add_fault(Fault::new(FaultKind::ContextLength).route(Route::Anthropic));
    let (_, _, body) = hit(&h, Route::Anthropic, "claude").await;
    assert_eq!(
        body["error"]["message"],
        "prompt is too long: 210000 tokens > 200000 maximum"
    );
    h.mock.add_fault(
        Fault::new(FaultKind::Overloaded)
            .route(Route::Anthropic)
            .model("claude-opus*"),
    );
    let (status, _, body) = hit(&h, Route::Anthropic, "claude-opus-4").await;
    assert_eq!(
        status, 400,
        "the context-length fault comes first in the list"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    h.mock.clear_faults();
    h.mock
        .add_fault(Fault::new(FaultKind::Overloaded).route(Route::Anthropic));
    let (status, _, body) = hit(&h, Route::Anthropic, "claude").await;
    assert_eq!(status, 529);
    assert_eq!(
        body["error"],
        json!({ "type": "overloaded_error", "message": "Overloaded" })
    );
}

#[tokio::test]
async fn content_filter_per_provider() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::ContentFilter));
    let (status, _, body) = hit(&h, Route::Openai, "gpt-4o").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("content_filter"))
    );
    let (status, _, body) = hit(&h, Route::Anthropic, "claude").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Output blocked by content filtering policy"
    );
    let (status, _, body) = hit(&h, Route::Gemini, "gemini-2.0-flash").await;
    assert_eq!(status, 200);
    assert_eq!(body["promptFeedback"]["blockReason"], "SAFETY");
}

#[tokio::test]
async fn rate_limits_with_and_without_retry_after() {
    let h = Harness::start().await;
    h.mock.add_fault(
        Fault::new(FaultKind::Status {
            status: 429,
            retry_after: Some("2".into()),
        })
        .count(1),
    );
    h.mock
        .add_fault(Fault::new(FaultKind::RateLimit { retry_after: None }).count(1));
    let (status, headers, _) = hit(&h, Route::Openai, "gpt-4o").await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(headers["x-ratelimit-reset-requests"], "2s");
    let (status, headers, _) = hit(&h, Route::Anthropic, "claude").await;
    assert_eq!(status, 429);
    assert!(!headers.contains_key("retry-after"));
    assert_eq!(headers["anthropic-ratelimit-requests-remaining"], "0");
    let (status, _, _) = hit(&h, Route::Openai, "gpt-4o").await;
    assert_eq!(status, 200, "both count faults are used up");
}

#[tokio::test]
async fn selection_by_route_and_model_glob() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::status(503).route(Route::Openai).model("gpt-*"));
    assert_eq!(hit(&h, Route::Openai, "gpt-4o").await.0, 503);
    assert_eq!(hit(&h, Route::Openai, "o3-mini").await.0, 200);
    assert_eq!(hit(&h, Route::Anthropic, "gpt-4o").await.0, 200);
    assert_eq!(hit(&h, Route::Models, "").await.0, 200);
    h.mock.add_fault(Fault::status(500).route(Route::Models));
    assert_eq!(hit(&h, Route::Models, "").await.0, 500);
}

#[tokio::test]
async fn count_mode_hits_the_next_n_requests() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::status(503).count(2));
    let statuses = [
        hit(&h, Route::Openai, "a").await.0,
        hit(&h, Route::Gemini, "b").await.0,
        hit(&h, Route::Anthropic, "c").await.0,
    ];
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test(start_paused = true)]
async fn window_mode_follows_tokio_time() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::status(503).window(Duration::ZERO, Some(Duration::from_secs(60))));
    h.mock
        .add_fault(Fault::status(502).window(Duration::from_secs(120), None));
    assert_eq!(hit(&h, Route::Openai, "m").await.0, 503);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(hit(&h, Route::Openai, "m").await.0, 503);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(hit(&h, Route::Openai, "m").await.0, 200);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(hit(&h, Route::Openai, "m").await.0, 502);
    let log = h.mock.requests();
    let gap = log[2].at_ms - log[1].at_ms;
    assert!(
        (2000.0..2100.0).contains(&gap),
        "log times follow tokio time: {gap}"
    );
}

#[tokio::test]
async fn probability_mode_is_reproducible_with_a_seed() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let config = MockConfig {
            seed,
            faults: vec![Fault::status(503).probability(0.5)],
            ..MockConfig::default()
        };
        let h = Harness::with(config).await;
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(hit(&h, Route::Openai, "m").await.0);
        }
        out
    }
    let a = pattern(7).await;
    assert_eq!(a, pattern(7).await);
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn reject_prefill_only_hits_prefilled_requests() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::new(FaultKind::RejectPrefill).count(1));
    assert_eq!(hit(&h, Route::Anthropic, "claude").await.0, 200);
    let mut req = messages("claude-opus-4-6");
    req["messages"] = json!([{ "role": "user", "content": "go" }, { "role": "assistant", "content": "Backstop" }]);
    let (status, body) = status_json(h.anthropic(req).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "This model does not support assistant message prefill. The conversation must end with a user message."
    );
}

#[tokio::test]
async fn wrong_model_is_answered_silently() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::WrongModel {
        name: "gpt-4o-2099-01-01".into(),
    }));
    let (status, _, body) = hit(&h, Route::Openai, "gpt-4o").await;
    assert_eq!(status, 200);
    assert_eq!(body["model"], "gpt-4o-2099-01-01");
    let (_, _, body) = hit(&h, Route::Anthropic, "claude").await;
    assert_eq!(body["model"], "gpt-4o-2099-01-01");
}

#[tokio::test]
async fn malformed_requests_get_provider_400s_and_are_logged() {
    let h = Harness::start().await;
    let resp = h.post("/v1/chat/completions").body("{not json").send();
    let (status, body) = status_json(resp.await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("We could not parse the JSON body"));
    let resp = h
        .anthropic(json!({ "model": "claude", "messages": [{ "role": "user", "content": "x" }] }))
        .await;
    assert_eq!(resp.status(), 400);
    let log = h.mock.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].body, json!("{not json"));
    assert_eq!(log[1].outcome, "status 400");
}

#[tokio::test]
async fn output_filter_answers_200_with_the_filter_as_finish_reason() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::OutputFilter));
    let (status, _, body) = hit(&h, Route::Openai, "gpt-4o").await;
    assert_eq!(status, 200);
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "content_filter", "{body}");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["content_filter_results"]["violence"]["filtered"],
        true
    );
    let (status, _, body) = hit(&h, Route::Anthropic, "claude").await;
    assert_eq!(status, 200);
    assert_eq!(body["stop_reason"], "refusal", "{body}");
    let (status, _, body) = hit(&h, Route::Gemini, "gemini-2.0-flash").await;
    assert_eq!(status, 200);
    assert_eq!(body["candidates"][0]["finishReason"], "SAFETY", "{body}");
}
