//! Structured output checked before commit, and corrected on the same target.

use crate::common::*;
use serde_json::{json, Value};

const SCHEMA_MODELS: &str = "[models.extract]\ntargets = [{ provider = \"primary\", model = \"p\" }]\nfallbacks = [\"backup\"]\nstructured = { max_corrections = 2 }\n[models.unchecked]\ntargets = [{ provider = \"primary\", model = \"p\" }]\n";

fn extraction(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "How many?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "count", "strict": true,
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false}}}})
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_breaks_the_schema_is_corrected_on_the_same_target() {
    let s = setup(SCHEMA_MODELS).await;
    fault(
        &s.primary,
        json!({"kind": "answer", "text": "{\"n\": \"three\"}", "count": 1}),
    )
    .await;
    fault(&s.primary, json!({"kind": "answer", "text": "{\"n\": 3}"})).await;
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("extract")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-corrections"], "1");
    assert_eq!(response.headers()["x-backstop-model"], "extract");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "{\"n\": 3}");
    let asked = s.primary.requests();
    assert_eq!(asked.len(), 2);
    let messages = asked[1].body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "{\"n\": \"three\"}");
    let correction = messages[2]["content"].as_str().unwrap();
    assert!(
        correction.starts_with("Your previous answer did not match the schema")
            && correction.contains("/n"),
        "{correction}"
    );
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"backstop_corrections_total{model="extract",outcome="corrected"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn corrections_exhausted_go_to_the_fallback() {
    let s = setup(SCHEMA_MODELS).await;
    fault(
        &s.secondary,
        json!({"kind": "answer", "text": "{\"n\": 7}"}),
    )
    .await;
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("extract")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "{\"n\": 7}");
    assert_eq!(
        s.primary.requests().len(),
        3,
        "the answer and two corrections"
    );
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"backstop_corrections_total{model="extract",outcome="exhausted"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_valid_answer_passes_at_once_in_either_protocol() {
    let s = setup(SCHEMA_MODELS).await;
    fault(&s.primary, json!({"kind": "answer", "text": "{\"n\": 3}"})).await;
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("extract")).await;
    assert_eq!(response.headers()["x-backstop-corrections"], "0");
    let anthropic = json!({"model": "extract", "max_tokens": 100, "messages": [{"role": "user", "content": "How many?"}],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}});
    let response = post_json(&s.gw, "/v1/messages", &anthropic).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-corrections"], "0");
    assert_eq!(s.primary.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_model_without_a_structured_table_relays_answers_unchecked() {
    let s = setup(SCHEMA_MODELS).await;
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("unchecked")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-backstop-corrections").is_none());
    assert_eq!(s.primary.requests().len(), 1);
}
