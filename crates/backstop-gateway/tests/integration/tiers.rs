//! Degraded tiers: the static answer of a model whose every target failed.

use crate::common::*;
use serde_json::json;

const STATIC: &str = "[models.steady]\ntargets = [{ provider = \"primary\", model = \"p\" }]\nfallbacks = [\"backup\"]\nstatic_response = \"The assistant is unavailable right now. Please try again in a few minutes.\"\n";

#[tokio::test(start_paused = true)]
async fn a_model_whose_targets_all_fail_answers_with_its_static_response() {
    let s = setup(STATIC).await;
    fault(&s.primary, json!({"kind": "status", "status": 503})).await;
    fault(&s.secondary, json!({"kind": "status", "status": 503})).await;
    let response = s.ask("steady", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-tier"], "static");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("The assistant is unavailable"));

    let anthropic = json!({"model": "steady", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = post_json(&s.gw, "/v1/messages", &anthropic).await;
    assert_eq!(response.headers()["x-backstop-tier"], "static");
    let text = response.text().await.unwrap();
    assert!(
        text.contains("event: message_stop") && text.contains("unavailable right now"),
        "{text}"
    );

    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"backstop_requests_total{model="steady",tier="static",status="200"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_the_upstream_rejects_gets_the_rejection_not_the_static_answer() {
    let s = setup(STATIC).await;
    fault(&s.primary, json!({"kind": "status", "status": 400})).await;
    let response = s.ask("steady", false).await;
    assert_eq!(response.status(), 400);
    assert!(response
        .headers()
        .get("x-backstop-tier")
        .is_none_or(|t| t != "static"));
}
