//! The Responses API end to end: `POST /v1/responses` served by OpenAI, Anthropic and
//! Gemini targets through the same attempt loop, its typed event stream, stored answers and
//! `previous_response_id`, and its errors.

use crate::common::*;
use backstop_mock::DEFAULT_ANSWER;
use serde_json::{json, Value};

/// `gem` on a Gemini target, `rescued` falling back to `mirror` (which accepts prefills).
const EXTRA: &str = r#"
[providers.ge]
kind = "gemini"
base_url = "GEMINI_URL"
api_key = "k-gemini"
[models.gem]
targets = [{ provider = "ge", model = "gemini-2.5-flash" }]
[models.rescued]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["mirror"]
[models.mirror]
targets = [{ provider = "secondary", model = "m-model" }]
prefill = true
"#;

async fn scene(extra: &str) -> Setup {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = EXTRA.replace("GEMINI_URL", &secondary.url()) + extra;
    let gw = gateway(&two_upstreams(&primary, &secondary, &extra)).await;
    Setup {
        primary,
        secondary,
        gw,
    }
}

/// The text of every `output_text` part of a `response` object.
pub(crate) fn output_text(response: &Value) -> String {
    let mut text = String::new();
    for item in response["output"].as_array().unwrap() {
        if item["type"] == "message" {
            for part in item["content"].as_array().unwrap() {
                text.push_str(part["text"].as_str().unwrap());
            }
        }
    }
    text
}

/// The events of a Responses stream, checked for the framing every one must have: an SSE
/// event name equal to its `type`, and sequence numbers counting from 0.
pub(crate) fn events(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix("event: ") {
                name = Some(rest.to_string());
            } else if let Some(rest) = line.strip_prefix("data: ") {
                data.push_str(rest);
            }
        }
        let event: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(name.as_deref(), event["type"].as_str(), "{block}");
        assert_eq!(event["sequence_number"], out.len() as u64, "{text}");
        out.push(event);
    }
    out
}

pub(crate) fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

pub(crate) fn deltas(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_target_kind_answers_a_responses_request() {
    let s = scene("").await;
    for (model, target) in [
        ("gpt", "primary/gpt-4o-mini"),
        ("claude", "anth/claude-sonnet-4-5"),
        ("gem", "ge/gemini-2.5-flash"),
    ] {
        let body = json!({"model": model, "input": "Say hello", "instructions": "Be brief.",
            "max_output_tokens": 500, "metadata": {"run": "7"}});
        let response = post_json(&s.gw, "/v1/responses", &body).await;
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["x-backstop-target"], target);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["object"], "response");
        assert_eq!(answer["status"], "completed");
        assert!(answer["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(answer["instructions"], "Be brief.");
        assert_eq!(answer["metadata"]["run"], "7");
        assert_eq!(output_text(&answer), DEFAULT_ANSWER, "{model}");
        let usage = &answer["usage"];
        assert_eq!(usage["output_tokens"], 60, "{model}: {usage}");
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["input_tokens"].as_u64().unwrap() + 60)
        );
    }
    let anthropic = s
        .primary
        .requests()
        .into_iter()
        .find(|r| r.model == "claude-sonnet-4-5")
        .unwrap();
    assert_eq!(anthropic.body["system"], "Be brief.");
    assert_eq!(anthropic.body["max_tokens"], 500);
    assert_eq!(
        anthropic.body["messages"][0]["content"][0]["text"],
        "Say hello"
    );
}

#[tokio::test]
async fn every_target_kind_streams_typed_events() {
    let s = scene("").await;
    for model in ["gpt", "claude", "gem"] {
        let body = json!({"model": model, "input": "Say hello", "stream": true});
        let response = post_json(&s.gw, "/v1/responses", &body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let events = events(&text);
        let kinds = kinds(&events);
        assert_eq!(
            &kinds[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added"
            ],
            "{model}"
        );
        assert_eq!(
            &kinds[kinds.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ],
            "{model}"
        );
        assert_eq!(deltas(&events), DEFAULT_ANSWER, "{model}");
        let created = &events[0]["response"];
        let completed = &events.last().unwrap()["response"];
        assert_eq!(created["id"], completed["id"]);
        assert!(created["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(completed["status"], "completed");
        assert_eq!(output_text(completed), DEFAULT_ANSWER);
        assert_eq!(completed["usage"]["output_tokens"], 60, "{model}");
    }
}

#[tokio::test]
async fn a_tool_call_round_trip_continues_from_the_stored_response() {
    let s = scene("").await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = json!({"model": "claude", "input": "Weather in Paris?", "tools": tools});
    let answer: Value = post_json(&s.gw, "/v1/responses", &first)
        .await
        .json()
        .await
        .unwrap();
    let call = &answer["output"][0];
    assert_eq!(call["type"], "function_call", "{answer}");
    assert_eq!(call["name"], "get_weather");
    let call_id = call["call_id"].as_str().unwrap();

    let second = json!({"model": "gpt", "previous_response_id": answer["id"], "tools": tools,
        "input": [{"type": "function_call_output", "call_id": call_id, "output": "sunny"}]});
    let response = post_json(&s.gw, "/v1/responses", &second).await;
    assert_eq!(response.status(), 200);
    let followed: Value = response.json().await.unwrap();
    assert_eq!(followed["previous_response_id"], answer["id"]);
    assert_eq!(output_text(&followed), DEFAULT_ANSWER);
    let upstream = s
        .primary
        .requests()
        .into_iter()
        .find(|r| r.model == "gpt-4o-mini")
        .unwrap();
    let messages = upstream.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"], "Weather in Paris?");
    assert_eq!(messages[1]["tool_calls"][0]["id"], call_id);
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], call_id);
    assert_eq!(messages[2]["content"], "sunny");
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_function_call_events() {
    let s = scene("").await;
    let body = json!({"model": "gem", "input": "Weather?", "stream": true,
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]});
    let text = post_json(&s.gw, "/v1/responses", &body)
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["type"], "function_call");
    let arguments: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"], arguments.as_str());
    serde_json::from_str::<Value>(&arguments).expect("whole JSON arguments");
    let completed = &events.last().unwrap()["response"];
    assert_eq!(completed["output"][0]["arguments"], arguments.as_str());
}

#[tokio::test(start_paused = true)]
async fn a_failed_target_falls_back_for_a_responses_client() {
    let s = scene("").await;
    fault(&s.primary, json!({"kind": "status", "status": 500})).await;
    let response = post_json(
        &s.gw,
        "/v1/responses",
        &json!({"model": "gpt", "input": "hi"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(response.headers()["x-backstop-fallback"], "true");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(output_text(&answer), DEFAULT_ANSWER);
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_midway_is_continued_within_the_same_typed_stream() {
    let s = scene("").await;
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
    assert_eq!(s.secondary.requests().len(), 1, "continued on the fallback");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_stream_ends_with_an_error_event() {
    let s = scene("").await;
    for mock in [&s.primary, &s.secondary] {
        fault(mock, json!({"kind": "cut_after", "events": 10})).await;
    }
    let body = json!({"model": "gpt", "input": "Say hello", "stream": true});
    let text = post_json(&s.gw, "/v1/responses", &body)
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let kinds = kinds(&events);
    assert!(kinds.contains(&"error"), "{text}");
    assert_eq!(kinds.last(), Some(&"response.failed"));
    assert!(!kinds.contains(&"response.completed"));
}

#[tokio::test]
async fn invalid_requests_are_refused_in_the_responses_error_shape() {
    let s = scene("").await;
    for (body, param) in [
        (json!({"model": "gpt"}), "input"),
        (
            json!({"model": "gpt", "input": "x", "temperature": 9}),
            "temperature",
        ),
        (
            json!({"model": "gpt", "input": "x", "tools": [{"type": "web_search_preview"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "gpt", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "gpt", "input": "x", "previous_response_id": "resp_nope"}),
            "previous_response_id",
        ),
    ] {
        let response = post_json(&s.gw, "/v1/responses", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
        assert!(error["error"]["message"].as_str().unwrap().len() > 10);
    }
    let response = reqwest::Client::new()
        .post(s.gw.url("/v1/responses"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let unknown = post_json(
        &s.gw,
        "/v1/responses",
        &json!({"model": "nope", "input": "x"}),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    assert!(s.primary.requests().is_empty() && s.secondary.requests().is_empty());
}

#[tokio::test]
async fn stored_responses_are_read_and_deleted_by_their_owner_only() {
    let s = scene("[auth]\nclient_keys = [\"key-one\", \"key-two\"]\n").await;
    let client = reqwest::Client::new();
    let create = |key: &'static str, store: bool| {
        client
            .post(s.gw.url("/v1/responses"))
            .bearer_auth(key)
            .json(&json!({"model": "gpt", "input": "hi", "store": store}))
            .send()
    };
    let answer: Value = create("key-one", true).await.unwrap().json().await.unwrap();
    let id = answer["id"].as_str().unwrap();
    let path = s.gw.url(&format!("/v1/responses/{id}"));
    let read = client
        .get(&path)
        .bearer_auth("key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap(), answer);
    let other = client
        .get(&path)
        .bearer_auth("key-two")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let other = client
        .delete(&path)
        .bearer_auth("key-two")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let deleted = client
        .delete(&path)
        .bearer_auth("key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.json::<Value>().await.unwrap()["deleted"], true);
    let gone = client
        .get(&path)
        .bearer_auth("key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let unstored: Value = create("key-one", false)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unstored["store"], false);
    let path = s.gw.url(&format!(
        "/v1/responses/{}",
        unstored["id"].as_str().unwrap()
    ));
    let read = client
        .get(&path)
        .bearer_auth("key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 404);
    let anonymous = client.get(&path).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
