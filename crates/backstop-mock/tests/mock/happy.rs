//! Well-behaved answers in each wire format.

use backstop_mock::{answer_chunks, MockConfig, DEFAULT_ANSWER};
use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn openai_plain_answer_echoes_model_and_counts_usage() {
    let h = Harness::start().await;
    let resp = h.openai(chat("gpt-4o-mini")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["content"], DEFAULT_ANSWER);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 60);
    assert_eq!(body["usage"]["prompt_tokens"], 7); // 28 chars / 4
    assert_eq!(body["usage"]["total_tokens"], 67);
}

#[tokio::test]
async fn openai_stream_delivers_every_chunk_usage_and_done() {
    let h = Harness::start().await;
    let mut req = streamed(chat("gpt-4o"));
    req["stream_options"] = json!({ "include_usage": true });
    let resp = h.openai(req).await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
    let chunks = sse_json(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_ANSWER);
    let deltas = chunks.iter().filter(|c| {
        c["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    });
    assert_eq!(deltas.count(), 60);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 60);
    assert!(chunks[0]["usage"].is_null());
}

#[tokio::test]
async fn openai_tool_calls_streamed_and_not() {
    let h = Harness::start().await;
    let mut req = chat("gpt-4o");
    req["tools"] =
        json!([{ "type": "function", "function": { "name": "get_weather", "parameters": {} } }]);
    let body: Value = h.openai(req.clone()).await.json().await.unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, MockConfig::default().tool_arguments);
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    req["stream"] = json!(true);
    let text = h.openai(req.clone()).await.text().await.unwrap();
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
    let chunks = sse_json(&text);
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(
        pieces.iter().filter(|p| !p.is_empty()).count() > 1,
        "arguments arrive as several deltas"
    );
    let args: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert_eq!(args, MockConfig::default().tool_arguments);

    // After the tool result, the answer is text.
    req["stream"] = json!(false);
    req["messages"] = json!([
        { "role": "user", "content": "weather?" },
        { "role": "assistant", "tool_calls": [{ "id": "call_1", "type": "function",
          "function": { "name": "get_weather", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "call_1", "content": "18C" }
    ]);
    let body: Value = h.openai(req).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], DEFAULT_ANSWER);
}

#[tokio::test]
async fn anthropic_plain_stream_and_tools() {
    let h = Harness::start().await;
    let resp = h.anthropic(messages("claude-sonnet-4-5")).await;
    assert!(resp.headers().contains_key("request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["content"][0]["text"], DEFAULT_ANSWER);
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["output_tokens"], 60);

    let mut req = streamed(messages("claude-sonnet-4-5"));
    let text = h.anthropic(req.clone()).await.text().await.unwrap();
    let events = sse_events(&text);
    assert_eq!(events.first().map(String::as_str), Some("message_start"));
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    assert!(events.contains(&"ping".to_owned()));
    let data = sse_json(&text);
    let content: String = data
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_ANSWER);
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 60);

    req["tools"] = json!([{ "name": "lookup", "input_schema": { "type": "object" } }]);
    let text = h.anthropic(req.clone()).await.text().await.unwrap();
    let data = sse_json(&text);
    let json: String = data
        .iter()
        .filter_map(|d| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        MockConfig::default().tool_arguments
    );
    req["stream"] = json!(false);
    let body: Value = h.anthropic(req).await.json().await.unwrap();
    assert_eq!(body["content"][0]["type"], "tool_use");
    assert_eq!(
        body["content"][0]["input"],
        MockConfig::default().tool_arguments
    );
    assert_eq!(body["stop_reason"], "tool_use");
}

#[tokio::test]
async fn anthropic_without_version_header_gets_the_real_400() {
    let h = Harness::start().await;
    let resp = h.post("/v1/messages").json(&messages("claude")).send();
    let (status, body) = status_json(resp.await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "anthropic-version: header is required"
    );
}

#[tokio::test]
async fn gemini_generate_stream_sse_and_array() {
    let h = Harness::start().await;
    let body: Value = h
        .gemini("gemini-2.0-flash", "generateContent", contents())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        DEFAULT_ANSWER
    );
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 60);
    assert_eq!(body["modelVersion"], "gemini-2.0-flash");

    let text = h
        .gemini(
            "gemini-2.0-flash",
            "streamGenerateContent?alt=sse",
            contents(),
        )
        .await
        .text()
        .await
        .unwrap();
    let data = sse_json(&text);
    assert_eq!(data.len(), 60);
    let content: String = data
        .iter()
        .filter_map(|d| d["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_ANSWER);
    assert_eq!(data[59]["candidates"][0]["finishReason"], "STOP");

    let text = h
        .gemini("gemini-2.0-flash", "streamGenerateContent", contents())
        .await
        .text()
        .await
        .unwrap();
    let array: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(array.len(), 60);

    let mut req = contents();
    req["tools"] = json!([{ "functionDeclarations": [{ "name": "find" }] }]);
    let body: Value = h
        .gemini("gemini-2.0-flash", "generateContent", req)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "find"
    );
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        MockConfig::default().tool_arguments
    );
}

#[tokio::test]
async fn prefill_is_continued_and_max_tokens_truncates() {
    let h = Harness::start().await;
    let chunks = answer_chunks(&MockConfig::default());
    let prefix: String = chunks[..10].concat();
    let mut req = messages("claude");
    req["messages"] =
        json!([{ "role": "user", "content": "go" }, { "role": "assistant", "content": prefix }]);
    let body: Value = h.anthropic(req).await.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], chunks[10..].concat());
    assert_eq!(body["usage"]["output_tokens"], 50);

    let mut req = messages("claude");
    req["max_tokens"] = json!(5);
    let body: Value = h.anthropic(req).await.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], chunks[..5].concat());
    assert_eq!(body["stop_reason"], "max_tokens");
    let mut req = chat("gpt-4o");
    req["max_tokens"] = json!(3);
    let body: Value = h.openai(req).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn models_are_listed_in_each_format() {
    let h = Harness::start().await;
    let body = h.get_json("/v1/models", &[]).await;
    assert_eq!(body["object"], "list");
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "gpt-4o-mini"));
    let body = h
        .get_json("/v1/models", &[("anthropic-version", "2023-06-01")])
        .await;
    assert_eq!(body["data"][0]["type"], "model");
    let body = h.get_json("/v1beta/models", &[]).await;
    assert!(body["models"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("models/gemini"));
}

#[tokio::test]
async fn custom_answer_and_chunk_count() {
    let config = MockConfig {
        answer: "alpha beta gamma delta".into(),
        chunks: 2,
        ..MockConfig::default()
    };
    let h = Harness::with(config).await;
    let text = h.openai(streamed(chat("m"))).await.text().await.unwrap();
    let pieces: Vec<String> = sse_json(&text)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(pieces, vec!["alpha beta", " gamma delta"]);
}

#[tokio::test]
async fn unknown_paths_get_a_helpful_404() {
    let h = Harness::start().await;
    let resp = h.client.get(h.url("/v2/whatever")).send().await.unwrap();
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/chat/completions"));
}
