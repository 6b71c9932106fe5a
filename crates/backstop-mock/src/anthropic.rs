//! Anthropic Messages encoding: `message` bodies and the SSE event sequence
//! (`message_start`, `content_block_*`, `ping`, `message_delta`, `message_stop`).

use bytes::Bytes;
use serde_json::{json, Value};

use crate::errors;
use crate::fault::Route;
use crate::reply::{Content, Finish, Reply};
use crate::stream::Events;

fn id(reply: &Reply) -> String {
    format!("msg_mock{:016x}", reply.serial)
}

fn tool_id(reply: &Reply) -> String {
    format!("toolu_mock{:014x}", reply.serial)
}

fn stop_reason(reply: &Reply) -> &'static str {
    match &reply.content {
        Content::Text {
            finish: Finish::Stop,
            ..
        } => "end_turn",
        Content::Text {
            finish: Finish::Length,
            ..
        } => "max_tokens",
        Content::Text {
            finish: Finish::Filtered,
            ..
        } => "refusal",
        Content::Tool { .. } => "tool_use",
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({
        "input_tokens": input, "output_tokens": output,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0
    })
}

fn tool_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// The non-streaming `message` body.
pub(crate) fn body(reply: &Reply) -> Vec<u8> {
    let content = match &reply.content {
        Content::Text { .. } => json!([{ "type": "text", "text": reply.text() }]),
        Content::Tool {
            name, arguments, ..
        } => json!([{
            "type": "tool_use", "id": tool_id(reply), "name": name, "input": tool_input(arguments)
        }]),
    };
    let value = json!({
        "id": id(reply), "type": "message", "role": "assistant", "model": reply.model,
        "content": content, "stop_reason": stop_reason(reply), "stop_sequence": null,
        "usage": usage(reply.input_tokens, reply.output_tokens()),
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

fn event(name: &str, data: &Value) -> Bytes {
    let mut frame = format!("event: {name}\ndata: ").into_bytes();
    frame.extend(serde_json::to_vec(data).unwrap_or_default());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The SSE events of a streamed reply, `message_stop` as terminator.
pub(crate) fn events(reply: &Reply) -> Events {
    let mut out = vec![event(
        "message_start",
        &json!({ "type": "message_start", "message": {
            "id": id(reply), "type": "message", "role": "assistant", "model": reply.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(reply.input_tokens, 1)
        }}),
    )];
    let block = match &reply.content {
        Content::Text { .. } => json!({ "type": "text", "text": "" }),
        Content::Tool { name, .. } => {
            json!({ "type": "tool_use", "id": tool_id(reply), "name": name, "input": {} })
        }
    };
    out.push(event(
        "content_block_start",
        &json!({ "type": "content_block_start", "index": 0, "content_block": block }),
    ));
    out.push(event("ping", &json!({ "type": "ping" })));
    let deltas: Vec<Value> = match &reply.content {
        Content::Text { chunks, .. } => chunks
            .iter()
            .map(|text| json!({ "type": "text_delta", "text": text }))
            .collect(),
        Content::Tool { pieces, .. } => pieces
            .iter()
            .map(|piece| json!({ "type": "input_json_delta", "partial_json": piece }))
            .collect(),
    };
    for delta in deltas {
        out.push(event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        ));
    }
    out.push(event(
        "content_block_stop",
        &json!({ "type": "content_block_stop", "index": 0 }),
    ));
    out.push(event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason(reply), "stop_sequence": null },
            "usage": { "output_tokens": reply.output_tokens() }
        }),
    ));
    Events {
        events: out,
        terminator: Some(event("message_stop", &json!({ "type": "message_stop" }))),
    }
}

/// A delta event whose JSON is cut off mid-object.
pub(crate) fn malformed() -> Bytes {
    Bytes::from_static(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\n\n",
    )
}

/// The `error` event Anthropic sends when a stream fails after its 200 (overloaded).
pub(crate) fn error_event() -> Bytes {
    event("error", &errors::stream_error(Route::Anthropic))
}
