//! Resilience behaviours end to end: what the mock upstreams saw, attempt by attempt.

use crate::common::*;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_the_second_attempt() {
    let s = setup("[models.gpt.retry]\nmax_delay = \"5s\"\n").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "rate_limit", "retry_after": "2", "count": 1}),
    )
    .await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
    let seen = s.primary.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at_ms - seen[0].at_ms;
    assert!(
        gap >= 1000.0,
        "second attempt only {gap} ms after the first"
    );
    assert!(gap < 2600.0, "waited {gap} ms for a 2 s hint");
}

#[tokio::test(start_paused = true)]
async fn a_hint_longer_than_max_delay_moves_on_at_once() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "rate_limit", "retry_after": "30"}),
    )
    .await;
    let started = tokio::time::Instant::now();
    let response = s.ask("gpt", false).await;
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(s.primary.requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn an_unauthorized_channel_opens_its_breaker_and_the_other_serves() {
    let s = setup(
        "[models.multi]\ntargets = [{ provider = \"primary\", model = \"m\" }, { provider = \"secondary\", model = \"m\" }]\n",
    )
    .await;
    fault(&s.primary, serde_json::json!({"kind": "unauthorized"})).await;
    // Balancing picks either channel first; over 20 requests the broken one comes first at
    // least once (all but one in a million runs), and only that once is it called.
    for _ in 0..20 {
        let response = s.ask("multi", false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-backstop-target"], "secondary/m");
    }
    assert_eq!(
        s.primary.requests().len(),
        1,
        "a broken target is called once, then its circuit is open"
    );
    assert_eq!(s.secondary.requests().len(), 20);
}

/// A model on two channels (upstream model `m` on each mock) with `backup` as its fallback.
const TWO_CHANNELS: &str = "[models.duo]\ntargets = [{ provider = \"primary\", model = \"m\" }, { provider = \"secondary\", model = \"m\" }]\nfallbacks = [\"backup\"]\n";

/// Calls each mock saw for upstream model `m`, and calls for the fallback's model.
fn channel_calls(s: &Setup) -> (usize, usize, usize) {
    let count = |mock: &backstop_mock::MockServer, model: &str| {
        mock.requests().iter().filter(|r| r.model == model).count()
    };
    (
        count(&s.primary, "m"),
        count(&s.secondary, "m"),
        count(&s.secondary, "gpt-4o-backup"),
    )
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_moves_to_the_models_other_channel_before_retrying_in_place() {
    let s = setup(TWO_CHANNELS).await;
    for mock in [&s.primary, &s.secondary] {
        fault(
            mock,
            serde_json::json!({"kind": "status", "status": 503, "model": "m", "count": 1}),
        )
        .await;
    }
    let response = s.ask("duo", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "duo");
    assert_eq!(response.headers()["x-backstop-attempts"], "3");
    let (primary, secondary, backup) = channel_calls(&s);
    // Whichever channel came first failed once and was left for the other one, whose own
    // failure was then retried in place: one call on the first, two on the second.
    let mut calls = [primary, secondary];
    calls.sort_unstable();
    assert_eq!(calls, [1, 2], "primary {primary}, secondary {secondary}");
    let served_by = if primary == 2 {
        "primary/m"
    } else {
        "secondary/m"
    };
    assert_eq!(response.headers()["x-backstop-target"], served_by);
    assert_eq!(backup, 0, "the fallback model is not called");
}

#[tokio::test(start_paused = true)]
async fn the_fallback_model_comes_after_every_channel_of_the_model() {
    let s = setup(TWO_CHANNELS).await;
    for mock in [&s.primary, &s.secondary] {
        fault(
            mock,
            serde_json::json!({"kind": "status", "status": 503, "model": "m"}),
        )
        .await;
    }
    let response = s.ask("duo", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    let (primary, secondary, backup) = channel_calls(&s);
    let mut calls = [primary, secondary];
    calls.sort_unstable();
    assert_eq!(
        calls,
        [1, 3],
        "one call on the first channel, max_attempts on the last one"
    );
    assert_eq!(backup, 1);
}

#[tokio::test(start_paused = true)]
async fn context_length_skips_to_a_larger_model_after_one_attempt() {
    let s = setup(
        r#"
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
"#,
    )
    .await;
    fault(&s.primary, serde_json::json!({"kind": "context_length"})).await;
    let response = s.ask("small", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "big");
    assert_eq!(s.primary.requests().len(), 1);
    let models = models_seen(&s.secondary);
    assert_eq!(
        models,
        vec!["big-model".to_string()],
        "the smaller window is skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_content_filter_refusal_is_not_retried_and_goes_to_the_fallback() {
    let s = setup("").await;
    fault(&s.primary, serde_json::json!({"kind": "content_filter"})).await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(s.primary.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_content_filter_refusal_is_returned_when_the_model_says_so() {
    let s = setup(
        "[models.strict]\ntargets = [{ provider = \"primary\", model = \"s\" }]\nfallbacks = [\"backup\"]\non_content_filter = \"return\"\n",
    )
    .await;
    fault(&s.primary, serde_json::json!({"kind": "content_filter"})).await;
    let response = s.ask("strict", false).await;
    assert_eq!(response.status(), 400);
    assert_eq!(s.secondary.requests().len(), 0);
    assert_eq!(response.headers()["x-backstop-attempts"], "1");
}

#[tokio::test(start_paused = true)]
async fn a_reset_connection_is_retried() {
    let s = setup("").await;
    fault(&s.primary, serde_json::json!({"kind": "reset", "count": 1})).await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "gpt");
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_fails_fast_with_retry_after() {
    let s = setup(
        "[models.solo]\ntargets = [{ provider = \"primary\", model = \"s\" }]\n[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"30s\"\n",
    )
    .await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "status", "status": 503}),
    )
    .await;
    assert_eq!(s.ask("solo", false).await.status(), 503);
    let calls = s.primary.requests().len();
    let fast = s.ask("solo", false).await;
    assert_eq!(fast.status(), 503);
    assert_eq!(
        s.primary.requests().len(),
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

#[tokio::test(start_paused = true)]
async fn a_primary_down_then_back_is_served_by_the_fallback_then_the_primary_again() {
    let s = setup(
        "[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"1s\"\nsuccess_threshold = 1\n",
    )
    .await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "status", "status": 503, "window": ["0s", "3s"]}),
    )
    .await;
    let started = tokio::time::Instant::now();
    let mut served = Vec::new();
    while started.elapsed() < Duration::from_millis(5500) {
        let response = s.ask("gpt", false).await;
        assert_eq!(response.status(), 200, "every request is answered");
        served.push((
            started.elapsed(),
            response.headers()["x-backstop-model"]
                .to_str()
                .unwrap()
                .to_string(),
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let during: Vec<_> = served
        .iter()
        .filter(|(t, _)| *t < Duration::from_millis(2800))
        .collect();
    assert!(
        during.iter().all(|(_, model)| model == "backup"),
        "{served:?}"
    );
    let primary_calls_during = s
        .primary
        .requests()
        .iter()
        .filter(|r| r.at_ms < 3000.0)
        .count();
    assert!(
        primary_calls_during <= 8,
        "the open circuit spares the dead primary: {primary_calls_during} calls"
    );
    let recovered = served
        .iter()
        .find(|(t, model)| *t > Duration::from_secs(3) && model == "gpt");
    let recovered_at = recovered.map(|(t, _)| *t).expect("back on the primary");
    assert!(
        recovered_at < Duration::from_millis(4500),
        "back on the primary within one open_for: {served:?}"
    );
    assert_eq!(served.last().map(|(_, m)| m.as_str()), Some("gpt"));
}

#[tokio::test(start_paused = true)]
async fn persistent_429_is_bounded_then_the_fallback_answers_with_its_own_name_and_usage() {
    let s = setup("").await;
    fault(&s.primary, serde_json::json!({"kind": "rate_limit"})).await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(
        response.headers()["x-backstop-target"],
        "secondary/gpt-4o-backup"
    );
    assert_eq!(
        s.primary.requests().len(),
        3,
        "max_attempts bounds the retries"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["model"], "gpt-4o-backup",
        "the body names the model that served"
    );
    assert_eq!(body["usage"]["completion_tokens"], 60);
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_token_past_first_byte_fails_over() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "slow_first_token", "delay": "5s"}),
    )
    .await;
    let started = tokio::time::Instant::now();
    let response = s.ask("gpt", true).await;
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert!(response.text().await.unwrap().contains("[DONE]"));
    assert_eq!(
        s.primary.requests().len(),
        1,
        "a silent stream is not retried in place"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}
