//! Stream rescue: a stream broken after its first byte is continued on another target
//! and spliced into the same client stream; `stream_buffer = "full"` restarts it cleanly.

use crate::common::*;
use backstop_mock::{answer_chunks, MockConfig};
use serde_json::{json, Value};

/// Models used below: `rescued` (OpenAI on the primary mock) falls back to `mirror`
/// (OpenAI on the secondary, accepting prefills) and `sonnet` (Anthropic on the secondary).
pub const RESCUE: &str = r#"
[models.rescued]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["mirror"]
[models.mirror]
targets = [{ provider = "secondary", model = "m-model" }]
prefill = true
[models.picky]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["sonnet"]
rescue_restart = "off"
[models.picky_restarts]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["sonnet"]
[models.to_openai]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["plain", "mirror"]
[models.plain]
targets = [{ provider = "secondary", model = "plain-model" }]
[models.sonnet]
targets = [{ provider = "anth2", model = "claude-x" }]
[models.claude_first]
targets = [{ provider = "anth", model = "claude-a" }]
fallbacks = ["sonnet"]
[models.capped]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["mirror"]
max_rescues = 0
[models.buffered]
targets = [{ provider = "primary", model = "p-model" }]
fallbacks = ["plain"]
stream_buffer = "full"
"#;

pub fn full_answer() -> String {
    answer_chunks(&MockConfig::default()).concat()
}

/// The text, finish reasons and error events of an OpenAI SSE stream.
pub fn openai_stream(text: &str) -> (String, Vec<String>, Vec<Value>, Vec<Value>) {
    let (mut content, mut finishes, mut errors, mut chunks) =
        (String::new(), Vec::new(), Vec::new(), Vec::new());
    for data in text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
    {
        let chunk: Value = serde_json::from_str(data).unwrap();
        if chunk.get("error").is_some() {
            errors.push(chunk);
            continue;
        }
        for choice in chunk["choices"].as_array().unwrap() {
            content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if let Some(reason) = choice["finish_reason"].as_str() {
                finishes.push(reason.to_string());
            }
        }
        chunks.push(chunk);
    }
    (content, finishes, errors, chunks)
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_after_40_of_60_chunks_is_finished_by_the_fallback() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 41})).await;
    let text = s.ask_text("rescued", true).await;
    let (content, finishes, errors, chunks) = openai_stream(&text);
    assert_eq!(content, full_answer(), "{text}");
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let ids: std::collections::BTreeSet<&str> =
        chunks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one stream id throughout");
    let continuation = &s.secondary.requests()[0].body;
    let messages = continuation["messages"].as_array().unwrap();
    let prefill = messages.last().unwrap();
    assert_eq!(prefill["role"], "assistant");
    assert!(full_answer().starts_with(prefill["content"].as_str().unwrap()));
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(
        "backstop_stream_rescues_total{target=\"primary/p-model\",outcome=\"continued\"} 1"
    ));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_is_continued() {
    let s = setup(RESCUE).await;
    fault(
        &s.primary,
        json!({"kind": "stall", "after": 21, "for": "5s"}),
    )
    .await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_provider_error_event_mid_stream_is_continued() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "error_event", "at": 30})).await;
    let (content, _, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert!(errors.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_target_that_rejects_prefills_is_learned_and_the_error_names_the_cut() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 20})).await;
    fault(&s.secondary, json!({"kind": "reject_prefill"})).await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("picky", true).await);
    assert!(full_answer().starts_with(&content) && content.len() < full_answer().len());
    assert!(finishes.is_empty(), "never a finish on a truncated answer");
    assert_eq!(errors.len(), 1);
    let message = errors[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("primary/p-model failed mid-stream: stream broke"),
        "{message}"
    );
    assert_eq!(s.secondary.requests().len(), 1);

    let again = s.ask_text("picky", true).await;
    assert!(again.contains("\"error\""));
    assert_eq!(
        s.secondary.requests().len(),
        1,
        "a target that rejected a prefill is not asked again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_continuation_skips_targets_without_prefill_to_one_that_accepts() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 20})).await;
    let (content, finishes, _, _) = openai_stream(&s.ask_text("to_openai", true).await);
    assert_eq!(content, full_answer());
    assert_eq!(finishes, vec!["stop"]);
    let models = models_seen(&s.secondary);
    assert_eq!(
        models,
        vec!["m-model"],
        "plain OpenAI targets are not asked to continue a prefill"
    );
}

#[tokio::test(start_paused = true)]
async fn an_openai_stream_is_rescued_by_an_anthropic_target() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 25})).await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("picky", true).await);
    assert_eq!(content, full_answer());
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
    assert_eq!(
        s.secondary.requests()[0].route,
        backstop_mock::Route::Anthropic
    );
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_stream_is_rescued_with_its_indexes_kept() {
    let s = setup(RESCUE).await;
    fault(
        &s.primary,
        json!({"route": "anthropic", "kind": "cut_after", "events": 30}),
    )
    .await;
    let body = json!({"model": "claude_first", "max_tokens": 500, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let text = post_json(&s.gw, "/v1/messages", &body)
        .await
        .text()
        .await
        .unwrap();
    let mut content = String::new();
    let mut starts = 0;
    let mut stops = Vec::new();
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let event: Value = serde_json::from_str(data).unwrap();
        match event["type"].as_str().unwrap() {
            "message_start" => starts += 1,
            "content_block_delta" => {
                assert_eq!(event["index"], 0);
                content.push_str(event["delta"]["text"].as_str().unwrap());
            }
            "message_delta" => stops.push(event["delta"]["stop_reason"].clone()),
            "error" => panic!("error event: {text}"),
            _ => {}
        }
    }
    assert_eq!(content, full_answer(), "{text}");
    assert_eq!(starts, 1);
    assert_eq!(stops, vec![json!("end_turn")]);
    assert!(text.contains("message_stop"));
}

#[tokio::test(start_paused = true)]
async fn a_tool_call_cut_mid_arguments_is_delivered_whole_once() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 4})).await;
    let body = json!({"model": "rescued", "stream": true, "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let response = post_json(&s.gw, "/v1/chat/completions", &body).await;
    let text = response.text().await.unwrap();
    let (_, finishes, errors, chunks) = openai_stream(&text);
    assert!(errors.is_empty(), "{text}");
    assert_eq!(finishes, vec!["tool_calls"]);
    let mut ids = Vec::new();
    let mut arguments = String::new();
    for chunk in &chunks {
        for call in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(id) = call["id"].as_str() {
                ids.push(id.to_string());
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(ids.len(), 1, "exactly one tool call: {text}");
    let parsed: Value = serde_json::from_str(&arguments).unwrap();
    assert!(parsed.is_object());
}

#[tokio::test(start_paused = true)]
async fn the_rescue_cap_ends_the_stream_with_an_error() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 20})).await;
    let (_, finishes, errors, _) = openai_stream(&s.ask_text("capped", true).await);
    assert!(finishes.is_empty());
    assert!(errors[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("rescue limit of 0 reached"));
    assert!(s.secondary.requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_buffered_stream_restarts_cleanly_on_the_fallback() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 41})).await;
    let response = s.ask("buffered", true).await;
    assert_eq!(response.headers()["x-backstop-model"], "plain");
    let (content, finishes, errors, _) = openai_stream(&response.text().await.unwrap());
    assert_eq!(content, full_answer());
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
    let restart = &s.secondary.requests()[0].body;
    assert_eq!(
        restart["messages"].as_array().unwrap().len(),
        1,
        "a clean restart, no prefill"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_ends_without_its_terminator_is_continued() {
    let s = setup(RESCUE).await;
    fault(&s.primary, json!({"kind": "end_after", "events": 33})).await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
    assert_eq!(s.primary.requests()[0].outcome, "ended after 33");
}
