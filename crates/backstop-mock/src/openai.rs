//! OpenAI Chat Completions encoding: `chat.completion` bodies and `chat.completion.chunk`
//! SSE events, as the official SDKs parse them.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::errors;
use crate::fault::Route;
use crate::reply::{Content, Finish, Reply};
use crate::stream::Events;

const FINGERPRINT: &str = "fp_backstopmock";

fn id(reply: &Reply) -> String {
    format!("chatcmpl-mock{:016x}", reply.serial)
}

fn call_id(reply: &Reply) -> String {
    format!("call_mock{:015x}", reply.serial)
}

fn finish_reason(reply: &Reply) -> &'static str {
    match &reply.content {
        Content::Text {
            finish: Finish::Stop,
            ..
        } => "stop",
        Content::Text {
            finish: Finish::Length,
            ..
        } => "length",
        Content::Text {
            finish: Finish::Filtered,
            ..
        } => "content_filter",
        Content::Tool { .. } => "tool_calls",
    }
}

/// One choice, with Azure's `content_filter_results` when the output filter stopped it.
fn choice(reply: &Reply, mut choice: Value) -> Value {
    if reply.filtered() {
        let safe = json!({ "filtered": false, "severity": "safe" });
        choice["content_filter_results"] = json!({
            "hate": safe, "self_harm": safe, "sexual": safe,
            "violence": { "filtered": true, "severity": "high" }
        });
    }
    choice
}

fn usage(reply: &Reply) -> Value {
    let output = reply.output_tokens();
    json!({
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": output,
        "total_tokens": reply.input_tokens + output,
        "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

/// The non-streaming `chat.completion` body.
pub(crate) fn body(reply: &Reply) -> Vec<u8> {
    let message = match &reply.content {
        Content::Text { .. } if reply.filtered() => json!({
            "role": "assistant", "content": null, "refusal": null, "annotations": []
        }),
        Content::Text { .. } => json!({
            "role": "assistant", "content": reply.text(), "refusal": null, "annotations": []
        }),
        Content::Tool {
            name, arguments, ..
        } => json!({
            "role": "assistant", "content": null, "refusal": null, "annotations": [],
            "tool_calls": [{
                "id": call_id(reply), "type": "function",
                "function": { "name": name, "arguments": arguments }
            }]
        }),
    };
    let value = json!({
        "id": id(reply),
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [choice(reply, json!({ "index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(reply) }))],
        "usage": usage(reply),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// One SSE event: a `data:` line with the JSON.
fn frame(value: &Value) -> Bytes {
    let mut frame = b"data: ".to_vec();
    frame.extend(serde_json::to_vec(value).unwrap_or_default());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The SSE events of a streamed reply, `data: [DONE]` as terminator.
pub(crate) fn events(reply: &Reply, include_usage: bool) -> Events {
    let id = id(reply);
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut value = json!({
            "id": id, "object": "chat.completion.chunk", "created": reply.created, "model": reply.model,
            "service_tier": "default", "system_fingerprint": FINGERPRINT, "choices": choices,
        });
        if include_usage {
            value["usage"] = usage.unwrap_or(Value::Null);
        }
        frame(&value)
    };
    let delta = |delta: Value, finish: Value| json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]);
    let mut out = Vec::new();
    match &reply.content {
        Content::Text { chunks, .. } => {
            out.push(chunk(
                delta(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    Value::Null,
                ),
                None,
            ));
            for text in chunks {
                out.push(chunk(delta(json!({ "content": text }), Value::Null), None));
            }
        }
        Content::Tool { name, pieces, .. } => {
            let first = json!({
                "role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{ "index": 0, "id": call_id(reply), "type": "function",
                                 "function": { "name": name, "arguments": "" } }]
            });
            out.push(chunk(delta(first, Value::Null), None));
            for piece in pieces {
                let d =
                    json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] });
                out.push(chunk(delta(d, Value::Null), None));
            }
        }
    }
    let last = choice(
        reply,
        json!({ "index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_reason(reply) }),
    );
    out.push(chunk(json!([last]), None));
    if include_usage {
        out.push(chunk(json!([]), Some(usage(reply))));
    }
    Events {
        events: out,
        terminator: Some(Bytes::from_static(b"data: [DONE]\n\n")),
    }
}

/// A chunk whose JSON is cut off mid-object.
pub(crate) fn malformed() -> Bytes {
    Bytes::from_static(b"data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\n\n")
}

/// The error event OpenAI sends when a stream fails after its 200: a data line whose JSON is
/// the error body (the SDKs raise `APIError` with its message).
pub(crate) fn error_event() -> Bytes {
    frame(&errors::stream_error(Route::Openai))
}
