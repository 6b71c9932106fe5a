//! Resilience behaviours end to end: what the mock upstreams saw, attempt by attempt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use common::*;
use std::time::Duration;

async fn ask(gw: &TestGateway, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat(model, false))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn retry_after_is_honoured_before_the_second_attempt() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&two_upstreams(
        &primary,
        &secondary,
        "[models.gpt.retry]\nmax_delay = \"5s\"\n",
    ))
    .await;
    fault(
        &primary,
        serde_json::json!({"kind": "rate_limit", "retry_after": "1", "count": 1}),
    )
    .await;
    let response = ask(&gw, "gpt").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
    let seen = primary.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at_ms - seen[0].at_ms;
    assert!(
        gap >= 1000.0,
        "second attempt only {gap} ms after the first"
    );
    assert!(gap < 1500.0, "waited {gap} ms for a 1 s hint");
}

#[tokio::test]
async fn a_hint_longer_than_max_delay_moves_on_at_once() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&two_upstreams(&primary, &secondary, "")).await;
    fault(
        &primary,
        serde_json::json!({"kind": "rate_limit", "retry_after": "30"}),
    )
    .await;
    let started = std::time::Instant::now();
    let response = ask(&gw, "gpt").await;
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(primary.requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unauthorized_channel_opens_its_breaker_and_the_other_serves() {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = "[models.multi]\ntargets = [{ provider = \"primary\", model = \"m\" }, { provider = \"secondary\", model = \"m\" }]\n";
    let gw = gateway(&two_upstreams(&primary, &secondary, extra)).await;
    fault(&primary, serde_json::json!({"kind": "unauthorized"})).await;
    for _ in 0..6 {
        let response = ask(&gw, "multi").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-backstop-target"], "secondary/m");
    }
    assert_eq!(
        primary.requests().len(),
        1,
        "a broken target is called once, then its circuit is open"
    );
    assert_eq!(secondary.requests().len(), 6);
}

#[tokio::test]
async fn context_length_skips_to_a_larger_model_after_one_attempt() {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = r#"
[models.small]
targets = [{ provider = "primary", model = "small-model" }]
context_window = 8000
fallbacks = ["tiny", "big"]
[models.tiny]
targets = [{ provider = "secondary", model = "tiny-model" }]
context_window = 4000
[models.big]
targets = [{ provider = "secondary", model = "big-model" }]
context_window = 200000
"#;
    let gw = gateway(&two_upstreams(&primary, &secondary, extra)).await;
    fault(&primary, serde_json::json!({"kind": "context_length"})).await;
    let response = ask(&gw, "small").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "big");
    assert_eq!(primary.requests().len(), 1);
    let models: Vec<String> = secondary.requests().into_iter().map(|r| r.model).collect();
    assert_eq!(
        models,
        vec!["big-model".to_string()],
        "the smaller window is skipped"
    );
}

#[tokio::test]
async fn a_content_filter_refusal_is_not_retried_and_goes_to_the_fallback() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&two_upstreams(&primary, &secondary, "")).await;
    fault(&primary, serde_json::json!({"kind": "content_filter"})).await;
    let response = ask(&gw, "gpt").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(primary.requests().len(), 1);
}

#[tokio::test]
async fn a_content_filter_refusal_is_returned_when_the_model_says_so() {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = "[models.strict]\ntargets = [{ provider = \"primary\", model = \"s\" }]\nfallbacks = [\"backup\"]\non_content_filter = \"return\"\n";
    let gw = gateway(&two_upstreams(&primary, &secondary, extra)).await;
    fault(&primary, serde_json::json!({"kind": "content_filter"})).await;
    let response = ask(&gw, "strict").await;
    assert_eq!(response.status(), 400);
    assert_eq!(secondary.requests().len(), 0);
    assert_eq!(response.headers()["x-backstop-attempts"], "1");
}

#[tokio::test]
async fn a_reset_connection_is_retried() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&two_upstreams(&primary, &secondary, "")).await;
    fault(&primary, serde_json::json!({"kind": "reset", "count": 1})).await;
    let response = ask(&gw, "gpt").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "gpt");
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
}

#[tokio::test]
async fn an_open_circuit_fails_fast_with_retry_after() {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = "[models.solo]\ntargets = [{ provider = \"primary\", model = \"s\" }]\n[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"30s\"\n";
    let gw = gateway(&two_upstreams(&primary, &secondary, extra)).await;
    fault(
        &primary,
        serde_json::json!({"kind": "status", "status": 503}),
    )
    .await;
    let first = ask(&gw, "solo").await;
    assert_eq!(first.status(), 503);
    let calls = primary.requests().len();
    let fast = ask(&gw, "solo").await;
    assert_eq!(fast.status(), 503);
    assert_eq!(
        primary.requests().len(),
        calls,
        "an open circuit costs no upstream call"
    );
    let retry_after: u64 = fast.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (25..=30).contains(&retry_after),
        "retry-after {retry_after}"
    );
    let body: serde_json::Value = fast.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("circuit open"));
}
