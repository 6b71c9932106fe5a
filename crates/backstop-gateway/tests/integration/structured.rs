//! Structured output checked before commit, and corrected on the same target.

use crate::common::*;
use serde_json::{json, Value};

const SCHEMA_MODELS: &str = "[models.extract]\ntargets = [{ provider = \"primary\", model = \"p\" }]\nfallbacks = [\"backup\"]\nstructured = { max_corrections = 2 }\n[models.plain]\ntargets = [{ provider = \"primary\", model = \"p\" }]\n[models.unchecked]\ntargets = [{ provider = \"primary\", model = \"p\" }]\nstructured = { check = false }\n";

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
    fault(&s.primary, json!({"kind": "answer", "text": "three"})).await;
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
async fn answers_are_checked_by_default_and_not_where_checking_is_off() {
    let s = setup(SCHEMA_MODELS).await;
    // The mock answers with JSON of the asked schema: valid at once.
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("plain")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-corrections"], "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "{\"n\":1}");
    let invalid_once = json!({"kind": "answer", "text": "three", "count": 1});
    fault(&s.primary, invalid_once.clone()).await;
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("plain")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-corrections"], "1");
    assert_eq!(s.primary.requests().len(), 3);
    fault(&s.primary, invalid_once).await;
    let response = post_json(&s.gw, "/v1/chat/completions", &extraction("unchecked")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-backstop-corrections").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "three");
    assert_eq!(s.primary.requests().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_structured_answer_is_checked_whole_and_streamed_once_valid() {
    let s = setup(SCHEMA_MODELS).await;
    fault(
        &s.primary,
        json!({"kind": "answer", "text": "{\"n\": \"three\"}", "count": 1}),
    )
    .await;
    let mut request = extraction("extract");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = post_json(&s.gw, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-backstop-corrections"], "1");
    let events = sse_data(&response.text().await.unwrap());
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text, "{\"n\":1}",
        "only the valid answer reaches the client"
    );
    assert!(events
        .iter()
        .any(|e| e["choices"][0]["finish_reason"] == "stop"));
    assert!(events
        .iter()
        .any(|e| e["usage"]["completion_tokens"].is_u64()));
    // Both calls asked for a whole answer, the second with the correction.
    let asked = s.primary.requests();
    assert_eq!(asked.len(), 2);
    assert!(asked
        .iter()
        .all(|r| r.body.get("stream").is_none_or(|v| v == false)));
    assert_eq!(asked[1].body["messages"].as_array().unwrap().len(), 3);

    // An Anthropic client's stream, served by the same OpenAI target.
    let anthropic = json!({"model": "extract", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "How many?"}],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}});
    let response = post_json(&s.gw, "/v1/messages", &anthropic).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    let text: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "{\"n\":1}");
    assert!(events.iter().any(|e| e["type"] == "message_stop"));
}

#[tokio::test(start_paused = true)]
async fn a_tool_call_with_broken_arguments_is_corrected() {
    let s = setup(SCHEMA_MODELS).await;
    fault(
        &s.primary,
        json!({"kind": "answer", "text": "{\"city\": ", "count": 1}),
    )
    .await;
    let request = json!({"model": "plain", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]});
    let response = post_json(&s.gw, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-corrections"], "1");
    let body: Value = response.json().await.unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments["city"].is_string(), "{arguments}");
    // The broken call went back as assistant text, not as a dangling tool call.
    let asked = s.primary.requests();
    assert_eq!(asked.len(), 2);
    let messages = asked[1].body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["role"], "assistant");
    assert!(messages[1].get("tool_calls").is_none());
    assert!(
        messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("get_weather"),
        "{messages:?}"
    );
}
