//! The canonical response -> an OpenAI Responses API `response` object.
//!
//! Text becomes one `message` output item with one `output_text` part per text block; each tool
//! call becomes a `function_call` item. An answer cut by `max_output_tokens` or a content filter
//! is `"status": "incomplete"` with `incomplete_details.reason`, as OpenAI reports it. Fields that
//! echo the request (`instructions`, `metadata`, `tools`, ...) are filled by the gateway, which
//! knows the request; here they have the API's defaults.

use serde_json::{json, Value};

use crate::canonical::{ChatResponse, ContentPart, FinishReason, Usage};
use crate::json::{to_vec, unix_now};

/// A Responses API id with `prefix` built from an upstream id (letters, digits, `_` and `-`
/// kept; `backstop` when the upstream gave none) and the item's position.
pub(crate) fn item_id(prefix: &str, upstream: &str, index: usize) -> String {
    let clean: String = upstream
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(48)
        .collect();
    let clean = if clean.is_empty() {
        "backstop".to_owned()
    } else {
        clean
    };
    format!("{prefix}_{clean}_{index}")
}

/// The Responses API `usage` object.
pub(crate) fn usage_to(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens.unwrap_or(0)},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

/// `status` and `incomplete_details` for a finish reason.
pub(crate) fn status_of(finish: &FinishReason) -> (&'static str, Value) {
    match finish {
        FinishReason::Length => ("incomplete", json!({"reason": "max_output_tokens"})),
        FinishReason::ContentFilter => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A `message` output item holding `text`.
pub(crate) fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([output_text(text)])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

/// An `output_text` content part.
pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `function_call` output item.
pub(crate) fn call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// A `response` object around `output`.
pub(crate) fn response_object(
    id: &str,
    model: &str,
    created_at: u64,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_to),
        "user": null,
        "metadata": {},
    })
}

/// The `output` items of a complete answer.
pub(crate) fn output_items(resp: &ChatResponse, status: &str) -> Vec<Value> {
    let mut output = Vec::new();
    let mut text_parts = Vec::new();
    let mut calls = Vec::new();
    for (index, part) in resp.content.iter().enumerate() {
        match part {
            ContentPart::Text(t) if !t.is_empty() => text_parts.push(output_text(t)),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(call_item(
                &item_id("fc", &resp.id, index),
                id,
                name,
                arguments,
                "completed",
            )),
            _ => {}
        }
    }
    if !text_parts.is_empty() {
        output.push(json!({"type": "message", "id": item_id("msg", &resp.id, 0),
            "status": status, "role": "assistant", "content": text_parts}));
    }
    output.extend(calls);
    output
}

/// Encodes a canonical response as a Responses API `response` object.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let (status, incomplete) = status_of(&resp.finish);
    let output = output_items(resp, status);
    to_vec(&response_object(
        &item_id("resp", &resp.id, 0),
        &resp.model,
        unix_now(),
        status,
        incomplete,
        output,
        Some(&resp.usage),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_calls_become_output_items() {
        let resp = ChatResponse {
            id: "chatcmpl-1".into(),
            model: "gpt".into(),
            content: vec![
                ContentPart::Text("hello".into()),
                ContentPart::ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{\"a\":1}".into(),
                },
            ],
            finish: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["content"][0]["text"], "hello");
        assert_eq!(v["output"][1]["type"], "function_call");
        assert_eq!(v["output"][1]["call_id"], "call_1");
        assert_eq!(v["usage"]["total_tokens"], 7);
    }

    #[test]
    fn a_cut_answer_is_incomplete() {
        let resp = ChatResponse {
            id: String::new(),
            model: "m".into(),
            content: vec![ContentPart::Text("par".into())],
            finish: FinishReason::Length,
            usage: Usage::default(),
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    }
}
