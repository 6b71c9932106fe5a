//! The Responses API's native passthrough: a Responses request served by an OpenAI target
//! that speaks the API itself (`responses = true`) goes to its `/v1/responses` as the client
//! wrote it, whole or streamed, while retries, fallbacks to other protocols, usage, cost,
//! stored responses and stream rescue work as for a translated request.

use crate::common::*;
use crate::operations::sample;
use crate::responses::{deltas, events, kinds, output_text};
use backstop_mock::DEFAULT_ANSWER;
use serde_json::{json, Value};

/// `native` on an OpenAI-compatible target with `responses = true` (on the primary mock),
/// falling back to `claude` (Anthropic, also on the primary); `rescued` on the same target,
/// falling back to `mirror` (Chat Completions on the secondary, which accepts prefills); `solo`
/// on it alone.
const NATIVE: &str = r#"
[providers.native]
kind = "openai"
base_url = "PRIMARY/v1"
api_key = "sk-native-secret"
responses = true
[models.native]
targets = [{ provider = "native", model = "gpt-4.1" }]
fallbacks = ["claude"]
[models.native.price]
input = 2.0
output = 8.0
[models.rescued]
targets = [{ provider = "native", model = "gpt-4.1" }]
fallbacks = ["mirror"]
[models.mirror]
targets = [{ provider = "secondary", model = "m-model" }]
prefill = true
[models.solo]
targets = [{ provider = "native", model = "gpt-4.1" }]
"#;

async fn scene() -> Setup {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = NATIVE.replace("PRIMARY", &primary.url());
    let gw = gateway(&two_upstreams(&primary, &secondary, &extra)).await;
    Setup {
        primary,
        secondary,
        gw,
    }
}

/// The requests `mock` received at `path`.
fn at(mock: &backstop_mock::MockServer, path: &str) -> Vec<backstop_mock::RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

#[tokio::test]
async fn a_whole_answer_is_the_upstreams_own_response_with_usage_and_cost() {
    let s = scene().await;
    let body = json!({"model": "native", "input": "Say hello", "instructions": "Be brief.",
        "metadata": {"run": "7"}, "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"]});
    let response = post_json(&s.gw, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], "native/gpt-4.1");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["model"], "gpt-4.1", "the upstream's own response");
    let id = answer["id"].as_str().unwrap();
    assert!(
        id.starts_with("resp_") && !id.starts_with("resp_mock"),
        "{id}"
    );
    assert_eq!(answer["metadata"]["run"], "7");
    assert_eq!(output_text(&answer), DEFAULT_ANSWER);
    assert_eq!(answer["usage"]["output_tokens"], 60);

    let sent = at(&s.primary, "/v1/responses");
    assert_eq!(sent.len(), 1);
    assert!(at(&s.primary, "/v1/chat/completions").is_empty());
    let mut expected = body.clone();
    expected["model"] = "gpt-4.1".into();
    assert_eq!(
        sent[0].body, expected,
        "the client's body, the target's model"
    );

    let stored: Value = s
        .get(&format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored, answer);

    let metrics = s.get("/metrics").await.text().await.unwrap();
    let target = "target=\"native/gpt-4.1\"";
    let series = |kind: &str| format!("backstop_tokens_total{{{target},kind=\"{kind}\"}}");
    let (input, output) = (
        sample(&metrics, &series("input")),
        sample(&metrics, &series("output")),
    );
    assert_eq!(input, answer["usage"]["input_tokens"].as_f64().unwrap());
    assert_eq!(output, 60.0);
    let cost = sample(&metrics, &format!("backstop_cost_usd_total{{{target}}}"));
    assert!(
        (cost - (input * 2.0 + output * 8.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
}

#[tokio::test]
async fn a_stream_relays_the_upstreams_typed_events_and_the_answer_is_continued_later() {
    let s = scene().await;
    let body = json!({"model": "native", "input": "Say hello", "stream": true});
    let response = post_json(&s.gw, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = events(&text);
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        .into_iter()
        .chain(std::iter::repeat_n("response.output_text.delta", 60))
        .chain([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ])
        .collect::<Vec<_>>()
    );
    assert_eq!(deltas(&events), DEFAULT_ANSWER);
    assert!(
        events[2]["item"]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_mock"),
        "the upstream's own items"
    );
    let completed = &events.last().unwrap()["response"];
    let id = completed["id"].as_str().unwrap();
    assert_eq!(events[0]["response"]["id"], id);
    assert!(!id.starts_with("resp_mock"), "{id}");
    assert_eq!(completed["usage"]["output_tokens"], 60);
    let sent = at(&s.primary, "/v1/responses");
    assert!(sent[0].stream);
    assert_eq!(sent[0].body["model"], "gpt-4.1");

    let next = json!({"model": "native", "input": "Again", "previous_response_id": id});
    let followed: Value = post_json(&s.gw, "/v1/responses", &next)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(followed["previous_response_id"], id);
    let sent = at(&s.primary, "/v1/responses");
    let upstream = &sent[1].body;
    assert!(
        upstream.get("previous_response_id").is_none(),
        "the upstream never saw the gateway's id: {upstream}"
    );
    let input = upstream["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{upstream}");
    assert_eq!(input[0]["content"], "Say hello");
    assert_eq!(input[1]["content"][0]["text"], DEFAULT_ANSWER);
    assert_eq!(input[2]["content"], "Again");
}

#[tokio::test(start_paused = true)]
async fn an_upstream_500_fails_over_to_an_anthropic_target_translated() {
    let s = scene().await;
    fault(
        &s.primary,
        json!({"kind": "status", "status": 500, "route": "openai"}),
    )
    .await;
    for stream in [false, true] {
        let body = json!({"model": "native", "input": "Say hello", "stream": stream});
        let response = post_json(&s.gw, "/v1/responses", &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-backstop-target"],
            "anth/claude-sonnet-4-5"
        );
        assert_eq!(response.headers()["x-backstop-fallback"], "true");
        if stream {
            let events = events(&response.text().await.unwrap());
            assert_eq!(deltas(&events), DEFAULT_ANSWER);
            assert_eq!(kinds(&events).last(), Some(&"response.completed"));
        } else {
            let answer: Value = response.json().await.unwrap();
            assert_eq!(output_text(&answer), DEFAULT_ANSWER);
        }
    }
    assert!(at(&s.primary, "/v1/responses").len() >= 2, "retried first");
    let translated = at(&s.primary, "/v1/messages");
    assert_eq!(translated.len(), 2);
    assert_eq!(
        translated[0].body["messages"][0]["content"][0]["text"],
        "Say hello"
    );
}

#[tokio::test]
async fn an_openai_compatible_provider_without_responses_gets_chat_completions() {
    let s = scene().await;
    let body = json!({"model": "gpt", "input": "Say hello", "stream": true});
    let text = post_json(&s.gw, "/v1/responses", &body)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(deltas(&events(&text)), DEFAULT_ANSWER);
    assert!(at(&s.primary, "/v1/responses").is_empty());
    let sent = at(&s.primary, "/v1/chat/completions");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["messages"][0]["content"], "Say hello");
}

#[tokio::test(start_paused = true)]
async fn a_passthrough_stream_cut_midway_is_continued_on_the_clients_items_and_sequence() {
    let s = scene().await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 31})).await;
    let body = json!({"model": "rescued", "input": "Say hello", "stream": true});
    let text = post_json(&s.gw, "/v1/responses", &body)
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert_eq!(deltas(&events), DEFAULT_ANSWER, "{text}");
    let kinds = kinds(&events);
    assert_eq!(
        kinds.iter().filter(|k| **k == "response.created").count(),
        1
    );
    assert_eq!(kinds.last(), Some(&"response.completed"));
    assert!(!kinds.contains(&"error"));
    assert_eq!(at(&s.primary, "/v1/responses").len(), 1);
    let continued = at(&s.secondary, "/v1/chat/completions");
    assert_eq!(continued.len(), 1, "continued on the fallback");
    let messages = continued[0].body["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["role"], "assistant", "a prefill");
    let completed = &events.last().unwrap()["response"];
    assert_eq!(output_text(completed), DEFAULT_ANSWER);
    assert_eq!(events[0]["response"]["id"], completed["id"]);
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    let item = added["item"]["id"].as_str().unwrap();
    assert!(item.starts_with("msg_mock"), "the upstream's item: {item}");
    for event in events.iter().filter(|e| e.get("output_index").is_some()) {
        assert_eq!(event["output_index"], 0, "{event}");
        let named = event.get("item_id").unwrap_or(&event["item"]["id"]);
        assert_eq!(
            named, item,
            "the continuation goes on with the client's item: {event}"
        );
    }
    assert_eq!(completed["output"].as_array().unwrap().len(), 1);
    assert_eq!(completed["output"][0]["id"], item);
}

#[tokio::test]
async fn hosted_tools_go_to_a_native_target_and_are_refused_by_name_elsewhere() {
    let s = scene().await;
    let tools = json!([{"type": "web_search_preview"}, {"type": "function", "name": "f"}]);
    let body = json!({"model": "native", "input": "News?", "tools": tools, "include": ["web_search_call.action.sources"]});
    let response = post_json(&s.gw, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let sent = at(&s.primary, "/v1/responses");
    assert_eq!(sent[0].body["tools"], tools, "forwarded as written");

    let body = json!({"model": "claude", "input": "News?", "tools": tools});
    let response = post_json(&s.gw, "/v1/responses", &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "tools[0].type", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("web_search_preview"), "{message}");
    assert!(at(&s.primary, "/v1/messages").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_passthrough_stream_no_target_can_finish_ends_with_error_and_failed() {
    let s = scene().await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 10})).await;
    let body = json!({"model": "solo", "input": "Say hello", "stream": true});
    let text = post_json(&s.gw, "/v1/responses", &body)
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let kinds = kinds(&events);
    assert_eq!(
        kinds.iter().filter(|k| **k == "response.created").count(),
        1,
        "{text}"
    );
    assert_eq!(&kinds[kinds.len() - 2..], ["error", "response.failed"]);
    assert!(!kinds.contains(&"response.completed"));
    let failed = &events.last().unwrap()["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["id"], events[0]["response"]["id"]);
    let item = events[2]["item"]["id"].as_str().unwrap();
    assert_eq!(failed["output"][0]["id"], item, "the item the client has");
    assert_eq!(failed["output"][0]["status"], "incomplete");
}
