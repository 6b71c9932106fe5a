//! Gemini `generateContent` encoding: `GenerateContentResponse` bodies, streamed either as SSE
//! (`?alt=sse`) or, as Google does without it, as one JSON array delivered piece by piece.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::errors;
use crate::fault::Route;
use crate::reply::{Content, Finish, Reply};
use crate::stream::Events;

fn finish(reply: &Reply) -> &'static str {
    match &reply.content {
        Content::Text {
            finish: Finish::Length,
            ..
        } => "MAX_TOKENS",
        Content::Text {
            finish: Finish::Filtered,
            ..
        } => "SAFETY",
        Content::Text {
            finish: Finish::Stop,
            ..
        }
        | Content::Tool { .. } => "STOP",
    }
}

fn usage(reply: &Reply) -> Value {
    let output = reply.output_tokens();
    json!({
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": output,
        "totalTokenCount": reply.input_tokens + output
    })
}

fn response(reply: &Reply, parts: Value, last: bool) -> Value {
    let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
    let mut value =
        json!({ "modelVersion": reply.model, "responseId": format!("mock{:016x}", reply.serial) });
    if last {
        candidate["finishReason"] = json!(finish(reply));
        value["usageMetadata"] = usage(reply);
    }
    value["candidates"] = json!([candidate]);
    value
}

fn call_part(name: &str, arguments: &str) -> Value {
    let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
    json!([{ "functionCall": { "name": name, "args": args } }])
}

/// The non-streaming body.
pub(crate) fn body(reply: &Reply) -> Vec<u8> {
    let parts = match &reply.content {
        Content::Text { .. } => json!([{ "text": reply.text() }]),
        Content::Tool {
            name, arguments, ..
        } => call_part(name, arguments),
    };
    serde_json::to_vec(&response(reply, parts, true)).unwrap_or_default()
}

/// The streamed responses: SSE frames, or pieces of a JSON array closed by `]`.
pub(crate) fn events(reply: &Reply, sse: bool) -> Events {
    let values: Vec<Value> = match &reply.content {
        Content::Text { chunks, .. } if chunks.is_empty() => {
            vec![response(reply, json!([{ "text": "" }]), true)]
        }
        Content::Text { chunks, .. } => chunks
            .iter()
            .enumerate()
            .map(|(i, text)| response(reply, json!([{ "text": text }]), i + 1 == chunks.len()))
            .collect(),
        Content::Tool {
            name, arguments, ..
        } => vec![response(reply, call_part(name, arguments), true)],
    };
    let events = values
        .iter()
        .enumerate()
        .map(|(i, value)| frame(value, sse, i == 0))
        .collect();
    let terminator = (!sse).then(|| Bytes::from_static(b"]"));
    Events { events, terminator }
}

/// One streamed response: an SSE `data:` line, or an element of the JSON array (`first` opens
/// the array, the others follow a comma).
fn frame(value: &Value, sse: bool, first: bool) -> Bytes {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mut frame = Vec::with_capacity(json.len() + 10);
    match (sse, first) {
        (true, _) => frame.extend_from_slice(b"data: "),
        (false, true) => frame.push(b'['),
        (false, false) => frame.extend_from_slice(b",\r\n"),
    }
    frame.extend(json);
    if sse {
        frame.extend_from_slice(b"\r\n\r\n");
    }
    Bytes::from(frame)
}

/// The error Google sends when a stream fails after its 200: the error JSON as the last
/// streamed response (an SSE data line, or the last element of the array, which it closes).
pub(crate) fn error_event(sse: bool, first: bool) -> Bytes {
    let event = frame(&errors::stream_error(Route::Gemini), sse, first);
    if sse {
        return event;
    }
    let mut closed = event.to_vec();
    closed.push(b']');
    Bytes::from(closed)
}

/// A response whose JSON is cut off mid-object.
pub(crate) fn malformed(sse: bool) -> Bytes {
    if sse {
        Bytes::from_static(
            b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\r\n\r\n",
        )
    } else {
        Bytes::from_static(b",\r\n{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"")
    }
}
